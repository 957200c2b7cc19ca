package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// Upgrader moves members to other releases of the system one at a time, on their data,
// while the cluster serves: the live upgrade of a Kubernetes control plane's etcd.
type Upgrader interface {
	// Healthy is Membership's: every member answers and agrees; it waits for that.
	Healthy(ctx context.Context) error
	// UpgradePath are the releases in upgrade order; the cluster started on the first.
	UpgradePath() []string
	// MemberVersion is the release node runs.
	MemberVersion(node string) string
	// Restart stops node gracefully, makes it run release version on its data, starts
	// it and waits until the cluster is healthy again. A node it stopped is started again
	// (on version) even when ctx ends.
	Restart(ctx context.Context, node, version string) error
	// PrepareDowngrade readies the cluster for its members going back to version
	// (etcd's downgrade API); an error when the releases cannot.
	PrepareDowngrade(ctx context.Context, version string) error
	// ClusterVersion is the version the cluster as a whole reports running at
	// (major.minor for etcd).
	ClusterVersion(ctx context.Context) (string, error)
}

// UpgradeStepTimeout bounds one member's restart on another release.
const UpgradeStepTimeout = 2 * time.Minute

// clusterVersionWait bounds the wait for the cluster version to follow its members (a
// variable for tests).
var clusterVersionWait = time.Minute

func hasUpgrader(c Cluster) (bool, string) {
	ok, why := has[Upgrader](c, "rolling-upgrade", "the target cannot change its members' releases")
	if ok && len(c.(Upgrader).UpgradePath()) < 2 {
		return false, "no release to upgrade to (give --upgrade-to)"
	}
	return ok, why
}

// RollingUpgradeFault moves every member to the next release of the upgrade path, one
// member at a time in a seeded order, each only once the cluster is healthy again; the
// mixed-version window lasts from the first member's restart to the last's. Each
// member's restart is recorded as it happens (upgrade-member, with the release), and
// the cluster version is checked to advance to the new release's at the end. A turn
// finds the cluster one release further than the last; once every member runs the last
// release of the path, a turn is a no-op that says so.
type RollingUpgradeFault struct{}

func (RollingUpgradeFault) Name() string { return "rolling-upgrade" }
func (RollingUpgradeFault) Events() (string, string) {
	return "start-rolling-upgrade", "stop-rolling-upgrade"
}
func (RollingUpgradeFault) Available(c Cluster) (bool, string) { return hasUpgrader(c) }

// InjectTimeout gives every member its restart.
func (RollingUpgradeFault) InjectTimeout(nodes int) time.Duration {
	return time.Duration(nodes+1) * UpgradeStepTimeout
}

// Inject upgrades every member one release along the path.
func (RollingUpgradeFault) Inject(ctx context.Context, env Env) (Injection, error) {
	u := env.Cluster.(Upgrader)
	path := u.UpgradePath()
	order := shuffled(env)
	lowest := len(path) - 1
	for _, n := range order {
		lowest = min(lowest, slices.Index(path, u.MemberVersion(n)))
	}
	if lowest < 0 {
		return Injection{}, fmt.Errorf("a member runs a release that is not on the path %v", path)
	}
	if lowest == len(path)-1 {
		return noop(fmt.Sprintf("every member runs %s, the last release of the path", path[lowest])), nil
	}
	return roll(ctx, env, u, order, path[lowest], path[lowest+1], "upgrade-member")
}

// RollingDowngradeFault moves every member back one release along the upgrade path (when
// all run the same one, above the first), after readying the cluster for it; as
// RollingUpgradeFault otherwise. Releases that cannot downgrade make it fail loudly.
type RollingDowngradeFault struct{}

func (RollingDowngradeFault) Name() string { return "rolling-downgrade" }
func (RollingDowngradeFault) Events() (string, string) {
	return "start-rolling-downgrade", "stop-rolling-downgrade"
}
func (RollingDowngradeFault) Available(c Cluster) (bool, string) { return hasUpgrader(c) }

// InjectTimeout gives every member its restart.
func (RollingDowngradeFault) InjectTimeout(nodes int) time.Duration {
	return time.Duration(nodes+2) * UpgradeStepTimeout
}

// Inject downgrades every member one release back along the path.
func (RollingDowngradeFault) Inject(ctx context.Context, env Env) (Injection, error) {
	u := env.Cluster.(Upgrader)
	path := u.UpgradePath()
	order := shuffled(env)
	highest := 0
	for _, n := range order {
		highest = max(highest, slices.Index(path, u.MemberVersion(n)))
	}
	if highest == 0 {
		return noop(fmt.Sprintf("every member runs %s, the first release of the path", path[0])), nil
	}
	for _, n := range order {
		if v := u.MemberVersion(n); v != path[highest] {
			return noop(fmt.Sprintf("members run different releases (%s: %s): no downgrade mid-upgrade", n, v)), nil
		}
	}
	to := path[highest-1]
	if err := u.Healthy(ctx); err != nil {
		return Injection{}, fmt.Errorf("before downgrading to %s: %w", to, err)
	}
	if err := u.PrepareDowngrade(ctx, to); err != nil {
		return Injection{}, fmt.Errorf("downgrade to %s: %w", to, err)
	}
	env.note("downgrade-enabled", "", to)
	return roll(ctx, env, u, order, path[highest], to, "downgrade-member")
}

// roll restarts every member not yet on to, in order, each once the cluster is healthy,
// then waits for the cluster version to follow. Cut short by ctx, it is an injection of
// the members done so far (none is left stopped: Restart sees to that).
func roll(ctx context.Context, env Env, u Upgrader, order []string, from, to, note string) (Injection, error) {
	var done []string
	for _, n := range order {
		if u.MemberVersion(n) == to {
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if err := u.Healthy(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return Injection{}, fmt.Errorf("before moving %s to %s: %w", n, to, err)
		}
		env.note(note, n, to)
		sctx, cancel := context.WithTimeout(ctx, UpgradeStepTimeout)
		err := u.Restart(sctx, n, to)
		cancel()
		if err != nil {
			return Injection{}, fmt.Errorf("move %s from %s to %s: %w", n, from, to, err)
		}
		done = append(done, n)
	}
	value := fmt.Sprintf("%s → %s: %d of %d members", from, to, len(done), len(order))
	if countOn(u, order, to) == len(order) && ctx.Err() == nil {
		cv, err := waitClusterVersion(ctx, u, to)
		if err != nil {
			return Injection{}, fmt.Errorf("every member runs %s, but %w", to, err)
		}
		env.note("cluster-version", "", cv)
		value += ", cluster version " + cv
	}
	return Injection{Nodes: done, Value: history.S1(value), Heal: func(context.Context) error { return nil }}, nil
}

func countOn(u Upgrader, nodes []string, version string) int {
	n := 0
	for _, m := range nodes {
		if u.MemberVersion(m) == version {
			n++
		}
	}
	return n
}

// waitClusterVersion waits until the cluster version is version's major.minor.
func waitClusterVersion(ctx context.Context, u Upgrader, version string) (string, error) {
	want := majorMinor(version)
	ctx, cancel := context.WithTimeout(ctx, clusterVersionWait)
	defer cancel()
	var last string
	var lastErr error
	for {
		last, lastErr = u.ClusterVersion(ctx)
		if lastErr == nil && majorMinor(last) == want {
			return last, nil
		}
		if !Sleep(ctx, 500*time.Millisecond) {
			return last, fmt.Errorf("the cluster version is %q (err %v), not %s, after %v", last, lastErr, want, clusterVersionWait)
		}
	}
}

// majorMinor returns "3.6" of "v3.6.16" (or of "3.6.0", or "3.6").
func majorMinor(v string) string {
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	if len(parts) < 2 {
		return v
	}
	return parts[0] + "." + parts[1]
}

func shuffled(env Env) []string {
	order := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// noop is the injection of a turn that had nothing to do, saying why.
func noop(why string) Injection {
	return Injection{Value: history.S1(why), Heal: func(context.Context) error { return nil }}
}

// Maintainer runs the maintenance its operators schedule while the system serves.
type Maintainer interface {
	// Compact discards history before a recent revision and returns it.
	Compact(ctx context.Context) (int64, error)
	// Defragment rewrites node's storage (blocking it meanwhile).
	Defragment(ctx context.Context, node string) error
}

// maintenanceTargets weighs defragmenting one member; all is what a careless cron does.
var maintenanceTargets = []string{"one", "leader", "majority", "all"}

// MaintenanceFault compacts the keyspace to a recent revision and defragments the
// leader, one member, a majority or all, one after another, while clients run: the
// operations etcd's operators run on a schedule, and where etcd has had corruption bugs
// (a snapshot applied during a defragmentation, fixed in 3.6.5). There is nothing to
// heal: each step is recorded (compact, defragment) as it is done.
type MaintenanceFault struct{}

func (MaintenanceFault) Name() string             { return "maintenance" }
func (MaintenanceFault) Events() (string, string) { return "start-maintenance", "stop-maintenance" }
func (MaintenanceFault) Available(c Cluster) (bool, string) {
	return has[Maintainer](c, "maintenance", "the target has no maintenance operations")
}

// Inject compacts, then defragments the chosen members in turn.
func (MaintenanceFault) Inject(ctx context.Context, env Env) (Injection, error) {
	m := env.Cluster.(Maintainer)
	target := maintenanceTargets[env.Rand.IntN(len(maintenanceTargets))]
	nodes, err := pickNodes(ctx, env, target)
	if err != nil {
		return Injection{}, err
	}
	rev, err := m.Compact(ctx)
	if err != nil {
		return Injection{}, fmt.Errorf("compact: %w", err)
	}
	env.note("compact", "", fmt.Sprint(rev))
	for _, n := range nodes {
		env.note("defragment", n)
		if err := m.Defragment(ctx, n); err != nil {
			return Injection{}, fmt.Errorf("defragment %s: %w", n, err)
		}
	}
	return Injection{Nodes: nodes, Value: history.L(fmt.Sprintf("compact %d", rev), "defragment "+target),
		Heal: func(context.Context) error { return nil }}, nil
}
