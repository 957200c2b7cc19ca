package campaign

import (
	"bytes"
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

// bisectOver bisects concurrency 1..8 of a raftnode spec whose (fake) runs are invalid
// from concurrency bad on.
func bisectOver(t *testing.T, bad int, expect string) (BisectResult, error, *atomic.Int32, string) {
	t.Helper()
	var calls atomic.Int32
	run := func(_ context.Context, spec harness.Spec, _ harness.Env) harness.Outcome {
		calls.Add(1)
		v := checker.Valid
		if spec.Concurrency >= bad {
			v = checker.Invalid
		}
		return harness.Outcome{Verdict: v, Violation: -1}
	}
	b := Bisection{Base: []byte("target: raftnode\nruntime: process\ntime-limit: 10s\n"), Key: "concurrency",
		Values: []string{"1", "2", "3", "4", "5", "6", "7", "8"}, Runs: 2, Seed: 1, Expect: expect}
	var out bytes.Buffer
	res, err := b.Bisect(context.Background(), Options{Results: t.TempDir(), Out: &out, Run: run}, nil)
	return res, err, &calls, out.String()
}

func TestBisectFindsTheFirstFailingValue(t *testing.T) {
	res, err, calls, out := bisectOver(t, 5, results.ExpectValid)
	require.NoError(t, err)
	assert.Equal(t, "5", res.First)
	assert.Equal(t, "4", res.Last)
	assert.Equal(t, results.ExitValid, res.Exit())
	assert.LessOrEqual(t, len(res.Probes), 5, "the ends, then halves: not every value")
	assert.EqualValues(t, 2*len(res.Probes), calls.Load(), "runs per value tried")
	for _, p := range res.Probes {
		n, _ := strconv.Atoi(p.Value)
		assert.Equal(t, n >= 5, p.Fails, p.Value)
		if n >= 5 {
			assert.InDelta(t, 1.0, p.Detection, 1e-9, "the detection rate of each value tried")
		}
	}
	assert.Contains(t, out, "first failing: concurrency=5 (the last meeting the expectation: 4)")
}

func TestBisectWithoutABoundarySaysWhy(t *testing.T) {
	res, err, _, _ := bisectOver(t, 1, results.ExpectValid)
	require.NoError(t, err)
	assert.Empty(t, res.First)
	assert.Contains(t, res.Why, "the first value, 1, already fails")
	assert.Equal(t, results.ExitUnknown, res.Exit())
	res, err, _, _ = bisectOver(t, 99, results.ExpectValid)
	require.NoError(t, err)
	assert.Contains(t, res.Why, "the last value, 8, still meets the expectation")
	// expect invalid: the first where the bug is no longer caught
	res, err, _, _ = bisectOver(t, 0, results.ExpectInvalid)
	require.NoError(t, err)
	assert.Contains(t, res.Why, "still meets", "caught everywhere: nothing to find")
}

// A value that does not make a spec is named before any run.
func TestBisectRefusesABadValueBeforeAnyRun(t *testing.T) {
	var calls atomic.Int32
	run := func(context.Context, harness.Spec, harness.Env) harness.Outcome {
		calls.Add(1)
		return harness.Outcome{Verdict: checker.Valid, Violation: -1}
	}
	for _, b := range []Bisection{
		{Base: []byte("target: raftnode\n"), Key: "nodes", Values: []string{"3", "42"}, Runs: 1, Expect: results.ExpectValid},
		{Base: []byte("target: raftnode\n"), Key: "nodes", Values: []string{"3"}, Runs: 1, Expect: results.ExpectValid},
		{Base: []byte("target: raftnode\n"), Key: "nodez", Values: []string{"3", "5"}, Runs: 1, Expect: results.ExpectValid},
		{Base: []byte("target: raftnode\n"), Key: "nodes", Values: []string{"3", "5"}, Runs: 1, Expect: "maybe"},
	} {
		_, err := b.Bisect(context.Background(), Options{Results: t.TempDir(), Run: run}, nil)
		require.Error(t, err, "%+v", b)
		var ue *harness.UsageError
		assert.ErrorAs(t, err, &ue, "exit 4: %v", err)
	}
	assert.Zero(t, calls.Load())
	prepared := 0
	b := Bisection{Base: []byte("target: raftnode\n"), Key: "nodes", Values: []string{"3", "5"}, Runs: 1, Expect: results.ExpectValid}
	_, err := b.Bisect(context.Background(), Options{Results: t.TempDir(), Run: run}, func(context.Context, harness.Spec) error {
		prepared++
		if prepared == 2 {
			return results.Usagef("etcd-version: etcd version %q: the Go module proxy has no such release", "v3.5.99")
		}
		return nil
	})
	assert.ErrorContains(t, err, "v3.5.99")
	assert.Zero(t, calls.Load(), "every value prepared before the first run")
}

// An interrupted bisection stops after the runs in flight and says what it found.
func TestBisectStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	run := func(context.Context, harness.Spec, harness.Env) harness.Outcome {
		cancel()
		return harness.Outcome{Verdict: checker.Valid, Violation: -1}
	}
	b := Bisection{Base: []byte("target: raftnode\n"), Key: "nodes", Values: []string{"3", "5", "7"}, Runs: 2, Expect: results.ExpectValid}
	var out bytes.Buffer
	res, err := b.Bisect(ctx, Options{Results: t.TempDir(), Out: &out, Run: run}, nil)
	require.NoError(t, err)
	assert.Contains(t, res.Why, "interrupted")
	assert.Equal(t, results.ExitError, res.Exit())
	require.Len(t, res.Probes, 1)
	assert.NotEmpty(t, res.Probes[0].Dir, "its runs' directory is kept")
	assert.Contains(t, out.String(), "stopped: interrupted")
}
