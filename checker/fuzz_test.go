package checker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/faultline/faultline/history"
)

// FuzzCheck checks that no history makes Check panic or answer outside its three
// verdicts, whatever the workload. Its seeds are whole fixtures, which the fuzzer is
// slow to minimize: run it with -fuzzminimizetime=1x.
func FuzzCheck(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.jsonl"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		events, _, err := history.ReadJSONL(bytes.NewReader(b))
		if err != nil {
			return
		}
		checkAll(t, events)
	})
}

// FuzzCheckJepsen checks the histories the Jepsen readers make (independent keys, cas
// tuples, times or none), from Jepsen EDN or, when the input starts with "INFO", a
// jepsen.util log. Its seeds are prefixes of the readers' fixtures.
func FuzzCheckJepsen(f *testing.F) {
	for _, pat := range []string{"*.edn", "*.log"} {
		files, _ := filepath.Glob(filepath.Join("..", "history", "testdata", pat))
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b[:min(len(b), 1200)])
		}
	}
	f.Add([]byte("INFO  jepsen.util - 0\t:invoke\t:write\t1\nINFO  jepsen.util - 0\t:ok\t:write\t1\nINFO  jepsen.util - 1\t:invoke\t:read\tnil\nINFO  jepsen.util - 1\t:ok\t:read\t1\n"))
	f.Add([]byte(`{:type :invoke, :f :add, :value [0 1], :process 0} {:type :ok, :f :add, :value [0 1], :process 0} {:type :invoke, :f :read, :value [0 nil], :process 1} {:type :ok, :f :read, :value [0 #{1}], :process 1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var events []history.Event
		var err error
		if bytes.HasPrefix(b, []byte("INFO")) {
			events, _, err = history.ReadJepsenLog(bytes.NewReader(b))
		} else {
			events, _, err = history.ReadJepsenEDN(bytes.NewReader(b))
		}
		if err != nil {
			return
		}
		checkAll(t, events)
	})
}

// FuzzCheckOps builds histories from bytes, four to an event, so that the fuzzer
// explores odd interleavings rather than JSON syntax.
func FuzzCheckOps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1})
	f.Add([]byte{0, 0, 3, 2, 0, 1, 3, 2, 1, 0, 0, 3, 1, 1, 0, 3, 2, 0, 2, 4, 2, 2, 2, 4})
	f.Add([]byte{0, 0, 1, 4, 0, 3, 1, 4}) // a write that failed: no evidence, never valid
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := []string{"read", "write", "cas", "append", "add", "start-partition", "stop-partition"}
		types := []history.Type{history.Invoke, history.OK, history.Info, history.Fail}
		vals := []history.Value{{}, history.S1("a"), history.S1("b"), history.L("a", "b"), history.L("b"), history.L(), history.L("a")}
		var events []history.Event
		for i := 0; i+3 < len(b) && len(events) < 48; i += 4 {
			e := history.Event{Index: int64(len(events)), Time: int64(i * int(b[i+3]%3)), Process: int(b[i] % 4),
				Type: types[b[i+1]%4], F: fs[int(b[i+2])%len(fs)], Key: string('k' + rune(b[i]>>6)), Value: vals[int(b[i+3]>>2)%len(vals)]}
			if e.F == "start-partition" || e.F == "stop-partition" {
				e.Process = history.NemesisProcess
			}
			events = append(events, e)
		}
		checkAll(t, events)
	})
}

// checkAll checks events under every workload: Check must not panic, must answer one
// of its three verdicts, and must never call valid a history without evidence (an
// acknowledged update and an acknowledged read, counted here from the raw events: an ok
// completing its process's invoke, named by the invoke's f) or one with operations it
// had to forgive (notes); an unknown verdict must say why.
func checkAll(t *testing.T, events []history.Event) {
	var acked struct{ update, read bool }
	invoked := map[int]string{} // process -> f of its invoke in flight
	for _, e := range events {
		if e.IsNemesis() {
			continue
		}
		if e.Type == history.Invoke {
			invoked[e.Process] = e.F
			continue
		}
		f, ok := invoked[e.Process]
		delete(invoked, e.Process)
		if !ok || e.Type != history.OK {
			continue
		}
		switch f {
		case "cas":
			acked.update, acked.read = true, true
		case "write", "append", "add":
			acked.update = true
		case "read":
			acked.read = true
		}
	}
	for _, w := range []string{"", "register", "append", "set"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		res := Check(ctx, events, Options{Model: Model(w), Timeout: 20 * time.Millisecond})
		cancel()
		switch res.Verdict {
		case Valid:
			if !acked.update || !acked.read {
				t.Fatalf("workload %q: valid without an acknowledged update and read: %s", w, res.Summary())
			}
			if len(res.Notes) > 0 {
				t.Fatalf("workload %q: valid with notes %q", w, res.Notes)
			}
		case Invalid:
		case Unknown:
			if len(res.UnknownBecause) == 0 {
				t.Fatalf("workload %q: unknown without a reason: %s", w, res.Summary())
			}
			for _, r := range res.UnknownBecause {
				if r.Code == ReasonUnexplained || r.Detail == "" {
					t.Fatalf("workload %q: unknown, unexplained: %+v\n%s", w, res.UnknownBecause, res.Summary())
				}
			}
		default:
			t.Fatalf("verdict %q", res.Verdict)
		}
		if res.Verdict != Unknown && len(res.UnknownBecause) > 0 {
			t.Fatalf("workload %q: %s with reasons %+v", w, res.Verdict, res.UnknownBecause)
		}
		_ = res.Summary()
		if _, err := res.MarshalJSON(); err != nil {
			t.Fatal(err)
		}
		if res.CanVisualize() {
			if err := res.Visualize(&bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
