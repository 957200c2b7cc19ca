package harness

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/faultline/faultline/harness/internal/etcdclient"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/etcd"
)

// The clock fault on etcd, which has no clock hook, through the runtime's per-process
// clocks, as users would notice it: a leader whose clocks jump a minute ahead expires a
// 30 s lease at once (its lessor reads the monotonic clock), and a member whose wall
// clock is off logs "prober found high clock drift" about its peers.
func TestEtcdClockFault(t *testing.T) {
	t.Parallel()
	bothRuntimes(t, func(t *testing.T, runtimeName string) {
		bin, version := etcdBinary(t)
		var reach func(string, int) string
		var dir string
		cl := testCluster(t, runtimeName, 3, false, func(env sut.Env) sut.Target {
			reach, dir = env.Reach, env.Dir
			et := etcd.New(etcd.Config{Binary: bin, Version: version}, env)
			t.Cleanup(func() { _ = et.Close() })
			return et
		})
		if !cl.rt.Abilities().Clock {
			t.Skip("no per-process clocks here: " + cl.rt.Abilities().ClockWhy)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		leader := waitLeader(t, cl, "", 10*time.Second)
		cli, err := clientv3.New(etcdclient.RawConfig(reach(leader, etcd.ClientPort), zap.NewNop()))
		require.NoError(t, err)
		defer cli.Close()
		lease, err := cli.Grant(ctx, 30)
		require.NoError(t, err)
		_, err = cli.Put(ctx, "leased", "v", clientv3.WithLease(lease.ID))
		require.NoError(t, err)

		start := time.Now()
		require.NoError(t, cl.powers.Clock.SetClock(ctx, leader, time.Minute, 1))
		require.Eventually(t, func() bool {
			gctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			r, err := cli.Get(gctx, "leased", clientv3.WithSerializable())
			return err == nil && r.Count == 0
		}, 20*time.Second, 100*time.Millisecond, "the 30 s lease expires early on a leader a minute ahead")
		t.Logf("the 30 s lease expired %v after the leader's clocks jumped a minute ahead", time.Since(start).Round(time.Millisecond))

		log := filepath.Join(dir, "nodes", leader)
		require.Eventually(t, func() bool {
			logs, _ := filepath.Glob(filepath.Join(log, "*.log"))
			for _, l := range logs {
				if b, _ := os.ReadFile(l); strings.Contains(string(b), "prober found high clock drift") {
					return true
				}
			}
			return false
		}, 40*time.Second, 200*time.Millisecond, "the skewed member logs the drift of its peers' clocks")
		require.NoError(t, cl.HealAll(ctx))
		rctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
		defer cancel2()
		require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, cl.target.Ready), "the cluster serves after the heal")
	})
}
