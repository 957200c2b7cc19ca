package node_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/node/client"
)

// Each --unsafe mode against the fault that exposes it, next to the correct node under
// the same fault. These show the bugs are real, so the harness can be shown to find them.

func isDefinite(err error) bool {
	var d interface{ Definite() bool }
	return errors.As(err, &d) && d.Definite()
}

func ctxT(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	_ = cancel // released at the deadline; tests are short
	return ctx
}

// A follower cut off from the others: stale-read serves the old value, the correct node
// refuses the read.
func TestUnsafeStaleReadUnderPartition(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, mode := range []string{"", "stale-read"} {
		t.Run("mode="+mode, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 3, withLinks, "--unsafe", orNone(mode))
			leader := c.waitLeader(20 * time.Second)
			f := leader%3 + 1
			require.NoError(t, c.client(leader).Put(ctxT(10*time.Second), "x", "1"))
			require.NoError(t, eventually(10*time.Second, func(ctx context.Context) error {
				return wantValue(ctx, c.client(f), "x", "1")
			}))
			c.isolate(f, true)
			require.NoError(t, c.client(leader).Put(ctxT(10*time.Second), "x", "2"))
			v, _, err := c.client(f).Get(ctxT(3*time.Second), "x")
			if mode == "stale-read" {
				require.NoError(t, err)
				assert.Equal(t, "1", v, "stale-read serves the cut-off follower's old value")
			} else {
				require.Error(t, err, "the correct node must not answer %q", v)
			}
		})
	}
}

// The leader cut off: ack-before-commit acknowledges a write that the new majority
// never sees; the correct node does not acknowledge it.
func TestUnsafeAckBeforeCommitUnderPartition(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, mode := range []string{"", "ack-before-commit"} {
		t.Run("mode="+mode, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 3, withLinks, "--unsafe", orNone(mode))
			old := c.waitLeader(20 * time.Second)
			other := old%3 + 1
			require.NoError(t, c.client(old).Put(ctxT(10*time.Second), "y", "1"))
			require.NoError(t, eventually(10*time.Second, func(ctx context.Context) error {
				return wantValue(ctx, c.client(other), "y", "1") // committed, not just acked
			}))
			c.isolate(old, true)
			err := c.client(old).Put(ctxT(3*time.Second), "y", "2")
			if mode == "" {
				require.Error(t, err)
				assert.False(t, isDefinite(err), "a proposal that timed out is indefinite: %v", err)
			} else {
				require.NoError(t, err, "ack-before-commit acknowledges on the isolated leader")
			}
			require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
				return c.client(other).Put(ctx, "z", "new-term")
			}))
			c.isolate(old, false)
			require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
				return wantValue(ctx, c.client(old), "z", "new-term")
			}))
			v, _, err := c.client(old).Get(ctxT(5*time.Second), "y")
			require.NoError(t, err)
			assert.Equal(t, "1", v, "the write on the isolated leader is truncated")
		})
	}
}

// The leader cut off with its clock slowed (it never times out its lease): lease-read
// serves stale reads after the others moved on; the correct node refuses.
func TestUnsafeLeaseReadUnderClockFault(t *testing.T) {
	skipShort(t)
	t.Parallel()
	for _, mode := range []string{"", "lease-read"} {
		t.Run("mode="+mode, func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 3, withLinks, "--unsafe", orNone(mode))
			old := c.waitLeader(20 * time.Second)
			require.NoError(t, c.client(old).Put(ctxT(10*time.Second), "x", "1"))
			require.NoError(t, c.client(old).SetClock(ctxT(5*time.Second), client.Clock{Rate: 0.02}))
			c.isolate(old, true)
			other := old%3 + 1
			require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
				return c.client(other).Put(ctx, "x", "2")
			}))
			v, _, err := c.client(old).Get(ctxT(3*time.Second), "x")
			if mode == "lease-read" {
				require.NoError(t, err)
				assert.Equal(t, "1", v, "the deposed leader still trusts its lease")
			} else {
				require.Error(t, err, "the correct node must not answer %q", v)
			}
		})
	}
}

// Every node SIGKILLed while writes stream in: ack-before-fsync loses acknowledged
// writes (or a node finds its log behind what the others committed and exits, with one
// line, instead of hanging).
func TestUnsafeAckBeforeFsyncLosesWritesOnKill(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3, "--unsafe", "ack-before-fsync")
	c.waitLeader(20 * time.Second)
	var acked []string
	deadline := time.Now().Add(time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		if c.client(uint64(i%3+1)).Put(ctxT(2*time.Second), fmt.Sprintf("k%d", i), "v") == nil {
			acked = append(acked, fmt.Sprintf("k%d", i))
		}
	}
	require.NotEmpty(t, acked)
	c.killAtOnce(1, 2, 3) // one by one, the last could flush its buffer meanwhile
	for id := uint64(1); id <= 3; id++ {
		c.start(id, false)
	}
	lost := 0
	for _, k := range acked {
		var found bool
		err := eventually(10*time.Second, func(ctx context.Context) error {
			var err error
			_, found, err = c.client(1).Get(ctx, k)
			return err
		})
		if err != nil {
			break // the cluster may not come back at all: see below
		}
		if !found {
			lost++
		}
	}
	fatal := 0
	for id, p := range c.nodes {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.logPath)
			assert.Contains(t, string(b), "raftnode: fatal:", "node %d exited without saying why", id)
			assert.NotContains(t, string(b), "goroutine ", "node %d dumped goroutines", id)
			fatal++
		default:
		}
	}
	t.Logf("%d of %d acknowledged writes lost; %d nodes exited on a damaged log", lost, len(acked), fatal)
	assert.True(t, lost > 0 || fatal > 0, "ack-before-fsync should have lost something")
}

func orNone(mode string) string {
	if mode == "" {
		return "none"
	}
	return mode
}

func wantValue(ctx context.Context, c *client.Client, key, want string) error {
	v, _, err := c.Get(ctx, key)
	if err == nil && v != want {
		err = fmt.Errorf("read %s=%q, want %q", key, v, want)
	}
	return err
}
