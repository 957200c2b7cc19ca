package etcd

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// putConcurrently writes n keys through node's admin client, 8 at a time.
func (c *testCluster) putConcurrently(ctx context.Context, node string, n int) {
	c.t.Helper()
	cli, err := c.tg.admin(node)
	if err != nil {
		c.t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 8 {
				if _, err := cli.Put(ctx, fmt.Sprintf("s/%d", i), "v"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		c.fatal("put through %s: %v", node, err)
	}
}

// TestSnapshotCatchUp (etcd v3.5.35, v3.6.16, v3.7.3: the release's catch-up flag, 100
// entries; v3.4.23 from Debian: none, so it keeps 5000 and the test writes 6000): a
// follower killed while the others take more writes than the leader keeps for it is sent
// a snapshot when it comes back, which SnapshotSent sees; without that, it sees none.
// The control (v3.5.35, whose flag --help does not show, left at 5000 entries): the
// same 2000 writes are caught up from the log, no snapshot sent.
func TestSnapshotCatchUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v       string
		catchUp int
	}{{"v3.4.23", 100}, {"v3.5.35", 100}, {"v3.6.16", 100}, {"v3.7.3", 100}, {"v3.5.35", 0}} {
		v := tc.v
		name := v
		if tc.catchUp == 0 {
			name += "-control"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel() // a cluster of its own, on ports of its own
			cfg := Config{Binary: releaseBin(t, v), Version: v, SnapshotCount: 100, SnapshotCatchUpEntries: tc.catchUp}
			c := startTarget(t, cfg, 3, nil)
			ctx := ctxT(t, time.Minute)
			l, err := c.tg.Leader(ctx)
			if err != nil || l == "" {
				c.fatal("leader %q, %v", l, err)
			}
			follower := "n1"
			if l == follower {
				follower = "n2"
			}
			writes := 2000
			if tc.catchUp > 0 && c.tg.CatchUpEntries(follower) > writes {
				writes = c.tg.CatchUpEntries(follower) + 1000
			}
			if _, err := c.tg.SnapshotSent(ctx, follower); err == nil {
				t.Error("SnapshotSent without a mark")
			}
			if err := c.tg.MarkSnapshots(ctx, follower); err != nil {
				t.Fatal(err)
			}
			c.putConcurrently(ctx, l, 200) // within reach of the log: no snapshot
			if sent, err := c.tg.SnapshotSent(ctx, follower); err != nil || sent {
				t.Errorf("snapshot sent to %s with nothing to make one needed: %v, %v", follower, sent, err)
			}
			c.kill(follower)
			start := time.Now()
			c.putConcurrently(ctx, l, writes)
			t.Logf("%d writes with %s down in %v", writes, follower, time.Since(start).Round(time.Millisecond))
			c.start(follower)
			start = time.Now()
			if tc.catchUp == 0 {
				if err := c.tg.Healthy(ctx); err != nil {
					c.fatal("healthy: %v", err)
				}
				if n := c.serialCount(ctx, follower, "s/"); n != int64(writes) {
					t.Errorf("%s has %d of the %d keys", follower, n, writes)
				}
				if sent, err := c.tg.SnapshotSent(ctx, follower); err != nil || sent {
					t.Errorf("%s caught up from %d entries behind with a snapshot, though the leader keeps %d: %v, %v",
						follower, writes, c.tg.CatchUpEntries(follower), sent, err)
				}
				return
			}
			for {
				sent, err := c.tg.SnapshotSent(ctx, follower)
				if sent {
					t.Logf("snapshot sent to %s %v after its restart", follower, time.Since(start).Round(time.Millisecond))
					break
				}
				if ctx.Err() != nil || time.Since(start) > 30*time.Second {
					c.fatal("no snapshot sent to %s (%v)", follower, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := c.tg.Healthy(ctx); err != nil {
				c.fatal("healthy: %v", err)
			}
			if n := c.serialCount(ctx, follower, "s/"); n != int64(writes) {
				t.Errorf("%s has %d of the %d keys", follower, n, writes)
			}
		})
	}
}
