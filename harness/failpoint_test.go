package harness

import (
	"context"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/etcd"
	"github.com/faultline/faultline/nemesis"
)

// The failpoint fault takes effect on etcd built with failpoints, on both runtimes: a
// panic armed at raftBeforeSave on the leader takes it down at that point (its log
// names the point, and the harness counts the exit as the fault's, not a crash), and
// the heal starts it again; a sleep armed there stalls every write through the leader
// by at least the sleep until the heal.
func TestFailpointTakesEffect(t *testing.T) {
	t.Parallel()
	bothRuntimes(t, testFailpointTakesEffect)
}

func testFailpointTakesEffect(t *testing.T, rt string) {
	if testing.Short() {
		t.Skip("builds etcd with failpoints and starts a cluster: skipped in -short mode")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := etcd.FailpointBinary(ctx, etcd.DefaultVersion, func(l string) { t.Log(l) })
	require.NoError(t, err)
	names, err := etcd.FailpointNames(ctx, bin)
	require.NoError(t, err)
	require.Contains(t, names, "raftBeforeSave")
	var et *etcd.Target
	cl := testCluster(t, rt, 3, false, func(env sut.Env) sut.Target {
		et = etcd.New(etcd.Config{Binary: bin, Version: etcd.DefaultVersion,
			Failpoints: []nemesis.Failpoint{{Name: "raftBeforeSave"}}}, env)
		t.Cleanup(func() { _ = et.Close() })
		return et
	})

	notes := injectAndHeal(t, cl, "failpoint:panic-leader")
	t.Logf("notes: %v", notes)
	require.True(t, hasNote(notes, "failpoint-crashed", "faultline failpoint raftBeforeSave"), "%v", notes)
	require.Empty(t, cl.Exits(), "the exit at the failpoint is the fault's")

	fs, _, err := nemesis.Choose([]string{"failpoint:sleep-leader"}, 3, cl.caps)
	require.NoError(t, err)
	notes = nil
	env := nemesis.Env{Cluster: cl, Powers: cl.powers, Note: func(f, n, v string) { notes = append(notes, f+" "+n+": "+v) }}
	leader := waitLeader(t, cl, "", 30*time.Second)
	inj, err := fs[0].Inject(ctx, env, rand.New(rand.NewPCG(2, 2)))
	require.NoError(t, err)
	require.Equal(t, []string{leader}, inj.Nodes)
	m := regexp.MustCompile(`raftBeforeSave=sleep\((\d+)\)`).FindStringSubmatch(inj.Value.String())
	require.NotNil(t, m, "the value names the stall: %v", inj.Value)
	ms, _ := strconv.Atoi(m[1])
	lat := etcdWriteLatency(t, et, leader)
	require.GreaterOrEqual(t, lat, time.Duration(ms)*time.Millisecond, "every write waits for the stalled save")
	require.NoError(t, inj.Heal(ctx))
	require.Empty(t, cl.marked(cl.armed), "the heal disarmed it")
}
