package harness

import (
	"cmp"
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/raftnode"
	"github.com/faultline/faultline/nemesis"
)

// injectAndHeal injects fault entry on cl (its only variant drawn) and heals it, and
// waits until the cluster serves again; it returns the notes the fault took.
func injectAndHeal(t *testing.T, cl *cluster, entry string) []string {
	t.Helper()
	ctx := context.Background()
	fs, _, err := nemesis.Choose([]string{entry}, len(cl.Nodes()), cl.caps)
	require.NoError(t, err)
	var notes []string
	env := nemesis.Env{Cluster: cl, Powers: cl.powers, Note: func(f, n, v string) { notes = append(notes, f+" "+n+": "+v) }}
	inj, err := fs[0].Inject(ctx, env, rand.New(rand.NewPCG(1, 1)))
	require.NoError(t, err)
	require.NoError(t, inj.Heal(ctx))
	rctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(rctx, 200*time.Millisecond, cl.target.Ready))
	return notes
}

// onLeader calls f with the leader until it succeeds (30 s at most).
func onLeader(t *testing.T, cl *cluster, f func(ctx context.Context, leader string) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		l, err := cl.Leader(ctx)
		if err != nil || l == "" {
			return cmp.Or(err, context.DeadlineExceeded)
		}
		return f(ctx, l)
	}))
}

// putAcknowledged writes key through the leader until a write is acknowledged.
func putAcknowledged(t *testing.T, cl *cluster, rn *raftnode.Target, key, value string) {
	t.Helper()
	onLeader(t, cl, func(ctx context.Context, l string) error { return rn.Client(l).Put(ctx, key, value) })
}

// readLinearizable reads key through the leader.
func readLinearizable(t *testing.T, cl *cluster, rn *raftnode.Target, key string) (v string, found bool) {
	t.Helper()
	onLeader(t, cl, func(ctx context.Context, l string) (err error) {
		v, found, err = rn.Client(l).Get(ctx, key)
		return err
	})
	return v, found
}

// The power-loss fault takes effect, on both runtimes: a write raftnode acknowledged
// (synced by a majority) survives the whole cluster losing power; one that raftnode
// --unsafe no-fsync acknowledged survives a kill of every node (the page cache keeps
// it) and not a power loss. The disks are the nodes' own data directories, in a
// container as /data.
func TestPowerLossTakesEffect(t *testing.T) {
	t.Parallel()
	for _, rt := range []string{"process", "docker"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			t.Run("correct", func(t *testing.T) {
				t.Parallel()
				cl, rn := raftClusterWith(t, clusterOpts{runtime: rt, nodes: 3, disks: true})
				putAcknowledged(t, cl, rn, "k", "synced")
				notes := injectAndHeal(t, cl, "power-loss:all")
				require.Len(t, notes, 3, "each node's loss is noted: %v", notes)
				v, found := readLinearizable(t, cl, rn, "k")
				require.True(t, found)
				require.Equal(t, "synced", v)
			})
			t.Run("no-fsync", func(t *testing.T) {
				t.Parallel()
				cl, rn := raftClusterWith(t, clusterOpts{runtime: rt, nodes: 3, disks: true, unsafe: "no-fsync"})
				putAcknowledged(t, cl, rn, "k", "unsynced")
				injectAndHeal(t, cl, "kill:all")
				v, found := readLinearizable(t, cl, rn, "k")
				require.True(t, found, "a kill keeps the page cache")
				require.Equal(t, "unsynced", v)
				notes := injectAndHeal(t, cl, "power-loss:all")
				t.Logf("lost: %v", notes)
				_, found = readLinearizable(t, cl, rn, "k")
				require.False(t, found, "a power loss drops what no node synced")
				require.Empty(t, cl.Exits())
			})
		})
	}
}
