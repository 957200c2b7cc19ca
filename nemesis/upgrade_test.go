package nemesis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// upgradeCluster is a cluster whose members run releases of a path.
type upgradeCluster struct {
	fakeCluster
	mu        sync.Mutex
	path      []string
	versions  map[string]string
	steps     []string
	prepared  string
	noDown    bool // the releases cannot downgrade
	lagging   bool // the cluster version does not follow
	compacted int64
	defrags   []string
}

func newUpgradeCluster(path ...string) *upgradeCluster {
	c := &upgradeCluster{path: path, versions: map[string]string{}}
	for _, n := range five {
		c.versions[n] = path[0]
	}
	return c
}

func (c *upgradeCluster) Healthy(context.Context) error { return nil }
func (c *upgradeCluster) UpgradePath() []string         { return c.path }
func (c *upgradeCluster) MemberVersion(n string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[n]
}
func (c *upgradeCluster) Restart(_ context.Context, n, v string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.versions[n] = v
	c.steps = append(c.steps, n+" "+v)
	return nil
}
func (c *upgradeCluster) PrepareDowngrade(_ context.Context, v string) error {
	if c.noDown {
		return errors.New("this release cannot downgrade")
	}
	c.prepared = v
	return nil
}

// ClusterVersion is the lowest release any member runs, as etcd's is.
func (c *upgradeCluster) ClusterVersion(context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := len(c.path)
	for _, v := range c.versions {
		for i, p := range c.path {
			if p == v {
				low = min(low, i)
			}
		}
	}
	if c.lagging {
		low = 0
	}
	return majorMinor(c.path[low]) + ".0", nil
}
func (c *upgradeCluster) Compact(context.Context) (int64, error) { c.compacted = 42; return 42, nil }
func (c *upgradeCluster) Defragment(_ context.Context, n string) error {
	c.defrags = append(c.defrags, n)
	return nil
}

func TestRollingUpgradeMovesEveryMemberOneReleaseATurn(t *testing.T) {
	c := newUpgradeCluster("v3.5.35", "v3.6.16", "v3.7.3")
	var notes []string
	e := env(c, 1)
	e.Note = func(f, n, v string) { notes = append(notes, fmt.Sprint(f, " ", n, " ", v)) }
	ctx := context.Background()

	inj, err := RollingUpgradeFault{}.Inject(ctx, e)
	require.NoError(t, err)
	assert.ElementsMatch(t, five, inj.Nodes)
	require.Len(t, c.steps, 5, "one restart per member")
	for _, n := range five {
		assert.Equal(t, "v3.6.16", c.MemberVersion(n))
	}
	assert.Contains(t, inj.Value.String(), "v3.5.35 → v3.6.16: 5 of 5 members, cluster version 3.6.0")
	assert.Contains(t, notes, "cluster-version  3.6.0")
	assert.Contains(t, notes, "upgrade-member "+inj.Nodes[0]+" v3.6.16")

	_, err = RollingUpgradeFault{}.Inject(ctx, e)
	require.NoError(t, err)
	for _, n := range five {
		assert.Equal(t, "v3.7.3", c.MemberVersion(n), "the next turn, the next release")
	}
	inj, err = RollingUpgradeFault{}.Inject(ctx, e)
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "every member runs v3.7.3")
	assert.Len(t, c.steps, 10, "at the end of the path, nothing more")

	ok, why := RollingUpgradeFault{}.Available(newUpgradeCluster("v3.7.3"))
	assert.False(t, ok, "no release to upgrade to")
	assert.Contains(t, why, "--upgrade-to")
	ok, _ = RollingUpgradeFault{}.Available(&fakeCluster{})
	assert.False(t, ok)
}

func TestRollingUpgradeChecksTheClusterVersion(t *testing.T) {
	c := newUpgradeCluster("v3.6.16", "v3.7.3")
	c.lagging = true
	defer func(d time.Duration) { clusterVersionWait = d }(clusterVersionWait)
	clusterVersionWait = time.Second
	_, err := RollingUpgradeFault{}.Inject(context.Background(), env(c, 1))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not 3.7")
}

func TestRollingDowngrade(t *testing.T) {
	c := newUpgradeCluster("v3.6.16", "v3.7.3")
	for _, n := range five {
		c.versions[n] = "v3.7.3"
	}
	inj, err := RollingDowngradeFault{}.Inject(context.Background(), env(c, 2))
	require.NoError(t, err)
	assert.Equal(t, "v3.6.16", c.prepared, "the cluster is readied first")
	assert.Len(t, inj.Nodes, 5)
	for _, n := range five {
		assert.Equal(t, "v3.6.16", c.MemberVersion(n))
	}
	inj, err = RollingDowngradeFault{}.Inject(context.Background(), env(c, 2))
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "the first release")

	c = newUpgradeCluster("v3.6.16", "v3.7.3")
	c.versions["n1"] = "v3.7.3"
	inj, err = RollingDowngradeFault{}.Inject(context.Background(), env(c, 2))
	require.NoError(t, err)
	assert.Contains(t, inj.Value.String(), "no downgrade mid-upgrade")

	c = newUpgradeCluster("v3.5.35", "v3.6.16")
	for _, n := range five {
		c.versions[n] = "v3.6.16"
	}
	c.noDown = true
	_, err = RollingDowngradeFault{}.Inject(context.Background(), env(c, 2))
	require.Error(t, err, "a release that cannot downgrade fails loudly")
	assert.Empty(t, c.steps)
}

func TestMaintenanceCompactsThenDefragments(t *testing.T) {
	for seed := range uint64(6) {
		c := newUpgradeCluster("v3.7.3")
		inj, err := MaintenanceFault{}.Inject(context.Background(), env(c, seed))
		require.NoError(t, err)
		assert.Equal(t, int64(42), c.compacted)
		assert.Equal(t, inj.Nodes, c.defrags, "every chosen member defragmented, in turn")
		assert.NotEmpty(t, c.defrags)
		require.NoError(t, inj.Heal(context.Background()))
	}
}
