package history

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// AppendJSON writes what json.Marshal writes, byte for byte: for plain events, and for
// strings that need escaping (quotes, control characters, HTML's <>&, non-ASCII, invalid
// UTF-8, U+2028), lists, transactions and the nemesis.
func TestAppendJSONIsMarshal(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 28))
	tricky := []string{"", "a", "n1", "read", `say "hi"`, `back\slash`, "tab\there", "nl\n", "\x00\x1f",
		"<script>&", "héllo", "\u2028\u2029", "\xff\xfe", "日本", "mismatch", "dial tcp 127.0.0.1:2379: connect: connection refused"}
	str := func() string {
		if r.IntN(3) == 0 {
			return tricky[r.IntN(len(tricky))]
		}
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
			if r.IntN(4) > 0 {
				b[i] = byte(0x20 + r.IntN(0x5f))
			}
		}
		return string(b)
	}
	value := func() Value {
		switch r.IntN(5) {
		case 0:
			return Value{}
		case 1:
			return Value{Kind: List}
		case 2:
			l := make([]string, r.IntN(4))
			for i := range l {
				l[i] = str()
			}
			return Value{Kind: List, L: l}
		case 3:
			return Value{Kind: Txn, T: []Mop{{F: "append", Key: str(), V: S1(str())}, {F: "r", Key: str()}}}
		}
		return S1(str())
	}
	types := []Type{Invoke, OK, Fail, Info}
	for i := range 20000 {
		e := Event{Index: r.Int64N(1 << 40), Time: r.Int64N(1 << 50), Process: r.IntN(40) - 1, Type: types[r.IntN(4)],
			F: str(), Value: value(), Rev: r.Int64N(3) * r.Int64N(1<<30)}
		if e.Process < 0 {
			e.Process = NemesisProcess
		}
		if r.IntN(2) == 0 {
			e.Key = str()
		}
		if r.IntN(2) == 0 {
			e.Node = str()
		}
		if r.IntN(3) == 0 {
			e.Error = str()
		}
		want, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.AppendJSON([]byte("prefix"))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "prefix"+string(want) {
			t.Fatalf("event %d (%#v):\n got %s\nwant prefix%s", i, e, got, want)
		}
	}
}

func BenchmarkAppendJSON(b *testing.B) {
	e := Event{Index: 123456, Time: 987654321, Process: 7, Type: OK, F: OpWrite, Key: "r3", Value: S1("4711"), Node: "n2", Rev: 99}
	b.Run("AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = e.AppendJSON(buf[:0])
		}
	})
	b.Run("Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
}

// A writer whose buffer reaches writeAhead writes it out before its interval, so that
// appenders faster than the interval expects do not grow it without bound.
func TestWriterWritesAheadOfItsInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "h.jsonl")
		w, err := CreateWriter(path, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		e := Event{Process: 1, Type: OK, F: OpWrite, Key: "k", Value: S1(strings.Repeat("v", 100))}
		n := 0
		for ; n*150 < 3*writeAhead; n++ {
			e.Index = int64(n)
			if err := w.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait() // the writer's goroutine has written what the kicks asked for
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() < writeAhead {
			t.Fatalf("%d events appended, %d bytes written an hour before the interval: want at least %d", n, st.Size(), writeAhead)
		}
		w.mu.Lock()
		held := len(w.buf)
		w.mu.Unlock()
		if held >= writeAhead {
			t.Fatalf("the buffer holds %d bytes, over writeAhead", held)
		}
	})
}
