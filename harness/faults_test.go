package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/runtime/process"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/raftnode"
	"github.com/faultline/faultline/internal/linkproxy"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/node/client"
)

// raftCluster starts real raftnodes (this test binary, called raftnode) in network
// namespaces, with the link proxy when links is set, and returns the nemesis's view and
// the target.
func raftCluster(t *testing.T, n int, links bool) (*cluster, *raftnode.Target) {
	t.Helper()
	return raftClusterOn(t, "process", n, links)
}

// raftClusterOn is raftCluster on the named runtime.
func raftClusterOn(t *testing.T, runtimeName string, n int, links bool) (*cluster, *raftnode.Target) {
	t.Helper()
	return raftClusterWith(t, clusterOpts{runtime: runtimeName, nodes: n, links: links})
}

// clusterOpts are the shape of a test's cluster: its runtime, its size, whether the link
// proxy stands between its nodes, whether they run on disks that can lose power, and
// raftnode's deliberate bug (raftClusterWith).
type clusterOpts struct {
	runtime string
	nodes   int
	links   bool
	disks   bool
	unsafe  string
}

// raftClusterWith is a raftnode cluster of shape o.
func raftClusterWith(t *testing.T, o clusterOpts) (*cluster, *raftnode.Target) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a raftnode cluster: skipped in -short mode")
	}
	var rn *raftnode.Target
	cl := testClusterWith(t, o, func(env sut.Env) sut.Target {
		bin, err := raftnode.Bin(filepath.Join(env.Dir, "bin"))
		require.NoError(t, err)
		rn = raftnode.New(bin, o.unsafe, env)
		return rn
	})
	return cl, rn
}

// testCluster starts a cluster of the target mk makes, on the named runtime (process: in
// network namespaces; docker: skipped without a daemon), with the link proxy when links
// is set, and waits until it is ready. The test's cleanup removes all of it.
func testCluster(t *testing.T, runtimeName string, n int, links bool, mk func(sut.Env) sut.Target) *cluster {
	t.Helper()
	return testClusterWith(t, clusterOpts{runtime: runtimeName, nodes: n, links: links}, mk)
}

// testClusterWith is testCluster of shape o (its unsafe aside: mk's).
func testClusterWith(t *testing.T, o clusterOpts, mk func(sut.Env) sut.Target) *cluster {
	t.Helper()
	runtimeName, n, links := o.runtime, o.nodes, o.links
	ctx := context.Background()
	dir := t.TempDir()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	// A run id of its own (namespaces, links, containers are named after it), also for
	// clusters of parallel tests started in the same instant.
	id := fmt.Sprintf("f%08d%02d", time.Now().UnixNano()%1e8, clusterSeq.Add(1)%100)
	var rt runtime.Runtime
	switch runtimeName {
	case "process":
		needNetns(t)
		rt = process.NewProcessRuntime(id, dir)
	case "docker":
		needDocker(t)
		drt, err := docker.New(id, dir, "")
		require.NoError(t, err)
		if a := drt.Abilities(); !a.Links && links {
			t.Skip("packet faults unavailable in docker here: " + a.Why)
		}
		rt = drt
	default:
		t.Fatalf("no runtime %q", runtimeName)
	}
	if o.disks {
		if ok, why := diskCaps(rt.Abilities()).Has(nemesis.CapDisks); !ok {
			t.Skip("needs disks that can lose power: " + why)
		}
	}
	var lf *linkFaults
	var ds *disks
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range names { // for CI, where the kept directory cannot be read
				t.Logf("%s's log, last lines:\n%s", n, logTail(filepath.Join(dir, "nodes", n), 15))
			}
			keepFailed(t, dir, t.Name()+"-"+id)
		}
		if lf != nil {
			assert.NoError(t, lf.Close())
		}
		assert.NoError(t, rt.Close(ctx))
		assert.NoError(t, ds.Close(ctx))
	})
	env := sut.Env{Nodes: names, Reach: rt.HostPort, RunID: "test", Dir: dir, Logf: t.Logf}
	var tg sut.Target
	env.PeerReach = func(node string, port int) string {
		if lf != nil && port == tg.Peers().Port {
			return lf.PeerAddr(node)
		}
		return rt.HostPort(node, port)
	}
	tg = mk(env)
	require.NoError(t, rt.Prepare(ctx, names, tg.Ports()))
	cl := newCluster(rt, tg, names)
	cl.logTail = func(n string) string { return logTail(filepath.Join(dir, "nodes", n), 5) }
	if links {
		var err error
		lf, err = startLinkFaults(ctx, rt, tg.Peers(), names, 1, t.Logf)
		require.NoError(t, err)
		cl.links = lf
	}
	caps := runtimeCaps(rt.Abilities()).Union(implemented(tg))
	if !links {
		caps = withoutLinks(caps)
	}
	if o.disks {
		var err error
		ds, err = mountDisks(rt, id, names, 0) // strict: the tests time nothing
		require.NoError(t, err)
		cl.disks = ds
		caps = caps.Union(nemesis.Can(nemesis.CapDisks))
	}
	require.NoError(t, cl.assemble(caps))
	for _, n := range names {
		require.NoError(t, cl.launch(ctx, n))
	}
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, tg.Ready))
	return cl
}

// clusterSeq counts the test clusters started, for their run ids.
var clusterSeq atomic.Int64

// implemented are the capabilities tg implements (a test's target, made without its
// Options).
func implemented(tg sut.Target) nemesis.Caps {
	var caps []nemesis.Capability
	for x, ok := range map[nemesis.Capability]bool{
		nemesis.CapClock:     is[nemesis.Clocker](tg),
		nemesis.CapMembers:   is[nemesis.Members](tg),
		nemesis.CapUpgrade:   is[nemesis.Upgrader](tg),
		nemesis.CapMaintain:  is[nemesis.Maintainer](tg),
		nemesis.CapSnapshots: is[nemesis.Snapshotter](tg),
		nemesis.CapMessages:  tg.Peers().Messages,
		nemesis.CapStreams:   !tg.Peers().Messages,
	} {
		if ok {
			caps = append(caps, x)
		}
	}
	if f, ok := tg.(nemesis.Failpointer); ok {
		if fps, err := f.Failpoints(context.Background(), "n1"); err == nil && len(fps) > 0 {
			caps = append(caps, nemesis.CapFailpoints)
		}
	}
	if f, ok := tg.(sut.Files); ok {
		for _, k := range nemesis.FileKinds() {
			if len(f.FileGlobs(k)) > 0 {
				caps = append(caps, k.Cap())
			}
		}
	}
	return nemesis.Can(caps...)
}

func is[T any](x any) bool { _, ok := x.(T); return ok }

// writeLatency returns the median time of a few writes through node.
func writeLatency(t *testing.T, rn *raftnode.Target, node string) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		require.NoError(t, rn.Client(node).Put(ctx, fmt.Sprintf("lat%d", i), "x"))
		ds = append(ds, time.Since(t0))
		cancel()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func TestPacketDelayTakesEffectAndHeals(t *testing.T) {
	cl, rn := raftCluster(t, 3, true)
	ctx := context.Background()
	leader, err := cl.Leader(ctx)
	require.NoError(t, err)
	before := writeLatency(t, rn, leader)
	// Every message into the leader waits 300 ms: a write commits only once a follower's
	// acknowledgement has come back, so it takes at least that long.
	var into []nemesis.Link
	for _, n := range cl.Nodes() {
		if n != leader {
			into = append(into, nemesis.Link{From: n, To: leader})
		}
	}
	require.NoError(t, cl.links.Packets(ctx, into, nemesis.Packets{Delay: 300 * time.Millisecond}))
	during := writeLatency(t, rn, leader)
	assert.GreaterOrEqual(t, during, 300*time.Millisecond, "delayed acknowledgements slow every write (before: %v)", before)
	require.NoError(t, cl.links.HealPackets(ctx))
	after := writeLatency(t, rn, leader)
	assert.Less(t, after, 150*time.Millisecond, "healed (before %v, during %v)", before, during)
	st := cl.links.proxy.(messageProxy).Stats()
	delayed := uint64(0)
	for _, l := range into {
		delayed += st[linkStat(l)].Delayed
	}
	assert.Positive(t, delayed, "the proxy delayed messages on the faulty links")
}

func TestPacketLossOnEveryLinkStopsAndHeals(t *testing.T) {
	t.Parallel()
	cl, rn := raftCluster(t, 3, true)
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
	require.NoError(t, cl.links.Packets(ctx, all, nemesis.Packets{Loss: 1}))
	ns, err := cl.rt.(runtime.NetworkRuntime).NetNS("n1")
	require.NoError(t, err)
	assert.False(t, reaches(t, ns, cl.rt.HostPort("n2", raftnode.ClientPort)), "loss 100%: n1 cannot reach n2")
	wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	err = rn.Client(leader).Put(wctx, "lost", "x")
	cancel()
	assert.Error(t, err, "no quorum while every packet between nodes is lost")
	require.NoError(t, cl.links.HealPackets(ctx))
	assert.True(t, reaches(t, ns, cl.rt.HostPort("n2", raftnode.ClientPort)), "healed")
	require.NoError(t, sut.Poll(ctx, 200*time.Millisecond, rn.Ready))
}

// reaches reports whether an HTTP request from inside the namespace at ns gets any answer
// from addr.
func reaches(t *testing.T, ns, addr string) bool {
	t.Helper()
	return exec.Command("nsenter", "--net="+ns, os.Args[0], "dial", addr).Run() == nil
}

func linkStat(l nemesis.Link) linkproxy.Link { return linkproxy.Link{From: l.From, To: l.To} }

func TestClockFaultShowsInTheNode(t *testing.T) {
	t.Parallel()
	cl, rn := raftCluster(t, 3, false)
	ctx := context.Background()
	require.NoError(t, cl.powers.Clock.SetClock(ctx, "n2", -30*time.Second, 0.5))
	got, err := rn.Client("n2").Clock(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.Clock{OffsetMS: -30000, Rate: 0.5}, got)
	assert.Equal(t, []string{"n2"}, cl.marked(cl.clocked))
	require.NoError(t, cl.HealAll(ctx))
	got, err = rn.Client("n2").Clock(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.Clock{OffsetMS: 0, Rate: 1}, got, "HealAll resets every clock")
}

func TestReplacedMemberHasANewIDAndTheSameData(t *testing.T) {
	t.Parallel()
	cl, rn := raftCluster(t, 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for i := range 20 {
		require.NoError(t, rn.Client("n1").Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprint("v", i)))
	}
	require.NoError(t, cl.powers.Members.Healthy(ctx))
	oldID := rn.ID("n2")
	require.NoError(t, nemesis.RemoveMember(ctx, cl.powers, "n2"))
	assert.False(t, cl.rt.Running("n2"), "a removed member is stopped")
	left, err := os.ReadDir(cl.rt.Env("n2").DataDir)
	require.NoError(t, err)
	assert.Empty(t, left, "and wiped")
	require.NoError(t, sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error { // n2 may have led
		return rn.Client("n1").Put(ctx, "k0", "while n2 was out")
	}))
	require.NoError(t, nemesis.AddMember(ctx, cl.powers, "n2"))
	newID := rn.ID("n2")
	assert.NotEqual(t, oldID, newID, "back under a new id")
	st, err := rn.Client("n2").Status(ctx)
	require.NoError(t, err)
	assert.Equal(t, newID, st.ID)
	var ids []uint64
	for _, m := range st.Members {
		ids = append(ids, m.ID)
	}
	assert.ElementsMatch(t, []uint64{rn.ID("n1"), newID, rn.ID("n3")}, ids)
	assert.False(t, slices.Contains(ids, oldID))
	for i := range 20 {
		want := fmt.Sprint("v", i)
		if i == 0 {
			want = "while n2 was out"
		}
		v, _, err := rn.Client("n2").Get(ctx, fmt.Sprintf("k%d", i))
		require.NoError(t, err)
		assert.Equal(t, want, v, "the new member has the others' data")
	}
	require.NoError(t, cl.powers.Members.Healthy(ctx))
}

// A member fault cut short leaves a member out: HealAll brings it back (or says which
// is not).
func TestHealAllAddsBackARemovedMember(t *testing.T) {
	t.Parallel()
	cl, _ := raftCluster(t, 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.NoError(t, cl.powers.Members.Healthy(ctx))
	require.NoError(t, nemesis.RemoveMember(ctx, cl.powers, "n3"))
	assert.Equal(t, []string{"n3"}, cl.marked(cl.removed))
	require.NoError(t, cl.HealAll(ctx))
	assert.Empty(t, cl.marked(cl.removed))
	assert.True(t, cl.rt.Running("n3"))
	require.NoError(t, cl.powers.Members.Healthy(ctx), "every member back")
}

// A kill or a pause that the run's end cuts short is finished: the killed node is known
// to be down (not reported as a crash), the paused one known to be paused (and resumed
// by the heal). Seen: a kill injected as the nemesis's time ran out reported two nodes
// as "exited by itself".
func TestAKillOrPauseAtTheRunsEndIsFinished(t *testing.T) {
	t.Parallel()
	cl, _ := raftCluster(t, 3, false)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.NoError(t, cl.Kill(ctx, "n1"))
	require.NoError(t, cl.Pause(ctx, "n2"))
	time.Sleep(300 * time.Millisecond)
	cl.CheckExits()
	assert.Empty(t, cl.Exits(), "the harness killed n1: not a crash")
	require.NoError(t, cl.HealAll(context.Background()))
	for _, n := range []string{"n1", "n2", "n3"} {
		assert.True(t, cl.rt.Running(n), "%s runs again", n)
	}
	assert.Empty(t, cl.marked(cl.paused), "no node is left paused")
}

// A combined fault holds both of its parts on real nodes at once: the partition really
// cuts a node off and the clock part's node really runs on a changed clock; its heal
// undoes both.
func TestACombinedFaultHoldsBothPartsAtOnce(t *testing.T) {
	t.Parallel()
	cl, rn := raftCluster(t, 3, false)
	ctx := context.Background()
	fs, _, err := nemesis.Choose([]string{"partition+clock"}, 3, runtimeCaps(cl.rt.Abilities()).Union(implemented(cl.target)))
	require.NoError(t, err)
	require.Len(t, fs, 1)
	for seed := range uint64(3) {
		inj, err := fs[0].Inject(ctx, nemesis.Env{Cluster: cl, Powers: cl.powers}, rand.New(rand.NewPCG(seed, 9)))
		require.NoError(t, err)
		cut, clocked := 0, 0
		for _, a := range cl.Nodes() {
			ns, err := cl.rt.(runtime.NetworkRuntime).NetNS(a)
			require.NoError(t, err)
			for _, b := range cl.Nodes() {
				if a != b && !reaches(t, ns, cl.rt.HostPort(b, raftnode.ClientPort)) {
					cut++
				}
			}
		}
		// a strobe flips between its offset and true time: look a few times
		for try := 0; try < 10 && clocked == 0; try++ {
			for _, a := range cl.Nodes() {
				if c, err := rn.Client(a).Clock(ctx); err == nil && c != (client.Clock{OffsetMS: 0, Rate: 1}) {
					clocked++
				}
			}
			time.Sleep(70 * time.Millisecond)
		}
		assert.Positive(t, cut, "seed %d: the partition cuts links (%v)", seed, inj.Value)
		assert.Positive(t, clocked, "seed %d: a clock is changed meanwhile (%v)", seed, inj.Value)
		require.NoError(t, inj.Heal(ctx))
		for _, a := range cl.Nodes() {
			c, err := rn.Client(a).Clock(ctx)
			require.NoError(t, err)
			assert.Equal(t, client.Clock{OffsetMS: 0, Rate: 1}, c, "seed %d: %s's clock reset", seed, a)
		}
		ns, err := cl.rt.(runtime.NetworkRuntime).NetNS("n1")
		require.NoError(t, err)
		for _, b := range []string{"n2", "n3"} {
			assert.True(t, reaches(t, ns, cl.rt.HostPort(b, raftnode.ClientPort)), "seed %d: healed, n1 reaches %s", seed, b)
		}
	}
}

// A partition in force holds for a node started again while it lasts — in a container,
// whose restart is a new network namespace, the harness gives it the partition again —
// and its heal reaches every node.
func TestAPartitionHoldsAcrossARestart(t *testing.T) {
	t.Parallel()
	bothRuntimes(t, func(t *testing.T, runtimeName string) {
		cl, _ := raftClusterOn(t, runtimeName, 3, false)
		ctx := context.Background()
		// Only n1 filters (n1 drops n2 and n3, neither drops n1): what is cut after n1's
		// restart is cut by n1's own new namespace.
		g := nemesis.Grudge{"n1": {"n2", "n3"}}
		require.NoError(t, cl.net.Partition(ctx, g, false))
		from := func(a, b string) bool {
			t.Helper()
			ns, err := cl.rt.(runtime.NetworkRuntime).NetNS(a)
			require.NoError(t, err)
			return reaches(t, ns, cl.rt.HostPort(b, raftnode.ClientPort))
		}
		assert.False(t, from("n1", "n2"), "n1 is cut off")
		assert.False(t, from("n3", "n1"), "both ways")
		assert.True(t, from("n2", "n3"), "n2 and n3 still talk")
		require.NoError(t, cl.Kill(ctx, "n1"))
		require.NoError(t, cl.Start(ctx, "n1"))
		assert.False(t, from("n1", "n2"), "n1 is cut off after its restart too")
		assert.False(t, from("n3", "n1"))
		require.NoError(t, cl.net.HealPartition(ctx))
		assert.True(t, from("n1", "n2"), "healed")
		assert.True(t, from("n3", "n1"), "healed")
	})
}
