package nemesis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// UpgradeStepTimeout bounds one member's restart on another release.
const UpgradeStepTimeout = 2 * time.Minute

// clusterVersionWait bounds the wait for the cluster version to follow its members.
const clusterVersionWait = time.Minute

// rolling-upgrade moves every member to the next release of the upgrade path, one member
// at a time in a seeded order, each only once the cluster is healthy again; the
// mixed-version window lasts from the first member's restart to the last's. Each
// member's restart is recorded as it happens (upgrade-member, with the release), and
// the cluster version is checked to advance to the new release's at the end. A turn
// finds the cluster one release further than the last; once every member runs the last
// release of the path, a turn is a no-op that says so.
var rollingUpgradeDef = &Def{
	Kind: RollingUpgrade, Doc: "move every member, one at a time, to the next release of the upgrade path",
	Needs:    []Capability{CapUpgrade, CapKill},
	Variants: []Variant{{Name: "next", Weight: 1, Doc: "every member one release further"}},
	Start:    "start-rolling-upgrade", End: "stop-rolling-upgrade", Verb: "upgraded", Healed: "ended",
	Family: "upgrade", Color: "#a8e0dc",
	Timeout: func(nodes int) time.Duration { return time.Duration(nodes+1) * UpgradeStepTimeout },
	Inject:  injectRollingUpgrade,
}

// injectRollingUpgrade upgrades every member one release along the path.
func injectRollingUpgrade(ctx context.Context, env Env, _ Variant) (Injection, error) {
	u := env.Powers.Upgrade
	path := u.Versions()
	order := shuffled(env)
	lowest := len(path) - 1
	for _, n := range order {
		lowest = min(lowest, slices.Index(path, u.Version(n)))
	}
	if lowest < 0 {
		return Injection{}, fmt.Errorf("a member runs a release that is not on the path %v", path)
	}
	if lowest == len(path)-1 {
		return noop(fmt.Sprintf("every member runs %s, the last release of the path", path[lowest])), nil
	}
	return roll(ctx, env, order, path[lowest], path[lowest+1], "upgrade-member")
}

// rolling-downgrade moves every member back one release along the upgrade path (when all
// run the same one, above the first), after readying the cluster for it; as
// rolling-upgrade otherwise. Releases that cannot downgrade make it fail loudly.
var rollingDowngradeDef = &Def{
	Kind: RollingDowngrade, Doc: "move every member, one at a time, back one release of the upgrade path",
	Needs:    []Capability{CapUpgrade, CapKill},
	Variants: []Variant{{Name: "previous", Weight: 1, Doc: "every member one release back"}},
	Start:    "start-rolling-downgrade", End: "stop-rolling-downgrade", Verb: "downgraded", Healed: "ended",
	Family: "upgrade", Color: "#a8e0dc",
	Timeout: func(nodes int) time.Duration { return time.Duration(nodes+2) * UpgradeStepTimeout },
	Inject:  injectRollingDowngrade,
}

// injectRollingDowngrade downgrades every member one release back along the path.
func injectRollingDowngrade(ctx context.Context, env Env, _ Variant) (Injection, error) {
	u := env.Powers.Upgrade
	path := u.Versions()
	order := shuffled(env)
	highest := 0
	for _, n := range order {
		highest = max(highest, slices.Index(path, u.Version(n)))
	}
	if highest == 0 {
		return noop(fmt.Sprintf("every member runs %s, the first release of the path", path[0])), nil
	}
	for _, n := range order {
		if v := u.Version(n); v != path[highest] {
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
	return roll(ctx, env, order, path[highest], to, "downgrade-member")
}

// roll restarts every member not yet on to, in order, each once the cluster is healthy,
// then waits for the cluster version to follow. Cut short by ctx, it is an injection of
// the members done so far (none is left stopped: Restart sees to that).
func roll(ctx context.Context, env Env, order []string, from, to, note string) (Injection, error) {
	u := env.Powers.Upgrade
	var done []string
	for _, n := range order {
		if u.Version(n) == to {
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
		err := Restart(sctx, env.Powers, n, to)
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
	return Injection{Nodes: done, Value: history.S1(value), Heal: healed}, nil
}

// Restart stops node gracefully (as an operator's rollout does), makes it run release
// version, starts it on its data (on a context of its own: a member is never left
// stopped), and waits until the cluster is healthy again. A member that dies on its new
// release will not get healthy: that is said at once, with the end of its log.
func Restart(ctx context.Context, p Powers, node, version string) error {
	if err := p.Nodes.Stop(ctx, node); err != nil {
		return fmt.Errorf("stop %s: %w", node, err)
	}
	if err := p.Upgrade.SetVersion(node, version); err != nil {
		return errors.Join(err, p.Nodes.Start(context.WithoutCancel(ctx), node))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	err := p.Nodes.Start(sctx, node)
	cancel()
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", node, version, err)
	}
	for {
		if !p.Nodes.Running(node) {
			return fmt.Errorf("%s exited after starting on %s; the end of its log:\n%s", node, version, p.Nodes.LogTail(node))
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := p.Upgrade.Healthy(hctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

func countOn(u Upgrader, nodes []string, version string) int {
	n := 0
	for _, m := range nodes {
		if u.Version(m) == version {
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
	return Injection{Value: history.S1(why), Heal: healed}
}

// maintenance compacts the keyspace to a recent revision and defragments the leader,
// one member, a majority or all (what a careless cron does), one after another, while
// clients run: the operations etcd's operators run on a schedule, and where etcd has had
// corruption bugs (a snapshot applied during a defragmentation, fixed in 3.6.5). There
// is nothing to heal: each step is recorded (compact, defragment) as it is done.
var maintenanceDef = &Def{
	Kind: Maintenance, Doc: "compact the keyspace, then defragment members one after another",
	Needs:    []Capability{CapMaintain},
	Variants: nodeVariants("compact, then defragment", map[string]int{"one": 1, "leader": 1, "majority": 1, "all": 1}),
	Start:    "start-maintenance", End: "stop-maintenance", Verb: "maintained", Healed: "ended",
	Family: "maintenance", Color: "#e2d6bf",
	Inject: injectMaintenance,
}

// injectMaintenance compacts, then defragments the chosen members in turn.
func injectMaintenance(ctx context.Context, env Env, v Variant) (Injection, error) {
	m := env.Powers.Maintain
	target := v.Name
	nodes, err := pickNodes(ctx, env, target)
	if err != nil {
		return Injection{}, err
	}
	rev, err := m.Compact(ctx)
	noteCompact(env, rev, err)
	if err != nil {
		return Injection{}, fmt.Errorf("compact: %w", err)
	}
	for _, n := range nodes {
		env.note("defragment", n)
		if err := m.Defragment(ctx, n); err != nil {
			return Injection{}, fmt.Errorf("defragment %s: %w", n, err)
		}
	}
	return Injection{Nodes: nodes, Value: history.L(fmt.Sprintf("compact %d", rev), "defragment "+target),
		Heal: healed}, nil
}
