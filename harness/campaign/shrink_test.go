package campaign

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
)

// shrinkSpec is an invalid run's spec: 5 nodes, 10 clients, 60 s, three faults.
func shrinkSpec(t *testing.T) harness.Spec {
	t.Helper()
	s, err := harness.ParseTestArgs([]string{"--nodes", "5", "--nemesis", "partition,kill,pause", "--time-limit", "60s", "--seed", "7", "--runtime", "process"}, nil)
	require.NoError(t, err)
	return s
}

// A bug that needs partitions and at least 3 clients shrinks to partition alone, 3
// nodes, the fewest clients that still catch it, and the shortest run; the result is a
// spec file that loads as that test.
func TestShrinkKeepsWhatTheBugNeeds(t *testing.T) {
	run := func(_ context.Context, s harness.Spec, _ harness.Env) harness.Outcome {
		// The bug needs a partition that isolates the leader: plain partition draws
		// that variant among others, partition:leader always.
		caught := slices.ContainsFunc(s.Nemesis, func(f string) bool { return f == "partition" || f == "partition:leader" }) &&
			s.Concurrency >= 3
		v := checker.Valid
		if caught {
			v = checker.Invalid
		}
		return harness.Outcome{Verdict: v, Violation: -1}
	}
	var out bytes.Buffer
	res, dir, err := Shrinking{Spec: shrinkSpec(t), Runs: 2}.Shrink(context.Background(), Options{Results: t.TempDir(), Out: &out, Run: run})
	require.NoError(t, err, out.String())
	s := res.Smallest.Spec
	assert.Equal(t, []string{"partition:leader"}, []string(s.Nemesis), "one fault left, then its one variant that catches it\n%s", out.String())
	assert.Equal(t, 3, s.Nodes)
	assert.Equal(t, 5, s.Concurrency, "10 → 5; 2 no longer catches it")
	assert.Equal(t, 15*time.Second, s.TimeLimit.D(), "60 → 30 → 15 s")
	assert.Empty(t, res.Stopped)
	for _, c := range res.Tried {
		assert.Equal(t, 2, c.Runs, "each candidate is run --runs times")
	}
	assert.Contains(t, out.String(), "replay:   faultline test -f "+filepath.Join(dir, "shrunk.yaml"))
	loaded, err := harness.LoadSpec(filepath.Join(dir, "shrunk.yaml"))
	require.NoError(t, err)
	loaded, err = loaded.Resolve()
	require.NoError(t, err)
	assert.Equal(t, harness.ReplayCommand(s), harness.ReplayCommand(loaded), "the spec file is the smallest test")
	_, err = os.Stat(filepath.Join(dir, "shrunk.yaml"))
	require.NoError(t, err)
}

// A candidate caught in fewer than half its runs is not kept, and the budget stops the
// search before a candidate that would not fit, keeping what was found.
func TestShrinkIsCarefulWithChanceAndTime(t *testing.T) {
	calls := 0
	clock := time.Unix(0, 0)
	run := func(_ context.Context, s harness.Spec, _ harness.Env) harness.Outcome {
		calls++
		clock = clock.Add(s.TimeLimit.D() + 15*time.Second) // a run takes its time
		v := checker.Valid
		if calls%3 == 0 { // caught one run in three
			v = checker.Invalid
		}
		return harness.Outcome{Verdict: v, Violation: -1}
	}
	var out bytes.Buffer
	sh := Shrinking{Spec: shrinkSpec(t), Runs: 3, Budget: 12 * time.Minute, now: func() time.Time { return clock }}
	res, _, err := sh.Shrink(context.Background(), Options{Results: t.TempDir(), Out: &out, Run: run})
	require.NoError(t, err)
	assert.Empty(t, res.Smallest.Change, "nothing smaller was caught often enough: the run given stays\n%s", out.String())
	assert.Contains(t, res.Stopped, "budget", out.String())
	assert.NotEmpty(t, res.Tried)
	for _, c := range res.Tried {
		assert.False(t, c.Kept, "%s caught %d/%d", c.Change, c.Invalid, c.Runs)
	}
}

// Interrupted, it stops after the runs in flight and says so, writing what it has.
func TestShrinkStopsWhenInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	run := func(context.Context, harness.Spec, harness.Env) harness.Outcome {
		cancel()
		return harness.Outcome{Verdict: checker.Invalid, Violation: -1}
	}
	var out bytes.Buffer
	res, dir, err := Shrinking{Spec: shrinkSpec(t), Runs: 1}.Shrink(ctx, Options{Results: t.TempDir(), Out: &out, Run: run})
	require.NoError(t, err)
	assert.Contains(t, res.Stopped, "interrupted")
	assert.FileExists(t, filepath.Join(dir, "shrunk.yaml"))
	assert.Contains(t, out.String(), "stopped: interrupted")
}
