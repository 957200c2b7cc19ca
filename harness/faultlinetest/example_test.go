package faultlinetest_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/faultlinetest"
	"github.com/faultline/faultline/internal/netns"
)

// The test binary is raftnode's program too (the raftnode target runs it by that name).
func TestMain(m *testing.M) { faultlinetest.Main(m) }

// A Go test that runs a 3-node raftnode cluster under kills and pauses, checks the
// history, and fails unless it is linearizable: what a team that writes its tests in Go
// would write (etcd's robustness tests are such tests).
func TestCorrectRaftnodeUnderKillsAndPauses(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole run: skipped in -short mode")
	}
	spec := harness.DefaultSpec()
	spec.Runtime = "process"
	spec.Nodes = 3
	spec.Nemesis = harness.List{"kill", "pause"}
	spec.NemesisInterval = harness.Duration(2 * time.Second)
	spec.TimeLimit = harness.Duration(8 * time.Second)
	spec.Recovery = harness.Duration(2 * time.Second)
	spec.Seed = 11
	out := faultlinetest.Valid(t, spec)
	assert.FileExists(t, filepath.Join(out.Dir, "results.json"))
	assert.Positive(t, out.Stats.OpsPerSec, "the run made operations")
}

// A deliberate bug is still caught: raftnode serving reads from any node's local state
// returns stale values from the minority side of a partition.
func TestStaleReadsAreCaught(t *testing.T) {
	if testing.Short() {
		t.Skip("a whole run: skipped in -short mode")
	}
	if ok, why := netns.Available(); !ok {
		t.Skip("partitions need network namespaces (root, ip, nsenter): " + why)
	}
	spec := harness.DefaultSpec()
	spec.Runtime, spec.Nodes = "process", 3
	require.NoError(t, spec.Set("unsafe", "stale-read")) // raftnode's deliberate bug: its --unsafe flag
	spec.Nemesis = harness.List{"partition"}
	spec.NemesisInterval = harness.Duration(3 * time.Second)
	spec.TimeLimit = harness.Duration(15 * time.Second)
	spec.Recovery = harness.Duration(2 * time.Second)
	spec.Seed = 31
	out := faultlinetest.Invalid(t, spec)
	assert.FileExists(t, filepath.Join(out.Dir, "linearizability.html"), "the violation is drawn")
}
