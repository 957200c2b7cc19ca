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

// FuzzCheckOps builds histories from bytes, four to an event, so that the fuzzer
// explores odd interleavings rather than JSON syntax.
func FuzzCheckOps(f *testing.F) {
	f.Add([]byte{0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 1})
	f.Add([]byte{0, 0, 3, 2, 0, 1, 3, 2, 1, 0, 0, 3, 1, 1, 0, 3, 2, 0, 2, 4, 2, 2, 2, 4})
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

func checkAll(t *testing.T, events []history.Event) {
	for _, w := range []string{"", "register", "append", "set"} {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		res := Check(ctx, events, Options{Workload: w, Timeout: 20 * time.Millisecond})
		cancel()
		switch res.Verdict {
		case Valid, Invalid, Unknown:
		default:
			t.Fatalf("verdict %q", res.Verdict)
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
