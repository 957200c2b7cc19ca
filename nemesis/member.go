package nemesis

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/faultline/faultline/history"
)

// Membership changes the cluster's membership the way an operator replacing machines
// does: remove a member through the cluster, wipe it, add it back as a new member.
type Membership interface {
	// Healthy returns nil when every member answers, all agree on the leader and the
	// membership, and none lags far behind: a member can then be taken out without
	// risking the quorum. It waits (within ctx) for the cluster to get there.
	Healthy(ctx context.Context) error
	// RemoveMember removes node from the membership through another member, waits until
	// it is stopped, and wipes its data.
	RemoveMember(ctx context.Context, node string) error
	// AddMember adds node back as a new member (a new id, an empty data dir), starts it
	// and waits until it has caught up with the leader.
	AddMember(ctx context.Context, node string) error
}

// MemberFault replaces one random member: removed and wiped at injection, added back as
// a new member at heal. The cluster runs one member short in between.
type MemberFault struct{}

func (MemberFault) Name() string                       { return "member" }
func (MemberFault) Events() (string, string)           { return "member-remove", "member-add" }
func (MemberFault) Available(c Cluster) (bool, string) { return hasMembership(c) }

// Inject checks the cluster is healthy, then removes a random member.
func (MemberFault) Inject(ctx context.Context, env Env) (Injection, error) {
	m := env.Cluster.(Membership)
	nodes, err := pickNodes(ctx, env, "one")
	if err != nil {
		return Injection{}, err
	}
	if err := m.Healthy(ctx); err != nil {
		return Injection{}, fmt.Errorf("before removing a member: %w", err)
	}
	if err := removeMember(ctx, m, nodes[0]); err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return m.AddMember(ctx, nodes[0]) }
	return Injection{Nodes: nodes, Value: history.S1("replace"), Heal: heal}, nil
}

// RollingReplaceFault replaces every member in turn, each one only once the cluster is
// healthy again: the live-upgrade pattern of a control plane replacing its etcd members.
// Each step is recorded (replace-remove, replace-add) as it happens.
type RollingReplaceFault struct{}

func (RollingReplaceFault) Name() string { return "rolling-replace" }
func (RollingReplaceFault) Events() (string, string) {
	return "start-rolling-replace", "stop-rolling-replace"
}
func (RollingReplaceFault) Available(c Cluster) (bool, string) { return hasMembership(c) }

// Inject runs the whole replacement. A member it removed is always added back, also when
// ctx ends; a replacement cut short by ctx is an injection of the members done so far.
func (RollingReplaceFault) Inject(ctx context.Context, env Env) (Injection, error) {
	m := env.Cluster.(Membership)
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
		if err := replace(ctx, env, m, n); err != nil {
			return Injection{}, err
		}
		done = append(done, n)
	}
	return Injection{Nodes: done, Value: history.S1(fmt.Sprintf("%d of %d members replaced", len(done), len(order))),
		Heal: func(context.Context) error { return nil }}, nil
}

// replace removes n and adds it back, the latter on a context of its own: the cluster
// is never left a member short.
func replace(ctx context.Context, env Env, m Membership, n string) error {
	env.note("replace-remove", n)
	if err := removeMember(ctx, m, n); err != nil {
		return err
	}
	env.note("replace-add", n)
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MemberStepTimeout)
	defer cancel()
	return m.AddMember(actx, n)
}

// removeMember removes n. A removal cut short by ctx (the run's end) may have taken
// effect all the same, with only its confirmation lost: it is finished on a context of
// its own, so that the caller adds n back as after any removal, rather than leave the
// cluster a member short. A removal that failed for another reason (refused, the
// cluster unhealthy) changed nothing and is returned as is.
func removeMember(ctx context.Context, m Membership, n string) error {
	err := m.RemoveMember(ctx, n)
	if err == nil || ctx.Err() == nil {
		return err
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), MemberStepTimeout)
	defer cancel()
	if ferr := m.RemoveMember(fctx, n); ferr != nil {
		return fmt.Errorf("%w; finishing the removal after the run's end: %w", err, ferr)
	}
	return nil
}

// MemberStepTimeout bounds one removal or addition of a member (catching up included).
const MemberStepTimeout = time.Minute

// InjectTimeout gives a rolling replacement time for every member's two steps.
func (RollingReplaceFault) InjectTimeout(nodes int) time.Duration {
	return time.Duration(2*nodes+1) * MemberStepTimeout
}

func hasMembership(c Cluster) (bool, string) {
	return has[Membership](c, "member", "the target cannot change its membership")
}
