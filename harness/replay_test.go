package harness

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// replayView is what a replay must reproduce of a run: its faults in order (kind,
// variant, and the nodes wherever they were drawn at random rather than asked of the
// cluster), and each first client process's sequence of operation kinds.
type replayView struct {
	faults  []string
	kinds   map[int][]string
	leaders int
}

func viewOf(t *testing.T, dir string, concurrency int) replayView {
	t.Helper()
	events, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	require.NoError(t, err)
	v := replayView{kinds: map[int][]string{}}
	begin := int64(-1)
	for _, e := range events {
		switch {
		case e.F == history.NemesisStart:
			begin = e.Time
		case e.F == history.LeaderChange:
			v.leaders++
		case e.IsNemesis() && e.Type == history.OK && !e.Value.IsNone():
			variant, detail := e.Value.S, ""
			if e.Value.Kind == history.List {
				variant, detail = e.Value.L[0], strings.Join(e.Value.L[1:], " ")
			}
			what := e.F + ":" + variant
			if variant != "leader" {
				what += " " + detail + " on " + e.Node
			}
			v.faults = append(v.faults, what)
		case !e.IsNemesis() && e.Type == history.Invoke && e.Process < concurrency:
			v.kinds[e.Process] = append(v.kinds[e.Process], e.F)
		}
	}
	require.GreaterOrEqual(t, begin, int64(0), "the history records the schedule's start")
	return v
}

// A run replayed from its directory injects the same faults, in the same order, on the
// same random nodes, and each client issues the same operation kinds — also when the
// leader changes during the partitions and kills, so that faults aimed at "the leader"
// hit other nodes in the replay. That each fault starts at the same offset is the
// schedule's to keep, and nemesis's TestScheduleTimelineIsTheSeedsWhateverTheClusterAnswers
// pins it exactly, in synthetic time: here real nodes on a loaded machine wake late by
// amounts no tolerance bounds.
func TestReplayByRunDirectoryReproducesTheSchedule(t *testing.T) {
	needNetns(t)
	spec := e2eSpec(t, "process", "--nemesis", "partition,kill,pause", "--nemesis-interval", "1500ms",
		"--time-limit", "12s", "--seed", "15")
	a, _ := runE2E(t, context.Background(), spec)
	require.NoError(t, a.Err)

	rspec, err := ParseTestArgs([]string{"--replay", a.Dir, "--results", t.TempDir()}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, spec.Seed, rspec.Seed)
	assert.Equal(t, spec.Nemesis, rspec.Nemesis)
	assert.Equal(t, "process", rspec.Runtime)
	b, _ := runE2E(t, context.Background(), rspec)
	require.NoError(t, b.Err)

	va, vb := viewOf(t, a.Dir, spec.Concurrency), viewOf(t, b.Dir, spec.Concurrency)
	// Whether the leader changes is the cluster's to decide (here it usually does, after
	// the kills): nemesis's TestScheduleTimelineIsTheSeedsWhateverTheClusterAnswers pins
	// a cluster whose leader changes at every question, deterministically.
	t.Logf("leader changes seen: %d in the run, %d in its replay", va.leaders-1, vb.leaders-1)
	n := min(len(va.faults), len(vb.faults)) - 1 // the last may be cut by the time limit
	require.GreaterOrEqual(t, n, 5)
	assert.Equal(t, va.faults[:n], vb.faults[:n], "the same faults, in order, on the same random nodes")
	for p, ka := range va.kinds {
		kb := vb.kinds[p]
		m := min(len(ka), len(kb), 50)
		require.GreaterOrEqual(t, m, 10, "process %d", p)
		assert.Equal(t, ka[:m], kb[:m], "process %d issues the same operation kinds", p)
	}
}
