package nemesis

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/faultline/faultline/history"
)

// member replaces one member: removed through the cluster and wiped at the injection,
// added back as a new member (a new id, an empty data dir) at the heal. The cluster runs
// a member short in between.
var memberDef = &Def{
	Kind: Member, Doc: "replace a member: remove it and wipe its data, add it back as a new member at the heal",
	Needs: []Capability{CapMembers, CapKill},
	Variants: []Variant{
		{Name: "one", Weight: 1, Doc: "replace a random member"},
		{Name: "leader", Weight: 0, Doc: "replace the leader (a random member when none is known)"},
	},
	Start: "member-remove", End: "member-add", Verb: "removed", Healed: "added back as a new member",
	Family: "member", Color: "#bce4b5",
	Timeout: func(int) time.Duration { return 2 * MemberStepTimeout },
	Inject:  injectMember,
}

// injectMember checks the cluster is healthy, then removes the chosen member.
func injectMember(ctx context.Context, env Env, v Variant) (Injection, error) {
	m := env.Powers.Members
	nodes, err := pickNodes(ctx, env, v.Name)
	if err != nil {
		return Injection{}, err
	}
	n := nodes[0]
	if err := m.Healthy(ctx); err != nil {
		return Injection{}, fmt.Errorf("before removing a member: %w", err)
	}
	if err := removeMember(ctx, env.Powers, n); err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return addMember(ctx, env.Powers, n) }
	return Injection{Nodes: []string{n}, Value: history.S1("replace"), Heal: heal}, nil
}

// rolling-replace replaces every member in turn, each only once the cluster is healthy
// again: the live-upgrade pattern of a control plane replacing its etcd members.
var rollingReplaceDef = &Def{
	Kind: RollingReplace, Doc: "replace every member in turn, each once the cluster is healthy again",
	Needs:    []Capability{CapMembers, CapKill},
	Variants: []Variant{{Name: "all", Weight: 1, Doc: "every member, in a seeded order"}},
	Start:    "start-rolling-replace", End: "stop-rolling-replace", Verb: "replaced", Healed: "ended",
	Family: "member", Color: "#bce4b5",
	Timeout: func(nodes int) time.Duration { return time.Duration(2*nodes+1) * MemberStepTimeout },
	Inject:  injectRollingReplace,
}

// injectRollingReplace runs the whole replacement, each step recorded (replace-remove,
// replace-add) as it happens. A member it removed is always added back, also when ctx
// ends; a replacement cut short by ctx is an injection of the members done so far.
func injectRollingReplace(ctx context.Context, env Env, _ Variant) (Injection, error) {
	m := env.Powers.Members
	order := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	var done []string
	for _, n := range order {
		if ctx.Err() != nil {
			break
		}
		if err := m.Healthy(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return Injection{}, fmt.Errorf("before replacing %s: %w", n, err)
		}
		if err := replace(ctx, env, n); err != nil {
			return Injection{}, err
		}
		done = append(done, n)
	}
	return Injection{Nodes: done, Value: history.S1(fmt.Sprintf("%d of %d members replaced", len(done), len(order))),
		Heal: healed}, nil
}

// replace removes n and adds it back, the latter on a context of its own: the cluster
// is never left a member short.
func replace(ctx context.Context, env Env, n string) error {
	env.note("replace-remove", n)
	if err := removeMember(ctx, env.Powers, n); err != nil {
		return err
	}
	env.note("replace-add", n)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MemberStepTimeout)
	defer cancel()
	return addMember(actx, env.Powers, n)
}

// removedExitWait bounds the wait for a removed member to exit by itself before it is
// killed.
const removedExitWait = 10 * time.Second

// removeMember removes n through the cluster, waits for it to exit (a removed member
// may; one that does not is killed), and wipes its data. A removal cut short by ctx (the
// run's end) may have taken effect all the same, with only its confirmation lost: it is
// finished on a context of its own, so that the caller adds n back as after any removal,
// rather than leave the cluster a member short. A removal that failed for another
// reason (refused, the cluster unhealthy) changed nothing and is returned as is.
func removeMember(ctx context.Context, p Powers, n string) error {
	err := p.Members.RemoveMember(ctx, n)
	if err != nil && ctx.Err() != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MemberStepTimeout)
		defer cancel()
		if ferr := p.Members.RemoveMember(fctx, n); ferr != nil {
			return fmt.Errorf("remove member %s: %w; finishing the removal after the run's end: %w", n, err, ferr)
		}
	} else if err != nil {
		return fmt.Errorf("remove member %s: %w", n, err)
	}
	deadline := time.Now().Add(removedExitWait)
	for p.Nodes.Running(n) && time.Now().Before(deadline) && Sleep(ctx, 50*time.Millisecond) {
	}
	ctx = context.WithoutCancel(ctx) // removed: the rest is done whatever happens
	if p.Nodes.Running(n) {
		if err := p.Nodes.Kill(ctx, n); err != nil {
			return fmt.Errorf("stop removed member %s: %w", n, err)
		}
	}
	if err := p.Nodes.Wipe(ctx, n); err != nil {
		return fmt.Errorf("wipe removed member %s: %w", n, err)
	}
	return nil
}

// addMember adds n back as a new member, starts it empty as a joining member, and waits
// until it has caught up.
func addMember(ctx context.Context, p Powers, n string) error {
	if err := p.Members.AddMember(ctx, n); err != nil {
		return fmt.Errorf("add member %s: %w", n, err)
	}
	if p.Nodes.Running(n) {
		if err := p.Nodes.Kill(ctx, n); err != nil {
			return fmt.Errorf("add member %s: %w", n, err)
		}
	}
	if err := p.Nodes.Start(ctx, n); err != nil {
		return fmt.Errorf("add member %s: %w", n, err)
	}
	if err := p.Members.Joined(ctx, n); err != nil {
		return fmt.Errorf("add member %s: catching up: %w", n, err)
	}
	return nil
}

// AddMember adds n back as a new member, the way a member fault's heal does: what the
// run's final heal calls for a member a fault removed and did not add back.
func AddMember(ctx context.Context, p Powers, n string) error { return addMember(ctx, p, n) }

// RemoveMember removes n, stops it and wipes its data, the way a member fault does.
func RemoveMember(ctx context.Context, p Powers, n string) error { return removeMember(ctx, p, n) }

// MemberStepTimeout bounds one removal or addition of a member (catching up included).
const MemberStepTimeout = time.Minute
