package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/runtime/process"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
)

// Whole runs, end to end: real raftnodes (this test binary, called raftnode), real faults,
// the checker's verdict, and nothing left behind.

func e2eSpec(t *testing.T, runtime string, args ...string) Spec {
	t.Helper()
	if testing.Short() {
		t.Skip("a whole run: skipped in -short mode")
	}
	if runtime == "docker" {
		needDocker(t)
	}
	base := []string{"--runtime", runtime, "--nodes", "3", "--time-limit", "15s", "--nemesis-interval", "3s",
		"--recovery", "2s", "--results", t.TempDir()}
	spec, err := ParseTestArgs(append(base, args...), &bytes.Buffer{})
	require.NoError(t, err)
	return spec
}

// runE2E runs spec. When the test fails, the run's output is logged and its directory
// (history, logs, results) is kept under $TMPDIR/faultline-failed-runs for a post-mortem.
func runE2E(t *testing.T, ctx context.Context, spec Spec) (Outcome, string) {
	t.Helper()
	return runE2EReady(t, ctx, spec, nil)
}

// runE2EReady is runE2E that calls ready (unless nil) once the run says its cluster is
// ready.
func runE2EReady(t *testing.T, ctx context.Context, spec Spec, ready func()) (Outcome, string) {
	t.Helper()
	out := &watchedOutput{ready: ready}
	o := Run(ctx, spec, Env{Stdout: out, Stderr: out})
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("run output:\n%s", out.String())
		keepFailed(t, o.Dir, t.Name()+"-"+filepath.Base(o.Dir))
	})
	return o, out.String()
}

// keepFailed copies dir, a failed test's run, to $TMPDIR/faultline-failed-runs/name for a
// post-mortem (its logs, its history), before the test's cleanup removes it.
func keepFailed(t *testing.T, dir, name string) {
	keep := filepath.Join(os.TempDir(), "faultline-failed-runs", name)
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err == nil && exec.Command("cp", "-a", dir, keep).Run() == nil {
		t.Logf("the run's directory is kept in %s", keep)
	}
}

// clusterReady is the line a run prints once its cluster is ready.
var clusterReady = regexp.MustCompile(`cluster of \d+ ready`)

// watchedOutput is a run's output, which calls ready once the cluster is ready.
type watchedOutput struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready func()
}

func (w *watchedOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if w.ready != nil && clusterReady.Match(w.b.Bytes()) {
		w.ready()
		w.ready = nil
	}
	return n, err
}

func (w *watchedOutput) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// leftovers lists what of run dir's run is still on this host: processes carrying its
// run id, network namespaces and host links named after it, containers labelled with it.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var tj struct {
		RunID string `json:"run_id"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "test.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &tj))
	var left []string
	pids, err := process.OfRun(tj.RunID)
	require.NoError(t, err)
	for _, pid := range pids {
		left = append(left, "process "+strconv.Itoa(pid))
	}
	if ns, err := exec.Command("ip", "netns", "list").Output(); err == nil && bytes.Contains(ns, []byte(tj.RunID)) {
		left = append(left, "namespaces: "+string(ns))
	}
	if links, err := exec.Command("ip", "-o", "link").Output(); err == nil && bytes.Contains(links, []byte("fl-"+tj.RunID)) {
		left = append(left, "host link fl-"+tj.RunID)
	}
	if ok, _ := docker.Available(context.Background()); ok {
		out, _ := exec.Command("docker", "ps", "-aq", "--filter", "label="+docker.LabelRun+"="+tj.RunID).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			left = append(left, "containers "+string(out))
		}
		out, _ = exec.Command("docker", "network", "ls", "-q", "--filter", "label="+docker.LabelRun+"="+tj.RunID).Output()
		if len(bytes.TrimSpace(out)) > 0 {
			left = append(left, "networks "+string(out))
		}
	}
	return left
}

func nemesisFs(events []history.Event) map[string]bool {
	fs := map[string]bool{}
	for _, e := range events {
		if e.IsNemesis() && e.Type == history.OK {
			fs[e.F] = true
		}
	}
	return fs
}

func TestRunCorrectNodeIsValid(t *testing.T) {
	t.Parallel()
	needNetns(t)
	spec := e2eSpec(t, "process", "--nemesis", "partition,kill,pause", "--seed", "7")
	o, out := runE2E(t, context.Background(), spec)
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	assert.Equal(t, results.ExitValid, o.ExitCode())
	for _, f := range []string{"test.json", "history.jsonl", "results.json", "faultline.log", "nodes/n1/raftnode.log"} {
		assert.FileExists(t, filepath.Join(o.Dir, f))
	}
	latest, err := filepath.EvalSymlinks(filepath.Join(spec.Results, "latest"))
	require.NoError(t, err)
	assert.Equal(t, o.Dir, latest)
	events, info, err := history.ReadFile(filepath.Join(o.Dir, "history.jsonl"))
	require.NoError(t, err)
	assert.False(t, info.Torn)
	fs := nemesisFs(events)
	assert.True(t, fs["start-partition"] && fs["kill"] && fs["pause"], "every kind was injected: %v", fs)
	assert.True(t, slices.ContainsFunc(events, func(e history.Event) bool { return e.F == history.LeaderChange && e.Node != "" }),
		"who leads is recorded")
	assert.Contains(t, out, "verdict: VALID")
	assert.Contains(t, out, "replay:  faultline test")
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestRunCatchesStaleReads(t *testing.T) {
	t.Parallel()
	needNetns(t)
	var o Outcome
	var out string
	for _, seed := range []string{"11", "12", "13"} {
		spec := e2eSpec(t, "process", "--nemesis", "partition", "--unsafe", "stale-read", "--seed", seed, "--time-limit", "20s")
		if o, out = runE2E(t, context.Background(), spec); o.ExitCode() == results.ExitInvalid {
			break
		}
	}
	require.Equal(t, results.ExitInvalid, o.ExitCode(), "stale reads under partitions were not caught in 3 runs")
	assert.FileExists(t, filepath.Join(o.Dir, "linearizability.html"))
	assert.Contains(t, out, "first:   the earliest operation blamed")
	var res struct {
		Valid    any `json:"valid"`
		Checkers struct {
			Linearizability struct {
				Failures []struct {
					Explanation string `json:"explanation"`
				} `json:"failures"`
			} `json:"linearizability"`
		} `json:"checkers"`
	}
	b, err := os.ReadFile(filepath.Join(o.Dir, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &res))
	assert.Equal(t, false, res.Valid)
	require.NotEmpty(t, res.Checkers.Linearizability.Failures)
	// The explanation names the operation it blames. A stale read is what breaks the
	// history, but the search may run out at a cas or a write that the stale value led
	// it past; either way the operation is named with its process.
	assert.Regexp(t, `\b(read|write|cas) by process \d+`, res.Checkers.Linearizability.Failures[0].Explanation,
		"the report names the operation it blames")
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestRunInterruptedLeavesNothingButAHistory(t *testing.T) {
	t.Parallel()
	needNetns(t)
	spec := e2eSpec(t, "process", "--nemesis", "partition,kill,pause", "--seed", "5", "--time-limit", "30s")
	spec.JUnit = filepath.Join(t.TempDir(), "junit.xml")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupted at a random point of its workload and faults: counted from the
	// cluster's readiness, which a busy machine can put off by seconds (an interrupt
	// that came first found no history to check).
	after := time.Second + time.Duration(rand.Int64N(int64(8*time.Second)))
	var timer *time.Timer
	var mu sync.Mutex
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		if timer != nil {
			timer.Stop()
		}
	}()
	o, _ := runE2EReady(t, ctx, spec, func() {
		mu.Lock()
		defer mu.Unlock()
		timer = time.AfterFunc(after, cancel)
	})
	assert.True(t, o.Interrupted)
	assert.Equal(t, results.ExitError, o.ExitCode(), "an interrupted run is not a verdict")
	assert.NotEqual(t, checker.Valid, o.Verdict, "a cut-short run proves less than it seems")
	assert.Empty(t, leftovers(t, o.Dir), "interrupted %v after the cluster was ready", after)
	events, _, err := history.ReadFile(filepath.Join(o.Dir, "history.jsonl"))
	require.NoError(t, err, "the history of an interrupted run is readable")
	assert.NotEmpty(t, events)
	res := checker.Check(context.Background(), events, checker.Options{Model: checker.Register})
	assert.NotEqual(t, checker.Invalid, res.Verdict, "and a correct node's prefix checks out")

	// results.json and JUnit tell the run's verdict, and why, not the checker's alone.
	var rj struct {
		Valid          any `json:"valid"`
		UnknownBecause []struct {
			Code string `json:"code"`
		} `json:"unknown_because"`
	}
	b, err := os.ReadFile(filepath.Join(o.Dir, "results.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &rj))
	assert.Equal(t, "unknown", rj.Valid, "results.json of an interrupted run")
	var codes []string
	for _, u := range rj.UnknownBecause {
		codes = append(codes, u.Code)
	}
	assert.Contains(t, codes, checker.ReasonInterrupted)
	junit, err := os.ReadFile(spec.JUnit)
	require.NoError(t, err)
	assert.NotContains(t, string(junit), `errors="0"`, "the verdict's case, at least, is in error")
	assert.Contains(t, string(junit), "interrupted")
}

func TestRunOnDocker(t *testing.T) {
	t.Parallel()
	spec := e2eSpec(t, "docker", "--nemesis", "partition,kill,pause", "--seed", "7")
	o, out := runE2E(t, context.Background(), spec)
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	assert.Contains(t, out, "on docker")
	b, err := os.ReadFile(filepath.Join(o.Dir, "test.json"))
	require.NoError(t, err)
	assert.Contains(t, string(b), `"runtime": "docker"`)
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestLogTailPutsThePanicFirst(t *testing.T) {
	dir := t.TempDir()
	log := "starting\n" + `{"level":"panic","msg":"unmarshal should never fail"}` + "\npanic: unmarshal should never fail\n\ngoroutine 1 [running]:\nmain.f()\n\t/x.go:1\nmain.main()\n\t/x.go:2\n=== faultline: exited: exit status 2\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "etcd.log"), []byte(log), 0o644))
	tail := logTail(dir, 3)
	assert.True(t, strings.HasPrefix(tail, "  panic: unmarshal should never fail"), tail)
	assert.Contains(t, tail, "exit status 2")
	assert.Equal(t, "  (no log)", logTail(t.TempDir(), 3))
}

// The run checks what is on disk: its history is read back from history.jsonl, and a
// file that lost events the recorder handed it is no evidence.
func TestTheHistoryIsReadBackWhole(t *testing.T) {
	dir := t.TempDir()
	w, err := history.CreateWriter(filepath.Join(dir, "history.jsonl"), 0)
	require.NoError(t, err)
	r := &run{dir: dir, rec: history.NewStreamRecorder(time.Now(), w)}
	for i := range 3 {
		r.rec.Record(history.Event{Process: i, Type: history.Invoke, F: "read", Key: "k"})
	}
	require.NoError(t, w.Close())
	events, err := r.history()
	require.NoError(t, err)
	assert.Len(t, events, 3)
	r.rec.Record(history.Event{Process: 0, Type: history.OK, F: "read", Key: "k"}) // the writer is closed: lost
	_, err = r.history()
	require.ErrorContains(t, err, "holds 3 of the 4 events")
}
