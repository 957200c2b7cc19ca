package harness

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness/runtime/memory"
	"github.com/faultline/faultline/harness/sut/sim"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// The fast tier: whole runs on the in-memory runtime and the simulated target, inside a
// testing/synctest bubble, where time is synthetic: a 30-second run takes milliseconds,
// its timing is the seed's alone, and the bubble fails the test if the run leaves a
// goroutine behind. They need no root, no Docker and no process of their own.

// simSpec is a run of the sim target on the memory runtime.
func simSpec(t *testing.T, args ...string) Spec {
	t.Helper()
	spec, err := ParseTestArgs(append([]string{"--target", "sim", "--runtime", "memory", "--nodes", "3",
		"--time-limit", "12s", "--nemesis-interval", "1500ms", "--recovery", "1s", "--rate", "100",
		"--op-timeout", "500ms", "--seed", "1", "--results", t.TempDir()}, args...), &bytes.Buffer{})
	require.NoError(t, err)
	return spec
}

// simRun runs spec in a bubble of synthetic time (ctx, when set, derives the run's
// context) and returns its outcome, what it printed and its world.
func simRun(t *testing.T, spec Spec, cancelAfter time.Duration) (o Outcome, out string, w *memory.World) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if cancelAfter > 0 {
			time.AfterFunc(cancelAfter, cancel)
		}
		var b bytes.Buffer
		o = Run(ctx, spec, Env{Stdout: &b, Stderr: &b})
		out = b.String()
	})
	if o.Dir != "" {
		info, ok, err := results.ReadTestInfo(o.Dir)
		require.NoError(t, err)
		require.True(t, ok)
		w, ok = memory.Lookup(info.RunID)
		require.True(t, ok)
		assert.True(t, w.Closed(), "the runtime was closed")
	}
	return o, out, w
}

// healed checks that every fault the world saw was undone before its runtime closed:
// no node left paused or filtering, every node stopped by the close.
func healed(t *testing.T, w *memory.World) {
	t.Helper()
	log := w.Log()
	require.NotEmpty(t, log)
	require.Equal(t, "close", log[len(log)-1])
	last := map[string]string{}
	for _, l := range log[:len(log)-1] {
		f := strings.Fields(l)
		if len(f) >= 2 && (f[0] == "drop" || f[0] == "pause" || f[0] == "resume") {
			last[f[0]+" "+f[1]] = l
		}
	}
	for _, n := range w.Names() {
		if d, ok := last["drop "+n]; ok {
			assert.Equal(t, "drop "+n, d, "%s's filter was cleared before the close", n)
		}
		if _, paused := last["pause "+n]; paused {
			assert.NotEmpty(t, last["resume "+n], "%s was resumed", n)
		}
	}
}

func nemesisEvents(t *testing.T, dir string) []history.Event {
	t.Helper()
	events, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	require.NoError(t, err)
	return slices.DeleteFunc(events, func(e history.Event) bool { return !e.IsNemesis() })
}

func TestLifecycleACorrectStoreIsValidUnderEveryFault(t *testing.T) {
	spec := simSpec(t, "--nemesis", "partition,kill,pause,clock,partition:leader+clock:slow")
	o, out, w := simRun(t, spec, 0)
	require.NoError(t, o.Err, out)
	assert.Equal(t, checker.Valid, o.Verdict, out)
	assert.Equal(t, results.ExitValid, o.ExitCode())
	healed(t, w)
	fs := map[string]bool{}
	for _, e := range nemesisEvents(t, o.Dir) {
		if e.Type == history.OK {
			fs[e.F] = true
		}
	}
	for _, f := range []string{"start-partition", "kill", "pause", "heal-all"} {
		assert.True(t, fs[f] || f == "heal-all", "%s injected: %v", f, fs)
	}
	assert.Contains(t, out, "verdict: VALID")
	for _, f := range []string{"test.json", "history.jsonl", "results.json", "report.html"} {
		assert.FileExists(t, filepath.Join(o.Dir, f))
	}
}

func TestLifecycleAnomaliesAreCaught(t *testing.T) {
	for anomaly, nem := range map[string]string{sim.StaleRead: "partition", sim.LostAck: "partition"} {
		t.Run(anomaly, func(t *testing.T) {
			o, out, w := simRun(t, simSpec(t, "--sim-anomaly", anomaly, "--nemesis", nem), 0)
			assert.Equal(t, checker.Invalid, o.Verdict, out)
			assert.Equal(t, results.ExitInvalid, o.ExitCode())
			assert.FileExists(t, filepath.Join(o.Dir, "linearizability.html"))
			healed(t, w)
		})
	}
}

// A run cut short is never valid: exit 3, its history kept, every fault healed.
func TestLifecycleInterruptedRunHealsAndKeepsItsHistory(t *testing.T) {
	o, out, w := simRun(t, simSpec(t, "--nemesis", "partition,pause", "--nemesis-interval", "1s"), 7*time.Second)
	assert.True(t, o.Interrupted, out)
	assert.Equal(t, results.ExitError, o.ExitCode())
	assert.NotEqual(t, checker.Valid, o.Verdict)
	healed(t, w)
	evs := nemesisEvents(t, o.Dir)
	assert.NotEmpty(t, evs, "the history of an interrupted run is kept")
	b, err := os.ReadFile(filepath.Join(o.Dir, results.ResultsFile))
	require.NoError(t, err)
	assert.Contains(t, string(b), checker.ReasonInterrupted)
}

// A panic anywhere — in a fault's injection, in the target's hooks, in a client — ends
// the run in an error (exit 3), with every fault healed and every node stopped. A client
// that panics answered nothing: its operations are indeterminate, and a run none of
// whose final reads is answered is an error.
func TestLifecycleAPanicEndsTheRunHealed(t *testing.T) {
	for _, tc := range []struct{ in, nemesis, says string }{
		{"clock", "partition:leader+clock", "clock panicked"}, // the partition is in force when the clock part panics
		{"client", "partition", "final reads"},
		{"leader", "pause", "panic"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			spec := simSpec(t, "--nemesis", tc.nemesis)
			spec.Section(sim.Name).(*sim.Options).PanicIn = tc.in
			o, out, w := simRun(t, spec, 0)
			require.Error(t, o.Err, out)
			assert.Contains(t, o.Err.Error(), tc.says)
			assert.Equal(t, results.ExitError, o.ExitCode())
			assert.NotContains(t, out, "goroutine ", "no crash")
			if w != nil {
				healed(t, w)
			}
		})
	}
}

// No evidence is never a pass: a store that takes no write gets unknown (exit 2).
func TestLifecycleNoEvidenceIsUnknown(t *testing.T) {
	spec := simSpec(t, "--nemesis", "none")
	spec.Section(sim.Name).(*sim.Options).ReadOnly = true
	o, out, w := simRun(t, spec, 0)
	assert.Equal(t, checker.Unknown, o.Verdict, out)
	assert.Equal(t, results.ExitUnknown, o.ExitCode())
	assert.Contains(t, out, "verdict: UNKNOWN")
	healed(t, w)
}

// A usage error is found before anything is made: no directory, no runtime.
func TestLifecycleAUsageErrorMakesNothing(t *testing.T) {
	for entry, says := range map[string]string{
		"member":      "the sim has a fixed membership",
		"packet":      "no packets a link proxy could stand between",
		"kill:bogus":  "its variants are",
		"maintenance": "the sim has no maintenance",
		"power-loss":  "the in-memory runtime's nodes keep their state in memory, on no disk",
	} {
		spec := simSpec(t)
		spec.Nemesis = List{entry}
		o, out, _ := simRun(t, spec, 0)
		var ue *UsageError
		require.ErrorAs(t, o.Err, &ue, "%s: %s", entry, out)
		assert.Contains(t, o.Err.Error(), says)
		assert.Equal(t, results.ExitUsage, o.ExitCode())
		assert.Empty(t, o.Dir)
		made, _ := os.ReadDir(spec.Results)
		assert.Empty(t, made, "%s: nothing written", entry)
	}
}

// Clocks changed by the nemesis are reset by the run's heal, whatever the schedule did.
func TestLifecycleClocksAreResetAtTheEnd(t *testing.T) {
	o, out, _ := simRun(t, simSpec(t, "--nemesis", "clock", "--nemesis-interval", "1s"), 0)
	require.NoError(t, o.Err, out)
	var bumped, reset int
	for _, e := range nemesisEvents(t, o.Dir) {
		switch {
		case e.Type == history.OK && strings.HasPrefix(e.F, "clock-") && e.F != "clock-reset":
			bumped++
		case e.Type == history.OK && e.F == "clock-reset":
			reset++
		}
	}
	assert.Positive(t, bumped)
	assert.Equal(t, bumped, reset, "every clock fault was reset")
}

// A variant named is the variant every turn injects, and the history says which: the
// invoke carries it, the completion the nodes.
func TestLifecycleNamedVariantsAreWhatTheHistoryShows(t *testing.T) {
	spec := simSpec(t, "--nodes", "5", "--nemesis", "kill:all,pause:leader,partition:majorities-ring", "--nemesis-interval", "1s")
	o, out, w := simRun(t, spec, 0)
	require.NoError(t, o.Err, out)
	assert.Equal(t, checker.Valid, o.Verdict, out)
	healed(t, w)
	seen := map[string]int{}
	for _, e := range nemesisEvents(t, o.Dir) {
		if e.Type != history.OK {
			continue
		}
		switch e.F {
		case "kill":
			assert.Equal(t, "all", e.Value.S)
			assert.Equal(t, "n1,n2,n3,n4,n5", e.Node, "kill:all kills every node")
		case "pause":
			assert.Equal(t, "leader", e.Value.S)
			assert.Len(t, strings.Split(e.Node, ","), 1, "pause:leader pauses one node")
		case "start-partition":
			assert.Equal(t, "majorities-ring", e.Value.L[0])
		default:
			continue
		}
		seen[e.F]++
	}
	assert.Len(t, seen, 3, "every named fault was injected: %v", seen)
}

// A workload the target's clients do not support is bad usage, not a vacuous pass.
func TestLifecycleAnUnsupportedWorkloadIsRefused(t *testing.T) {
	spec := simSpec(t, "--workload", "append")
	spec.Section(sim.Name).(*sim.Options).Only = []workload.Kind{workload.Register}
	o, _, _ := simRun(t, spec, 0)
	var ue *UsageError
	require.ErrorAs(t, o.Err, &ue)
	assert.Contains(t, o.Err.Error(), "workload: append cannot run on target sim: its clients support register")
	assert.Empty(t, o.Dir)
}

// --dry-run's plan says what would run — runtime, what the cluster can do, every fault
// with the variants it may take, what was left out and why — and makes nothing.
func TestThePlanSaysWhatWouldRun(t *testing.T) {
	spec := simSpec(t, "--nemesis", "all")
	p, err := NewPlan(context.Background(), spec)
	require.NoError(t, err)
	var b bytes.Buffer
	p.Print(&b)
	out := b.String()
	for _, want := range []string{
		"target:   sim", "runtime:  memory", "3 nodes; can: clock, isolate, kill, message-links, partition, pause",
		"partition: one, leader, halves, random-halves, bridge",
		"clock: bump, slow, fast, strobe",
		"left out: member: the sim has a fixed membership",
		"left out: packet: the in-memory runtime's nodes exchange no packets",
		"left out: partition:majorities-ring: needs at least 4 nodes",
		"left out: power-loss: the in-memory runtime's nodes keep their state in memory",
	} {
		assert.Contains(t, out, want)
	}
	made, _ := os.ReadDir(spec.Results)
	assert.Empty(t, made, "a plan makes nothing")
}

// The lease workload through a whole run: leases on the sim run on its leader's clock,
// as etcd's do. Under partitions, kills and pauses (leaders change, leases are
// refreshed) a correct store is valid; a clock pushed ahead on the leader ends leases
// early, and the run says so, naming the clock fault.
func TestLifecycleLeasesEndEarlyOnlyUnderClockFaults(t *testing.T) {
	t.Run("valid under partitions, kills and pauses", func(t *testing.T) {
		o, out, w := simRun(t, simSpec(t, "--workload", "lease", "--nemesis", "partition,kill,pause", "--time-limit", "20s"), 0)
		require.NoError(t, o.Err, out)
		assert.Equal(t, checker.Valid, o.Verdict, out)
		assert.Contains(t, out, "lease: valid")
		healed(t, w)
	})
	t.Run("caught under clock faults", func(t *testing.T) {
		o, out, w := simRun(t, simSpec(t, "--workload", "lease", "--nemesis", "clock:bump", "--time-limit", "20s"), 0)
		require.NoError(t, o.Err, out)
		assert.Equal(t, checker.Invalid, o.Verdict, out)
		assert.Equal(t, results.ExitInvalid, o.ExitCode())
		assert.Contains(t, out, "deleted early")
		assert.Contains(t, out, "clock-bump")
		healed(t, w)
	})
}

// The txn workload through a whole run: the sim's transactions are strict
// serializable under every fault it takes; with stale reads on a node cut off from the
// majority, the run is invalid and names the anomaly.
func TestLifecycleTransactions(t *testing.T) {
	t.Run("valid under partitions, kills and pauses", func(t *testing.T) {
		o, out, w := simRun(t, simSpec(t, "--workload", "txn", "--nemesis", "partition,kill,pause"), 0)
		require.NoError(t, o.Err, out)
		assert.Equal(t, checker.Valid, o.Verdict, out)
		assert.Contains(t, out, "txn: valid")
		healed(t, w)
	})
	t.Run("stale reads caught with a named anomaly", func(t *testing.T) {
		o, out, w := simRun(t, simSpec(t, "--workload", "txn", "--sim-anomaly", sim.StaleRead, "--nemesis", "partition"), 0)
		require.NoError(t, o.Err, out)
		assert.Equal(t, checker.Invalid, o.Verdict, out)
		assert.Regexp(t, `G-single-realtime|G1c-realtime|G2-item-realtime`, out)
		assert.Contains(t, out, "not strict-serializable")
		healed(t, w)
	})
}
