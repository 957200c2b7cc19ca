package harness

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/workload"
)

// The target conformance suite: what the harness relies on of every target, checked
// through the same path a run takes (plan, prepare, runtime, start, ready), on the sim
// target (the fast tier), faultline's raftnode, etcd and every shipped target file.

// conformanceCluster starts the cluster of a test spec's target the way a run does, and
// returns it (its powers assembled from the plan's capabilities) with the target.
func conformanceCluster(t *testing.T, args ...string) (*cluster, sut.Target, *Plan) {
	t.Helper()
	spec, err := ParseTestArgs(append([]string{"--nodes", "3", "--results", t.TempDir(), "--seed", "1"}, args...), io.Discard)
	require.NoError(t, err)
	p, err := NewPlan(context.Background(), spec)
	require.NoError(t, err)
	ctx := context.Background()
	c, err := StartCluster(ctx, p, t.TempDir(), t.Logf)
	if c != nil {
		t.Cleanup(func() { assert.NoError(t, c.Close(context.Background())) })
	}
	require.NoError(t, err)
	cl, tg := c.cl, c.Target
	require.NoError(t, cl.assemble(withoutLinks(p.Caps)))
	return cl, tg, p
}

// conformance checks what the harness relies on of a target, on its running cluster:
// readiness and a leader all agree on; a write read back; a mismatched cas and a read
// of a node that was killed are definite failures, never indeterminate and never ok;
// an operation on a paused node is indeterminate, never definite (it may take effect
// when the node resumes); a new leader once the leader is killed; and, where the
// target declares it can, a member replaced and caught up.
func conformance(t *testing.T, cl *cluster, tg sut.Target, p *Plan) {
	ctx := context.Background()
	open := func(node string) workload.Client {
		t.Helper()
		i := slices.Index(cl.Nodes(), node)
		for p := i; p < i+30; p += len(cl.Nodes()) {
			c, got, err := tg.Opener(time.Second)(ctx, p)
			require.NoError(t, err)
			if got == node {
				return c
			}
			closeClient(c)
		}
		t.Fatalf("no process of the opener talks to %s", node)
		return nil
	}
	leader := waitLeader(t, cl, "", 30*time.Second)
	require.Contains(t, cl.Nodes(), leader, "the leader is a node of the cluster")

	t.Run("a write is read back", func(t *testing.T) {
		c := open(leader)
		defer closeClient(c)
		require.NoError(t, retryOK(ctx, func(ctx context.Context) error { return c.Write(ctx, "conf-k", "v1") }))
		v, found, err := c.Read(ctx, "conf-k")
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, "v1", v)
		_, found, err = c.Read(ctx, "conf-never-written")
		require.NoError(t, err)
		assert.False(t, found, "a key never written is not found, and that is no error")
	})
	t.Run("a mismatched cas is definite", func(t *testing.T) {
		c := open(leader)
		defer closeClient(c)
		err := c.CAS(ctx, "conf-k", "not-the-value", "v2")
		require.Error(t, err)
		assert.True(t, workload.IsDefinite(err), "%v", err)
		v, _, err := c.Read(ctx, "conf-k")
		require.NoError(t, err)
		assert.Equal(t, "v1", v, "and changed nothing")
	})
	follower := cl.Nodes()[(slices.Index(cl.Nodes(), leader)+1)%len(cl.Nodes())]
	t.Run("an operation on a paused node is indeterminate", func(t *testing.T) {
		c := open(follower)
		defer closeClient(c)
		require.NoError(t, cl.Pause(ctx, follower))
		defer func() { require.NoError(t, cl.Resume(ctx, follower)) }()
		octx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		err := c.Write(octx, "conf-paused", "x")
		cancel()
		require.Error(t, err, "a paused node answers nothing")
		assert.False(t, workload.IsDefinite(err), "it may take effect once the node resumes: %v", err)
	})
	t.Run("a read of a killed node is definite", func(t *testing.T) {
		require.NoError(t, cl.Kill(ctx, follower))
		defer func() { require.NoError(t, cl.Start(ctx, follower)) }()
		c := open(follower)
		defer closeClient(c)
		octx, cancel := context.WithTimeout(ctx, 3*time.Second)
		_, _, err := c.Read(octx, "conf-k")
		cancel()
		require.Error(t, err, "a killed node answers nothing")
		assert.True(t, workload.IsDefinite(err), "a read changes nothing: failing it is never wrong: %v", err)
	})
	require.NoError(t, sut.Poll(ctx, 100*time.Millisecond, tg.Ready))
	t.Run("a new leader once the leader is killed", func(t *testing.T) {
		old := waitLeader(t, cl, "", 30*time.Second)
		require.NoError(t, cl.Kill(ctx, old))
		next := waitLeader(t, cl, old, 30*time.Second)
		assert.NotEqual(t, old, next)
		require.NoError(t, cl.Start(ctx, old))
		rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		require.NoError(t, sut.Poll(rctx, 100*time.Millisecond, tg.Ready), "whole again")
	})
	if ok, why := p.Caps.Has(nemesis.CapMembers); ok {
		t.Run("a member replaced catches up", func(t *testing.T) {
			mctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
			defer cancel()
			require.NoError(t, cl.powers.Members.Healthy(mctx))
			require.NoError(t, nemesis.RemoveMember(mctx, cl.powers, follower))
			assert.False(t, cl.rt.Running(follower), "a removed member is stopped")
			require.NoError(t, nemesis.AddMember(mctx, cl.powers, follower))
			require.NoError(t, cl.powers.Members.Healthy(mctx))
			c := open(follower)
			defer closeClient(c)
			require.NoError(t, retryOK(mctx, func(ctx context.Context) error {
				v, _, err := c.Read(ctx, "conf-k")
				if err == nil && v != "v1" {
					return fmt.Errorf("read %q", v)
				}
				return err
			}), "the new member has the others' data")
		})
	} else {
		t.Logf("membership: %s", why)
	}
}

// withoutLinks is caps without packet faults: a test's cluster has no link proxy.
func withoutLinks(caps nemesis.Caps) nemesis.Caps {
	for _, x := range []nemesis.Capability{nemesis.CapLinks, nemesis.CapMessages, nemesis.CapStreams} {
		caps = caps.Lacks(x, "no link proxy in this test")
	}
	return caps
}

// retryOK calls f until it succeeds (a leader may be settling), within 20 s.
func retryOK(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		octx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return f(octx)
	})
}

func closeClient(c workload.Client) {
	if cl, ok := c.(io.Closer); ok {
		_ = cl.Close()
	}
}

func TestConformanceSim(t *testing.T) {
	cl, tg, p := conformanceCluster(t, "--target", "sim", "--runtime", "memory")
	conformance(t, cl, tg, p)
}

func TestConformanceRaftnode(t *testing.T) {
	t.Parallel()
	needNetns(t)
	if testing.Short() {
		t.Skip("starts a raftnode cluster: skipped in -short mode")
	}
	cl, tg, p := conformanceCluster(t, "--runtime", "process")
	conformance(t, cl, tg, p)
}

func TestConformanceEtcd(t *testing.T) {
	t.Parallel()
	needNetns(t)
	etcdBinary(t) // built once, and skipped in -short mode
	cl, tg, p := conformanceCluster(t, "--target", "etcd", "--runtime", "process")
	conformance(t, cl, tg, p)
}

// Every shipped target file conforms, whatever its protocol.
func TestConformanceTargetFiles(t *testing.T) {
	t.Parallel()
	needNetns(t)
	if testing.Short() {
		t.Skip("starts clusters: skipped in -short mode")
	}
	files, err := filepath.Glob(examples + "*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			onPath(t, progsOf(t, f)...)
			cl, tg, p := conformanceCluster(t, "--target-file", f, "--runtime", "process")
			conformance(t, cl, tg, p)
		})
	}
}
