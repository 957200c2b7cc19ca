package harness

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/process"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/etcd"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/workload"
)

// Faults observed to take effect on real etcd members (the newest 3.7, built once from
// the module proxy and cached), on the process runtime in network namespaces.

// etcdBinary returns the cached etcd build of etcd.DefaultVersion, building it the first
// time (about a minute).
func etcdBinary(t *testing.T) (bin, version string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an etcd cluster: skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := etcd.Binary(ctx, etcd.DefaultVersion, func(line string) { t.Log(line) })
	require.NoError(t, err)
	version, err = etcd.BinaryVersion(ctx, bin)
	require.NoError(t, err)
	return bin, version
}

// etcdCluster starts n etcd members on the named runtime, with the link proxy when
// links is set.
func etcdCluster(t *testing.T, runtimeName string, n int, links bool) (*cluster, *etcd.Target) {
	t.Helper()
	bin, version := etcdBinary(t)
	var et *etcd.Target
	cl := testCluster(t, runtimeName, n, links, func(env sut.Env) sut.Target {
		et = etcd.New(etcd.Config{Binary: bin, Version: version}, env)
		t.Cleanup(func() { _ = et.Close() })
		return et
	})
	return cl, et
}

// etcdWrite writes key through node with a client of the workload's (process i talks
// to node i).
func etcdWrite(ctx context.Context, t *testing.T, et *etcd.Target, node, key, value string) error {
	t.Helper()
	c, got, err := et.Opener(5*time.Second)(ctx, slices.Index([]string{"n1", "n2", "n3", "n4", "n5"}, node))
	require.NoError(t, err)
	require.Equal(t, node, got)
	defer c.(interface{ Close() error }).Close()
	return c.Write(ctx, key, value)
}

// etcdWriteLatency returns the median time of a few writes through node.
func etcdWriteLatency(t *testing.T, et *etcd.Target, node string) time.Duration {
	t.Helper()
	var ds []time.Duration
	for i := range 7 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		t0 := time.Now()
		require.NoError(t, etcdWrite(ctx, t, et, node, fmt.Sprintf("lat%d", i), "x"))
		ds = append(ds, time.Since(t0))
		cancel()
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// waitLeader waits until the cluster names a leader other than not, and returns it.
func waitLeader(t *testing.T, cl *cluster, not string, within time.Duration) string {
	t.Helper()
	var leader string
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		l, err := cl.Leader(ctx)
		leader = l
		return err == nil && l != "" && l != not
	}, within, 100*time.Millisecond, "a leader other than %q", not)
	return leader
}

// bothRuntimes runs f as a subtest on each runtime, the two in parallel.
func bothRuntimes(t *testing.T, f func(t *testing.T, runtimeName string)) {
	for _, rt := range []string{"process", "docker"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			f(t, rt)
		})
	}
}

func TestEtcdPartitionedLeaderLosesLeadership(t *testing.T) {
	t.Parallel()
	bothRuntimes(t, testEtcdPartitionedLeaderLosesLeadership)
}

func testEtcdPartitionedLeaderLosesLeadership(t *testing.T, runtimeName string) {
	cl, et := etcdCluster(t, runtimeName, 3, false)
	ctx := context.Background()
	old := waitLeader(t, cl, "", 10*time.Second)
	others := slices.DeleteFunc(cl.Nodes(), func(n string) bool { return n == old })
	g, err := nemesis.MakeGrudge("leader", append([]string{old}, others...), nil)
	require.NoError(t, err)
	require.NoError(t, cl.net.Partition(ctx, g, false))
	newLeader := waitLeader(t, cl, old, 15*time.Second)
	t.Logf("partitioned leader %s; the majority elected %s", old, newLeader)
	require.NoError(t, etcdWrite(ctx, t, et, newLeader, "during", "x"), "the majority serves")
	// The isolated old leader steps down (etcd runs raft with CheckQuorum): a write
	// through it cannot commit.
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	err = etcdWrite(wctx, t, et, old, "stranded", "x")
	cancel()
	assert.Error(t, err, "the isolated old leader cannot commit")
	require.NoError(t, cl.net.HealPartition(ctx))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, et.Ready), "healed")
}

func TestEtcdPauseStopsTheMemberAndKillRestartsOnItsData(t *testing.T) {
	t.Parallel()
	cl, et := etcdCluster(t, "process", 3, false)
	ctx := context.Background()
	prt := cl.rt.(*process.ProcessRuntime)
	require.NoError(t, cl.Pause(ctx, "n2"))
	st, err := prt.State("n2")
	require.NoError(t, err)
	assert.Equal(t, "T", string(st), "a paused member's process is stopped")
	wctx, cancel := context.WithTimeout(ctx, time.Second)
	assert.Error(t, etcdWrite(wctx, t, et, "n2", "paused", "x"), "a paused member answers nothing")
	cancel()
	require.NoError(t, cl.Resume(ctx, "n2"))
	require.Eventually(t, func() bool { // a resumed leader steps down first: give it time
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return etcdWrite(wctx, t, et, "n2", "resumed", "x") == nil
	}, 30*time.Second, 100*time.Millisecond, "a resumed member serves again")

	require.NoError(t, cl.Kill(ctx, "n3"))
	assert.False(t, cl.rt.Running("n3"))
	require.Eventually(t, func() bool { // n3 may have led: the others elect another first
		wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		return etcdWrite(wctx, t, et, "n1", "while-n3-down", "v") == nil
	}, 30*time.Second, 100*time.Millisecond, "the others serve while n3 is down")
	require.NoError(t, cl.Start(ctx, "n3"))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, et.Ready), "the restarted member rejoins")
	c, _, err := et.Opener(5*time.Second)(ctx, 2) // process 2 talks to n3
	require.NoError(t, err)
	defer c.(interface{ Close() error }).Close()
	require.Eventually(t, func() bool {
		v, ok, err := c.Read(ctx, "while-n3-down")
		return err == nil && ok && v == "v"
	}, 10*time.Second, 100*time.Millisecond, "n3 caught up on its data")
}

func TestEtcdPacketFaultsTakeEffectOnTheStreams(t *testing.T) {
	// Not parallel: it compares commit latencies before, during and after a delay, and
	// beside the other integration tests the healed cluster was as slow as half the
	// delayed one (197 ms against 176 ms in make test).
	bothRuntimes(t, testEtcdPacketFaultsTakeEffectOnTheStreams)
}

func testEtcdPacketFaultsTakeEffectOnTheStreams(t *testing.T, runtimeName string) {
	cl, et := etcdCluster(t, runtimeName, 3, true)
	ctx := context.Background()
	leader := waitLeader(t, cl, "", 10*time.Second)
	var out []nemesis.Link
	for _, n := range cl.Nodes() {
		if n != leader {
			out = append(out, nemesis.Link{From: leader, To: n})
		}
	}
	before := etcdWriteLatency(t, et, leader)
	require.NoError(t, cl.links.Packets(ctx, out, nemesis.Packets{Delay: 300 * time.Millisecond}))
	during := etcdWriteLatency(t, et, leader)
	require.NoError(t, cl.links.HealPackets(ctx))
	after := etcdWriteLatency(t, et, leader)
	t.Logf("commit latency through the leader: %v before, %v with 300ms on its outgoing streams, %v after", before, during, after)
	assert.GreaterOrEqual(t, during, 300*time.Millisecond, "a commit needs the delayed append to reach a follower")
	assert.Less(t, after, during/2, "healed")

	// A blackhole on the leader's outgoing streams is a one-way cut: the followers stop
	// hearing it and elect another; the leader still hears them.
	require.NoError(t, cl.links.Packets(ctx, out, nemesis.Packets{Blackhole: true}))
	other := waitLeader(t, cl, leader, 20*time.Second)
	t.Logf("blackholed %s's outgoing links: %s was elected", leader, other)
	require.NoError(t, cl.links.HealPackets(ctx))
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, et.Ready), "healed")
}

// etcd has no clock hook: the clock fault is the runtime's to give (per-process clocks),
// refused where the runtime has none, with the reason.
func TestEtcdClockComesFromTheRuntime(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "etcd") // an etcd that only says which release it is
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho 'etcd Version: 3.7.3'\n"), 0o755))
	spec := DefaultSpec()
	spec.Runtime = "memory" // no processes, no per-process clocks
	require.NoError(t, spec.Set("etcd-binary", fake))
	spec.Nemesis = List{"clock"}
	_, err := NewPlan(context.Background(), spec)
	var ue *UsageError
	require.ErrorAs(t, err, &ue, "an explicit clock fault the cluster cannot take is bad input")
	assert.Contains(t, err.Error(), "clock")
	rs, err := spec.Resolve()
	require.NoError(t, err)
	net := runtime.Abilities{Partition: true, Isolate: true, Links: true}
	faults, skipped := nemesis.ChooseAll(3, runtimeCaps(net).Union(rs.Options().Caps()))
	assert.Contains(t, skipped, "clock", "all leaves clock out, saying why")
	assert.Contains(t, skipped["packet:duplicate"], "streams", "etcd's peers keep streams")
	for _, f := range faults {
		assert.False(t, f.Has(nemesis.Clock))
	}
	net.Clock = true
	faults, skipped = nemesis.ChooseAll(3, runtimeCaps(net).Union(rs.Options().Caps()))
	assert.NotContains(t, skipped, "clock", "a runtime with per-process clocks gives etcd the clock fault")
	assert.True(t, slices.ContainsFunc(faults, func(f *nemesis.Fault) bool { return f.Has(nemesis.Clock) }))
}

// etcdUpgradeCluster starts 3 members on v3.6.16 that may move to etcd.DefaultVersion.
func etcdUpgradeCluster(t *testing.T, runtimeName string) (*cluster, *etcd.Target) {
	t.Helper()
	bin37, v37 := etcdBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin36, err := etcd.Binary(ctx, "v3.6.16", func(line string) { t.Log(line) })
	require.NoError(t, err)
	var et *etcd.Target
	cl := testCluster(t, runtimeName, 3, false, func(env sut.Env) sut.Target {
		et = etcd.New(etcd.Config{Binary: bin36, Version: "v3.6.16", Versions: []string{"v3.6.16", v37},
			Binaries: map[string]string{"v3.6.16": bin36, v37: bin37}}, env)
		t.Cleanup(func() { _ = et.Close() })
		return et
	})
	return cl, et
}

// A member restarted on another release keeps its data and its place, in a process
// and in a container (where the new program means a new image and container, on the
// same data and address).
func TestEtcdMemberUpgradedInPlace(t *testing.T) {
	t.Parallel()
	bothRuntimes(t, func(t *testing.T, runtimeName string) {
		cl, et := etcdUpgradeCluster(t, runtimeName)
		ctx := context.Background()
		require.NoError(t, etcdWrite(ctx, t, et, "n1", "before", "v"))
		assert.Equal(t, "v3.6.16", et.Version("n2"))
		require.NoError(t, nemesis.Restart(ctx, cl.powers, "n2", etcd.DefaultVersion))
		assert.Equal(t, etcd.DefaultVersion, et.Version("n2"))
		c, _, err := et.Opener(5*time.Second)(ctx, 1) // process 1 talks to n2
		require.NoError(t, err)
		defer c.(interface{ Close() error }).Close()
		v, ok, err := c.Read(ctx, "before")
		require.NoError(t, err)
		assert.True(t, ok && v == "v", "the upgraded member has its data")
		// A cluster just started runs at 3.0.0 until its leader first decides the cluster
		// version (every few seconds; seen on docker): wait for the decision.
		cv, err := et.ClusterVersion(ctx)
		for deadline := time.Now().Add(30 * time.Second); (err != nil || cv == "3.0.0") && time.Now().Before(deadline); {
			time.Sleep(200 * time.Millisecond)
			cv, err = et.ClusterVersion(ctx)
		}
		require.NoError(t, err)
		assert.Equal(t, "3.6.0", cv, "a mixed cluster runs at its lowest release")
	})
}

// A member replaced through etcd's cluster API comes back empty, as a learner promoted
// once in sync, with the others' data.
func TestEtcdMemberReplaced(t *testing.T) {
	t.Parallel()
	cl, et := etcdCluster(t, "process", 3, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	require.NoError(t, etcdWrite(ctx, t, et, "n1", "before", "v"))
	require.NoError(t, cl.powers.Members.Healthy(ctx))
	require.NoError(t, nemesis.RemoveMember(ctx, cl.powers, "n3"))
	assert.False(t, cl.rt.Running("n3"), "a removed member is stopped")
	require.NoError(t, nemesis.AddMember(ctx, cl.powers, "n3"))
	require.NoError(t, cl.powers.Members.Healthy(ctx))
	c, _, err := et.Opener(5*time.Second)(ctx, 2) // process 2 talks to n3
	require.NoError(t, err)
	defer c.(interface{ Close() error }).Close()
	v, ok, err := c.Read(ctx, "before")
	require.NoError(t, err)
	assert.True(t, ok && v == "v", "the new member has the others' data")
}

// The snapshot partition holds a follower off until the leader has compacted its log
// past it; healing it makes the leader send a snapshot, which the fault records.
func TestEtcdSnapshotPartitionSendsASnapshot(t *testing.T) {
	t.Parallel()
	bin, version := etcdBinary(t)
	var et *etcd.Target
	cl := testCluster(t, "process", 3, false, func(env sut.Env) sut.Target {
		et = etcd.New(etcd.Config{Binary: bin, Version: version, SnapshotCount: 100, SnapshotCatchUpEntries: 50}, env)
		t.Cleanup(func() { _ = et.Close() })
		return et
	})
	fs, _, err := nemesis.Choose([]string{"partition:snapshot"}, 3, runtimeCaps(cl.rt.Abilities()).Union(implemented(et)))
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	wctx, stopWriting := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { // the load that puts the isolated follower behind
		defer close(done)
		clients := map[string]workload.Client{}
		for i, n := range cl.Nodes() {
			c, _, err := et.Opener(time.Second)(wctx, i)
			require.NoError(t, err)
			defer c.(interface{ Close() error }).Close()
			clients[n] = c
		}
		for i := 0; wctx.Err() == nil; i++ { // through every member: one is cut off
			for _, c := range clients {
				octx, cancel := context.WithTimeout(wctx, time.Second)
				_ = c.Write(octx, fmt.Sprintf("k%d", i%50), fmt.Sprint(i))
				cancel()
			}
		}
	}()
	var notes []string
	env := nemesis.Env{Cluster: cl, Powers: cl.powers, Note: func(f, n, _ string) { notes = append(notes, f+" "+n) }}
	inj, err := fs[0].Inject(ctx, env, rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, err)
	require.Len(t, inj.Nodes, 1)
	node := inj.Nodes[0]
	assert.Contains(t, notes, "snapshot-due "+node)
	stopWriting()
	<-done
	require.NoError(t, inj.Heal(ctx))
	assert.Contains(t, notes, "snapshot-sent "+node, "notes: %v", notes)
	rctx, cancel2 := context.WithTimeout(ctx, 30*time.Second)
	defer cancel2()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, et.Ready))
}

// --clock picks the clock fault's way: hook (the target's only), process (the
// runtime's only); neither is taken for the other.
func TestClockCapsFollowTheChoice(t *testing.T) {
	proc := runtimeCaps(runtime.Abilities{Clock: true})
	noProc := runtimeCaps(runtime.Abilities{ClockWhy: "no ptrace here"})
	hook := nemesis.Can(nemesis.CapClock)
	noHook := nemesis.Caps{}.Lacks(nemesis.CapClock, "etcd has no clock hook")
	for _, tc := range []struct {
		via        string
		rt, target nemesis.Caps
		ok         bool
		why        string
	}{
		{"", proc, noHook, true, ""},
		{"", noProc, hook, true, ""},
		{"", noProc, noHook, false, "no ptrace here"},
		{ClockHook, proc, noHook, false, "etcd has no clock hook"},
		{ClockHook, noProc, hook, true, ""},
		{ClockProcess, noProc, hook, false, "no ptrace here"},
		{ClockProcess, proc, hook, true, ""},
	} {
		ok, why := clockCaps(tc.via, tc.rt, tc.target).Has(nemesis.CapClock)
		assert.Equal(t, tc.ok, ok, "clock %q", tc.via)
		if !tc.ok {
			assert.Contains(t, why, tc.why, "clock %q", tc.via)
		}
	}
	spec := DefaultSpec()
	spec.Clock = "ntp"
	_, err := spec.Resolve()
	var ue *UsageError
	require.ErrorAs(t, err, &ue)
	assert.Contains(t, err.Error(), `clock: "ntp" is not one of hook, process`)
}
