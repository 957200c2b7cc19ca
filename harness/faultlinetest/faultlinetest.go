// Package faultlinetest runs faultline tests from `go test`: a small adapter between
// testing.TB and the harness's Go API (harness.Spec, harness.Run, harness.Outcome), which
// itself knows nothing of package testing.
//
//	func TestMain(m *testing.M) { faultlinetest.Main(m) }
//
//	func TestUnderKills(t *testing.T) {
//		spec := harness.DefaultSpec()
//		spec.Nodes, spec.Nemesis, spec.TimeLimit = 3, harness.List{"kill", "pause"}, harness.Duration(10*time.Second)
//		faultlinetest.Valid(t, spec)
//	}
package faultlinetest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
)

// Main is TestMain for a package whose tests run the clusters of a target whose nodes
// run from faultline's own binary (the default target's do: it runs them from the test
// binary itself, called by the node program's name), so the binary must act as that
// program when called so. Other targets need no TestMain.
func Main(m *testing.M) {
	if prog, ok := sut.Program(filepath.Base(os.Args[0])); ok {
		os.Exit(prog(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Run resolves spec, runs it with t's context and returns its outcome. Results go under
// t.TempDir() unless spec.Results is set to another directory than the default; the
// run's output goes to t.Log. A bad spec is a fatal test error; the verdict is the
// caller's to judge (see Valid and Invalid).
func Run(t testing.TB, spec harness.Spec) harness.Outcome {
	t.Helper()
	if spec.Results == "" || spec.Results == harness.DefaultSpec().Results {
		spec.Results = t.TempDir()
	}
	if spec.Name == "" {
		spec.Name = strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	}
	spec.Count, spec.Failfast = 0, false // one run; a campaign is package campaign's
	rs, err := spec.Resolve()
	if err != nil {
		t.Fatalf("faultline spec: %v", err)
	}
	w := &logWriter{t: t}
	out := harness.Run(t.Context(), rs, harness.Env{Stdout: w, Stderr: w})
	w.flush()
	return out
}

// Valid runs spec and fails t unless its verdict is valid (exit code 0): invalid is a
// safety violation, unknown a run that proves nothing, an error a harness failure.
func Valid(t testing.TB, spec harness.Spec) harness.Outcome {
	t.Helper()
	out := Run(t, spec)
	if code := out.ExitCode(); code != results.ExitValid {
		t.Errorf("faultline: %s (exit %d), want valid; run directory %s%s", out.Verdict, code, out.Dir, errText(out))
	}
	return out
}

// Invalid runs spec and fails t unless a safety violation was found: for tests that
// prove a deliberate bug is still caught.
func Invalid(t testing.TB, spec harness.Spec) harness.Outcome {
	t.Helper()
	out := Run(t, spec)
	if out.Verdict != checker.Invalid {
		t.Errorf("faultline: %s (exit %d), want invalid; run directory %s%s", out.Verdict, out.ExitCode(), out.Dir, errText(out))
	}
	return out
}

func errText(o harness.Outcome) string {
	if o.Err != nil {
		return ": " + o.Err.Error()
	}
	return ""
}

// logWriter hands whole lines to t.Log.
type logWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadString('\n')
		if err != nil {
			w.buf.WriteString(line) // no newline yet: keep it for later
			return len(p), nil
		}
		w.t.Log(strings.TrimRight(line, "\n"))
	}
}

func (w *logWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 0 {
		w.t.Log(w.buf.String())
		w.buf.Reset()
	}
}
