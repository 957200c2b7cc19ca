package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/nemesis/linkproxy"
	"github.com/faultline/faultline/node/client"
)

// raftCluster starts real raftnodes (this test binary, called raftnode) in network
// namespaces, with the link proxy when links is set, and returns the nemesis's view.
func raftCluster(t *testing.T, n int, links bool) *cluster {
	t.Helper()
	needNetns(t)
	if testing.Short() {
		t.Skip("starts a raftnode cluster: skipped in -short mode")
	}
	ctx := context.Background()
	dir := t.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	rt := NewProcessRuntime(fmt.Sprintf("f%d", time.Now().UnixNano()%1e9), dir)
	t.Cleanup(func() { assert.NoError(t, rt.Close(ctx)) })
	require.NoError(t, rt.Prepare(ctx, names))
	bin, err := RaftnodeBin(filepath.Join(dir, "bin"))
	require.NoError(t, err)
	target := NewRaftTarget(bin, "", filepath.Join(dir, "data"), rt, names)
	cl := newCluster(rt, target, names)
	if links {
		lf, err := startLinkFaults(ctx, rt, target, names, 1, t.Logf)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, lf.Close()) })
		cl.links = lf
	}
	for _, n := range names {
		require.NoError(t, rt.Launch(ctx, n, target.Command(n)))
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, target.WaitReady(rctx))
	return cl
}

// writeLatency returns the median time of a few writes through node.
func writeLatency(t *testing.T, cl *cluster, node string) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		require.NoError(t, cl.target.Client(node).Put(ctx, fmt.Sprintf("lat%d", i), "x"))
		ds = append(ds, time.Since(t0))
		cancel()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func TestPacketDelayTakesEffectAndHeals(t *testing.T) {
	cl := raftCluster(t, 3, true)
	ctx := context.Background()
	leader, err := cl.Leader(ctx)
	require.NoError(t, err)
	before := writeLatency(t, cl, leader)
	// Every message into the leader waits 300 ms: a write commits only once a follower's
	// acknowledgement has come back, so it takes at least that long.
	var into []nemesis.Link
	for _, n := range cl.Nodes() {
		if n != leader {
			into = append(into, nemesis.Link{From: n, To: leader})
		}
	}
	require.NoError(t, cl.Packets(ctx, into, nemesis.Packets{Delay: 300 * time.Millisecond}))
	during := writeLatency(t, cl, leader)
	assert.GreaterOrEqual(t, during, 300*time.Millisecond, "delayed acknowledgements slow every write (before: %v)", before)
	require.NoError(t, cl.HealPackets(ctx))
	after := writeLatency(t, cl, leader)
	assert.Less(t, after, 150*time.Millisecond, "healed (before %v, during %v)", before, during)
	st := cl.links.proxy.Stats()
	delayed := uint64(0)
	for _, l := range into {
		delayed += st[linkStat(l)].Delayed
	}
	assert.Positive(t, delayed, "the proxy delayed messages on the faulty links")
}

func TestPacketLossOnEveryLinkStopsAndHeals(t *testing.T) {
	cl := raftCluster(t, 3, true)
	ctx := context.Background()
	leader, err := cl.Leader(ctx)
	require.NoError(t, err)
	var all []nemesis.Link
	for _, a := range cl.Nodes() {
		for _, b := range cl.Nodes() {
			if a != b {
				all = append(all, nemesis.Link{From: a, To: b})
			}
		}
	}
	require.NoError(t, cl.Packets(ctx, all, nemesis.Packets{Loss: 1}))
	ns, err := cl.rt.(NetworkRuntime).NetNS("n1")
	require.NoError(t, err)
	assert.False(t, reaches(t, ns, cl.rt.HostPort("n2", raftClientPort)), "loss 100%: n1 cannot reach n2")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = cl.target.Client(leader).Put(wctx, "lost", "x")
	cancel()
	assert.Error(t, err, "no quorum while every packet between nodes is lost")
	require.NoError(t, cl.HealPackets(ctx))
	assert.True(t, reaches(t, ns, cl.rt.HostPort("n2", raftClientPort)), "healed")
	require.NoError(t, cl.target.WaitReady(ctx))
}

// reaches reports whether an HTTP request from inside the namespace at ns gets any answer
// from addr.
func reaches(t *testing.T, ns, addr string) bool {
	t.Helper()
	return exec.Command("nsenter", "--net="+ns, os.Args[0], "dial", addr).Run() == nil
}

func linkStat(l nemesis.Link) linkproxy.Link { return linkproxy.Link{From: l.From, To: l.To} }

func TestClockFaultShowsInTheNode(t *testing.T) {
	cl := raftCluster(t, 3, false)
	ctx := context.Background()
	require.NoError(t, cl.SetClock(ctx, "n2", -30*time.Second, 0.5))
	got, err := cl.target.Client("n2").Clock(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.Clock{OffsetMS: -30000, Rate: 0.5}, got)
	assert.Equal(t, []string{"n2"}, cl.marked(cl.clocked))
	require.NoError(t, cl.HealAll(ctx))
	got, err = cl.target.Client("n2").Clock(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.Clock{OffsetMS: 0, Rate: 1}, got, "HealAll resets every clock")
}

func TestReplacedMemberHasANewIDAndTheSameData(t *testing.T) {
	cl := raftCluster(t, 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 20 {
		require.NoError(t, cl.target.Client("n1").Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprint("v", i)))
	}
	require.NoError(t, cl.Healthy(ctx))
	oldID := cl.target.ID("n2")
	require.NoError(t, cl.RemoveMember(ctx, "n2"))
	assert.False(t, cl.rt.Running("n2"), "a removed member is stopped")
	_, err := os.Stat(filepath.Join(cl.target.DataDir, "n2"))
	assert.True(t, os.IsNotExist(err), "and wiped")
	require.NoError(t, cl.target.poll(ctx, func(ctx context.Context) error { // n2 may have led
		return cl.target.Client("n1").Put(ctx, "k0", "while n2 was out")
	}))
	require.NoError(t, cl.AddMember(ctx, "n2"))
	newID := cl.target.ID("n2")
	assert.NotEqual(t, oldID, newID, "back under a new id")
	st, err := cl.target.Client("n2").Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, newID, st.ID)
	var ids []uint64
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	assert.ElementsMatch(t, []uint64{cl.target.ID("n1"), newID, cl.target.ID("n3")}, ids)
	assert.False(t, slices.Contains(ids, oldID))
	for i := range 20 {
		want := fmt.Sprint("v", i)
		if i == 0 {
			want = "while n2 was out"
		}
		v, _, err := cl.target.Client("n2").Get(ctx, fmt.Sprintf("k%d", i))
		require.NoError(t, err)
		assert.Equal(t, want, v, "the new member has the others' data")
	}
	require.NoError(t, cl.Healthy(ctx))
}
