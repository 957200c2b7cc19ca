package history

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadJSONLAtAgrees: decoding a file block by block on every core gives exactly
// what the sequential reader gives — events, torn last line, the first malformed line's
// error and the events before it — whatever the block size, with blank lines, lines
// longer than a block, a missing final newline and data that starts past the file's
// beginning.
func TestReadJSONLAtAgrees(t *testing.T) {
	line := func(i int, rng *rand.Rand) string {
		switch rng.IntN(20) {
		case 0:
			return ""
		case 1:
			return "  \t"
		case 2: // a long list: spans blocks
			l := make([]string, 50+rng.IntN(50))
			for j := range l {
				l[j] = fmt.Sprintf("%q", fmt.Sprint(j))
			}
			return fmt.Sprintf(`{"index":%d,"time":%d,"process":1,"type":"ok","f":"read","key":"k","value":[%s]}`, i, i, strings.Join(l, ","))
		case 3: // the slow path: an escape
			return fmt.Sprintf(`{"index":%d,"time":%d,"process":2,"type":"invoke","f":"write","key":"k","value":"a\"b"}`, i, i)
		case 4:
			return fmt.Sprintf(`{"index":%d,"time":%d,"process":3,"type":"ok","f":"txn","value":[["append","x","%d"],["r","y",["1","2"]]]}`, i, i, i)
		}
		return fmt.Sprintf(`{"index":%d,"time":%d,"process":%d,"type":"invoke","f":"read","key":"k%d","value":null}`+"\r", i, i, i%5, i%3)
	}
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 3))
		var b strings.Builder
		prefix := strings.Repeat("x", rng.IntN(3)) // bytes before base
		b.WriteString(prefix)
		n := 1 + rng.IntN(60)
		for i := range n {
			b.WriteString(line(i, rng))
			if i < n-1 || rng.IntN(2) == 0 {
				b.WriteByte('\n')
			}
		}
		text := b.String()
		switch rng.IntN(6) {
		case 0: // a torn last line
			text += `{"index":99,"time"`
		case 1: // a malformed line in the middle
			at := strings.Index(text[len(prefix)+1:], "\n")
			if at >= 0 {
				at += len(prefix) + 1
				text = text[:at] + "\n{not json}" + text[at:]
			}
		}
		data := text[len(prefix):]
		wantEv, wantInfo, wantErr := readJSONL(struct{ io.Reader }{strings.NewReader(data)}, 0)
		for _, block := range []int64{3, 17, 64, 300, 1 << 20} {
			ev, info, err := readJSONLAt(strings.NewReader(text), int64(len(prefix)), int64(len(data)), block)
			require.Equal(t, fmt.Sprint(wantErr), fmt.Sprint(err), "seed %d block %d", seed, block)
			require.Equal(t, wantInfo, info, "seed %d block %d", seed, block)
			require.Equal(t, len(wantEv), len(ev), "seed %d block %d", seed, block)
			for i := range ev {
				require.Equal(t, wantEv[i], ev[i], "seed %d block %d event %d", seed, block, i)
			}
		}
	}
}

// TestReadJSONLParallelFile: a file past parallelMin goes through the parallel reader
// and reads as the sequential reader reads it.
func TestReadJSONLParallelFile(t *testing.T) {
	var buf bytes.Buffer
	for i := 0; buf.Len() < parallelMin+1000; i++ {
		e := Event{Index: int64(i), Time: int64(i), Process: i % 10, Type: []Type{Invoke, OK}[i%2], F: OpTxn,
			Value: T(Mop{F: MopAppend, Key: "x", V: S1(fmt.Sprint(i))}, Mop{F: MopRead, Key: "y", V: L("1", fmt.Sprint(i))})}
		l, err := e.MarshalJSON()
		require.NoError(t, err)
		buf.Write(append(l, '\n'))
	}
	path := t.TempDir() + "/history.jsonl"
	require.NoError(t, writeFile(path, buf.Bytes()))
	got, info, err := ReadFile(path)
	require.NoError(t, err)
	want, _, err := readJSONL(bytes.NewReader(buf.Bytes()), 0)
	require.NoError(t, err)
	require.Equal(t, len(want), info.Lines)
	require.Equal(t, want, got)
}

func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }
