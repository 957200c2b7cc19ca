package workload

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// runKubernetes runs the kubernetes workload against a sim store, its final gets
// included, and checks the history.
func runKubernetes(t *testing.T, seed int64, setup func(*SimStore)) ([]history.Event, checker.Result) {
	t.Helper()
	cfg := Config{Workload: Kubernetes, Concurrency: 6, Rate: 300, TimeLimit: 30 * time.Second, Seed: seed}
	events := runOnSim(t, cfg, setup, true)
	return events, checker.Check(context.Background(), events, checker.Options{Model: checker.Keyspace})
}

func TestKubernetesWorkload(t *testing.T) {
	t.Run("a correct store passes, and every operation is used", func(t *testing.T) {
		for seed := range int64(3) {
			events, res := runKubernetes(t, seed, nil)
			require.Equal(t, checker.Valid, res.Verdict, "seed %d: %s\n%v", seed, res.Summary(), res.Keyspace.Anomalies)
			ks := res.Keyspace
			assert.Greater(t, ks.Writes, 300)
			assert.Greater(t, ks.Reads, 300)
			assert.Positive(t, ks.Compactions)
			require.NotNil(t, res.Watch)
			assert.Greater(t, res.Watch.Watches, 20)
			assert.Greater(t, res.Watch.Events, 100)
			assert.Positive(t, res.Watch.Resumed, "watches from a list's revision, or resumed")
			byF, conflicts, pinned, cancels := map[string]int{}, 0, 0, 0
			for _, e := range events {
				if e.F == history.OpWatch && e.Error == history.Compacted {
					l := e.Value.L
					require.GreaterOrEqual(t, len(l), 5)
					assert.Equal(t, history.WatchCompacted, l[len(l)-4], "a cancelled watch's last event is its cancel")
					cancels++
				}
				if e.Type == history.OK {
					byF[e.F]++
				}
				if e.Error == history.Conflict {
					conflicts++
				}
				if e.F == history.OpList && e.Type == history.Invoke && e.Value.L[0] != "0" {
					pinned++
				}
			}
			for _, f := range []string{history.OpCreate, history.OpUpdate, history.OpDelete, history.OpGet, history.OpList, history.OpCompact, history.OpWatch} {
				assert.Positive(t, byF[f], "%s acknowledged", f)
			}
			assert.Positive(t, conflicts, "updates that met a newer mod revision")
			assert.Positive(t, cancels, "watches cancelled for compaction")
			long := map[int]bool{}
			for _, e := range events {
				if e.F == history.OpWatch && e.Process >= watcherProcess {
					long[e.Process] = true
				}
			}
			assert.Len(t, long, len(k8sPrefixes)*k8sWatchers, "long watches, one per watcher process")
			assert.Positive(t, pinned, "list pages continued at the first page's revision")
		}
	})
	t.Run("with a compaction interval, compactions come once per interval", func(t *testing.T) {
		cfg := Config{Workload: Kubernetes, Concurrency: 6, Rate: 300, TimeLimit: 30 * time.Second, Seed: 4, CompactInterval: 5 * time.Second}
		events := runOnSim(t, cfg, nil, true)
		res := checker.Check(context.Background(), events, checker.Options{Model: checker.Keyspace})
		require.Equal(t, checker.Valid, res.Verdict, "%s\n%v", res.Summary(), res.Explanations())
		var at []int64
		for _, e := range events {
			if e.F == history.OpCompact && e.Type == history.Invoke {
				at = append(at, e.Time)
			}
		}
		// the first interval only notes the revision to compact to
		require.NotEmpty(t, at)
		assert.InDelta(t, 5, len(at), 1, "compactions in 30 s, one per 5 s after the first interval")
		for i := 1; i < len(at); i++ {
			assert.GreaterOrEqual(t, time.Duration(at[i]-at[i-1]), 5*time.Second, "compactions %d and %d", i-1, i)
		}
	})
	t.Run("a store whose watches skip an event is caught", func(t *testing.T) {
		_, res := runKubernetes(t, 2, func(s *SimStore) { s.Keyspace.SkipWatchEvent = true })
		require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
		assert.Positive(t, res.Watch.AnomalyTypes[checker.KSWatchLost], res.Watch.Line())
	})
	t.Run("a store whose latest reads lag a revision is caught", func(t *testing.T) {
		_, res := runKubernetes(t, 1, func(s *SimStore) { s.Keyspace.StaleReads = true })
		require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
		assert.NotZero(t, res.Keyspace.FirstBad)
	})
}
