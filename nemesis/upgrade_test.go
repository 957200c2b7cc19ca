package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRollingUpgradeMovesEveryMemberOneReleaseATurn(t *testing.T) {
	c := newFake().withPath("v3.5.35", "v3.6.16", "v3.7.3")
	var notes []string
	note := func(f, n, v string) { notes = append(notes, fmt.Sprint(f, " ", n, " ", v)) }
	ctx := context.Background()
	up := fault(t, c, "rolling-upgrade")

	inj, err := injectWith(ctx, c, c, up, 1, note)
	require.NoError(t, err)
	assert.ElementsMatch(t, five, inj.Nodes)
	require.Len(t, c.steps, 5, "one restart per member")
	for _, n := range five {
		assert.Equal(t, "v3.6.16", c.Version(n))
		assert.Contains(t, c.log, "stop "+n, "stopped gracefully")
		assert.True(t, c.Running(n))
	}
	assert.Contains(t, inj.Value.String(), "v3.5.35 → v3.6.16: 5 of 5 members, cluster version 3.6.0")
	assert.Contains(t, notes, "cluster-version  3.6.0")
	assert.Contains(t, notes, "upgrade-member "+inj.Nodes[0]+" v3.6.16")

	_, err = injectWith(ctx, c, c, up, 1, note)
	require.NoError(t, err)
	for _, n := range five {
		assert.Equal(t, "v3.7.3", c.Version(n), "the next turn, the next release")
	}
	inj, err = injectWith(ctx, c, c, up, 1, note)
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "every member runs v3.7.3")
	assert.Len(t, c.steps, 10, "at the end of the path, nothing more")
}

func TestRollingUpgradeChecksTheClusterVersion(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake().withPath("v3.6.16", "v3.7.3")
		c.lagging = true
		_, err := inject(t, context.Background(), c, "rolling-upgrade", 1)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "not 3.7", "a minute of synthetic time later")
	})
}

func TestRollingDowngrade(t *testing.T) {
	c := newFake().withPath("v3.6.16", "v3.7.3")
	for _, n := range five {
		c.versions[n] = "v3.7.3"
	}
	inj, err := inject(t, context.Background(), c, "rolling-downgrade", 2)
	require.NoError(t, err)
	assert.Equal(t, "v3.6.16", c.prepared, "the cluster is readied first")
	assert.Len(t, inj.Nodes, 5)
	for _, n := range five {
		assert.Equal(t, "v3.6.16", c.Version(n))
	}
	inj, err = inject(t, context.Background(), c, "rolling-downgrade", 2)
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "the first release")

	c = newFake().withPath("v3.6.16", "v3.7.3")
	c.versions["n1"] = "v3.7.3"
	inj, err = inject(t, context.Background(), c, "rolling-downgrade", 2)
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "no downgrade mid-upgrade")

	c = newFake().withPath("v3.5.35", "v3.6.16")
	for _, n := range five {
		c.versions[n] = "v3.6.16"
	}
	c.noDown = true
	_, err = inject(t, context.Background(), c, "rolling-downgrade", 2)
	require.Error(t, err, "a release that cannot downgrade fails loudly")
	assert.Empty(t, c.steps)
}

func TestMaintenanceCompactsThenDefragments(t *testing.T) {
	for seed := range uint64(6) {
		c := newFake()
		inj, err := inject(t, context.Background(), c, "maintenance", seed)
		require.NoError(t, err)
		assert.Equal(t, int64(42), c.compacted)
		assert.Equal(t, inj.Nodes, c.defrags, "every chosen member defragmented, in turn")
		assert.NotEmpty(t, c.defrags)
		require.NoError(t, inj.Heal(context.Background()))
	}
}

// A member that dies on its new release is an error that says so, with its log, at once.
func TestAMemberThatDiesOnItsNewReleaseIsSaid(t *testing.T) {
	c := newFake().withPath("v1", "v2")
	dying := &dyingOnStart{fakeCluster: c}
	p := c.powers()
	p.Nodes = dying
	f := fault(t, c, "rolling-upgrade")
	tn := f.draw(rand.New(rand.NewPCG(1, 1)))
	_, err := tn.inject(context.Background(), Env{Cluster: c, Powers: p})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "exited after starting on v2")
	assert.Contains(t, err.Error(), "(the log of")
}

// dyingOnStart starts a node that is gone at once.
type dyingOnStart struct{ *fakeCluster }

func (d *dyingOnStart) Start(ctx context.Context, n string) error {
	_ = d.fakeCluster.Start(ctx, n)
	return d.fakeCluster.set(n, "killed", "died")
}
