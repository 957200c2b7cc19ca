package workload

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// runLeases runs the lease workload against a sim store and checks the history.
func runLeases(t *testing.T, seed int64, setup func(*SimStore)) ([]history.Event, checker.Result) {
	t.Helper()
	cfg := Config{Workload: Lease, Concurrency: 6, Keys: 4, Rate: 200, TimeLimit: 20 * time.Second, LeaseTTL: 2 * time.Second, Seed: seed}
	events := runOnSim(t, cfg, setup, false)
	return events, checker.Check(context.Background(), events, checker.Options{Model: checker.Lease})
}

func TestLeaseWorkload(t *testing.T) {
	t.Run("a correct store passes, and every operation is used", func(t *testing.T) {
		for seed := range int64(3) {
			events, res := runLeases(t, seed, nil)
			require.Equal(t, checker.Valid, res.Verdict, "seed %d: %s", seed, res.Summary())
			l := res.Lease
			assert.Greater(t, l.Guarded, 100, "reads within a lease's life")
			assert.Greater(t, l.Leases, 10)
			assert.Positive(t, l.Expired, "leases left to lapse were seen gone")
			byF := map[string]int{}
			gone := 0
			for _, e := range events {
				if e.Type == history.OK {
					byF[e.F]++
				}
				if e.Error == history.LeaseNotFound {
					gone++
				}
			}
			for _, f := range []string{history.OpGrant, history.OpPut, history.OpKeepAlive, history.OpRevoke, history.OpRead} {
				assert.Positive(t, byF[f], "seed %d: %s acknowledged", seed, f)
			}
			t.Logf("seed %d: %s; %d lease-not-found answers", seed, l.Line(), gone)
		}
	})
	t.Run("a lessor clock that jumps ahead is caught", func(t *testing.T) {
		_, res := runLeases(t, 1, func(s *SimStore) {
			start := time.Now()
			s.LeaseClock = func() time.Time {
				if now := time.Now(); now.Sub(start) > 8*time.Second && now.Sub(start) < 12*time.Second {
					return now.Add(time.Minute)
				}
				return time.Now()
			}
		})
		require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
		assert.Positive(t, res.Lease.Early)
		assert.Contains(t, res.Lease.Anomalies[0], "early")
		t.Log(res.Summary())
	})
}

// The txn workload against a linearizable store is valid; against one whose reads
// come from a snapshot taken a while ago, it is caught with a named anomaly.
func TestTxnWorkload(t *testing.T) {
	run := func(t *testing.T, seed int64, stale bool) ([]history.Event, checker.Result) {
		var events []history.Event
		synctest.Test(t, func(t *testing.T) {
			store := NewSimStore(seed)
			store.Latency, store.Lost = 4*time.Millisecond, 0.02
			rec := newRecorder()
			cfg := Config{Workload: Txn, Concurrency: 6, Keys: 4, OpsPerKey: 40, Rate: 200, TimeLimit: 10 * time.Second, Seed: seed}
			var c Client = store
			if stale {
				c = &staleTxns{SimStore: store}
			}
			_, err := Run(context.Background(), cfg, constOpener(c), rec)
			require.NoError(t, err)
			events = rec.Events()
		})
		wellFormed(t, events)
		return events, checker.Check(context.Background(), events, checker.Options{Model: checker.Txn})
	}
	for seed := range int64(3) {
		events, res := run(t, seed, false)
		require.Equal(t, checker.Valid, res.Verdict, "seed %d: %s", seed, res.Summary())
		assert.Greater(t, res.Txn.Txns, 1000)
		assert.Greater(t, res.Txn.Edges, 1000)
		long := 0
		for _, e := range events {
			if e.Type == history.OK && len(e.Value.T) == 4 {
				long++
			}
		}
		assert.Positive(t, long, "transactions of 4 micro-operations")
		t.Logf("seed %d: %s", seed, res.Txn.Line())
	}
	_, res := run(t, 1, true)
	require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
	t.Log(res.Summary())
}

// staleTxns answers read-only transactions from a copy of the lists taken every 300 ms.
type staleTxns struct {
	*SimStore
	at   time.Time
	snap map[string][]string
}

func (s *staleTxns) Txn(ctx context.Context, mops []history.Mop) ([]history.Mop, error) {
	for _, m := range mops {
		if m.F == history.MopAppend {
			return s.SimStore.Txn(ctx, mops)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.snap == nil || time.Since(s.at) > 300*time.Millisecond {
		s.at, s.snap = time.Now(), map[string][]string{}
		for k, l := range s.lists {
			s.snap[k] = l
		}
	}
	return ApplyMops(mops, func(k string) []string { return s.snap[k] }, func(string, []string) {}), nil
}
