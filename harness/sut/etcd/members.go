package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/faultline/faultline/harness/sut"
)

// Membership through etcd's cluster API, the way a Kubernetes control plane replaces an
// etcd member: nemesis.Members. The harness does the runtime's part between the calls:
//
//	Healthy → RemoveMember(n) → (n exits by itself, or is killed) → wipe n's data →
//	AddMember(n) → start n with Node (now a joining member) → Joined(n)
//
// A member is added back as a learner (MemberAddAsLearner, etcd 3.4 and newer: every
// release this target runs has learners, so there is no plain-MemberAdd path) and
// promoted once it has caught up. Re-adding gives it a new member id; ids (which
// Leader and Ready use) follows.

// maxLag is how far a member's applied index may be behind the leader's commit for the
// cluster to count as healthy.
const maxLag = 1000

// Healthy implements nemesis.Members: it waits (within ctx) until every node answers
// Status, all name the same leader, the leader's member list is exactly the run's nodes
// (each at its peer URL, with the id that node reports, none a learner), and none has
// applied less than the leader's commit index minus maxLag.
func (t *Target) Healthy(ctx context.Context) error {
	return sut.Poll(ctx, 200*time.Millisecond, t.healthy)
}

func (t *Target) healthy(ctx context.Context) error {
	sts, errs := t.statuses(ctx, time.Second)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var leader uint64
	for _, n := range t.names {
		st := sts[n]
		if st.leader == 0 || leader != 0 && st.leader != leader {
			return fmt.Errorf("%s names leader %x, others %x", n, st.leader, leader)
		}
		leader = st.leader
	}
	ln := t.nodeOf(leader)
	if ln == "" {
		return fmt.Errorf("leader %x is none of this run's members", leader)
	}
	ms, err := t.memberList(ctx, ln)
	if err != nil {
		return err
	}
	if len(ms) != len(t.names) {
		return fmt.Errorf("the cluster has %d members, want %d: %s", len(ms), len(t.names), t.describeMembers(ms))
	}
	for _, n := range t.names {
		m := t.memberOf(ms, n)
		switch {
		case m == nil:
			return fmt.Errorf("%s is not a member: %s", n, t.describeMembers(ms))
		case m.IsLearner:
			return fmt.Errorf("%s is still a learner", n)
		case m.ID != sts[n].id:
			return fmt.Errorf("%s answers as member %x, but the cluster has %x at its URL", n, sts[n].id, m.ID)
		}
	}
	commit := sts[ln].raftIndex
	for _, n := range t.names {
		if a := sts[n].appliedIndex(); a+maxLag < commit {
			return fmt.Errorf("%s applied %d, %d behind the leader's commit", n, a, commit-a)
		}
	}
	return nil
}

// appliedIndex is the member's applied index, or (3.4, which does not report it) its
// commit index.
func (s status) appliedIndex() uint64 {
	if s.applied != 0 {
		return s.applied
	}
	return s.raftIndex
}

// memberList asks via for the member list (linearizable from 3.5 on; 3.4 answers from
// its own state).
func (t *Target) memberList(ctx context.Context, via string) ([]*pb.Member, error) {
	c, err := t.admin(via)
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := c.MemberList(lctx)
	if err != nil {
		return nil, fmt.Errorf("member list via %s: %w", via, err)
	}
	return r.Members, nil
}

// memberOf returns the member at node's peer URL, or nil.
func (t *Target) memberOf(ms []*pb.Member, node string) *pb.Member {
	url := t.peerURL(node)
	for _, m := range ms {
		if slices.Contains(m.PeerURLs, url) {
			return m
		}
	}
	return nil
}

// nodeAt names the run's node whose peer URL m has ("" if none).
func (t *Target) nodeAt(m *pb.Member) string {
	for _, n := range t.names {
		if slices.Contains(m.PeerURLs, t.peerURL(n)) {
			return n
		}
	}
	return ""
}

func (t *Target) describeMembers(ms []*pb.Member) string {
	var parts []string
	for _, m := range ms {
		s := fmt.Sprintf("%x %q %v", m.ID, m.Name, m.PeerURLs)
		if m.IsLearner {
			s += " (learner)"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, "; ") + "]"
}

// changeOrder is the order to try members in for a change: the leader first (if one is
// named and it is not skip), then the other nodes but skip, in the run's order.
func (t *Target) changeOrder(ctx context.Context, skip string) ([]string, error) {
	order := slices.DeleteFunc(slices.Clone(t.names), func(n string) bool { return n == skip })
	if len(order) == 0 {
		return nil, fmt.Errorf("no member but %s to go through", skip)
	}
	if l, _ := t.Leader(ctx); l != "" && l != skip {
		order = append([]string{l}, slices.DeleteFunc(order, func(n string) bool { return n == l })...)
	}
	return order, nil
}

// errRefused marks a change that must not be made: it is returned at once, not retried.
type errRefused struct{ msg string }

func (e *errRefused) Error() string { return e.msg }

// change tries f through each node but skip, the leader first, every 200 ms until f
// reports the change done or refused, or ctx ends.
func (t *Target) change(ctx context.Context, skip string, f func(ctx context.Context, via string) (done bool, err error)) error {
	if len(t.names) < 2 {
		return &errRefused{fmt.Sprintf("no member but %s to go through: it is the last voting member", skip)}
	}
	var refused *errRefused
	err := sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		order, err := t.changeOrder(ctx, skip)
		if err != nil {
			return err
		}
		var errs []error
		for _, via := range order {
			cctx, cancel := context.WithTimeout(ctx, 6*time.Second)
			done, err := f(cctx, via)
			cancel()
			if errors.As(err, &refused) {
				return nil
			}
			if done {
				return nil
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("via %s: %w", via, err))
			}
		}
		return errors.Join(errs...)
	})
	if refused != nil {
		return refused
	}
	return err
}

// RemoveMember implements nemesis.Members: it removes the member at node's peer URL
// through another member (the leader first), and retries through the others until a
// member list no longer has it. It refuses (an error, nothing changed) to remove the
// last voting member, or any member while another is a learner (a replacement not
// finished). A removed etcd member stops serving; the harness kills it if it does not
// exit.
func (t *Target) RemoveMember(ctx context.Context, node string) error {
	if !slices.Contains(t.names, node) {
		return fmt.Errorf("etcd: no node %q", node)
	}
	removing := false
	err := t.change(ctx, node, func(ctx context.Context, via string) (bool, error) {
		ms, err := t.memberList(ctx, via)
		if err != nil {
			return false, err
		}
		m := t.memberOf(ms, node)
		if m == nil {
			return true, nil
		}
		if !removing {
			voters := 0
			for _, o := range ms {
				if o.IsLearner && o.ID != m.ID {
					return false, &errRefused{fmt.Sprintf("remove %s: the cluster still has a learner, %x %v "+
						"(a replacement not finished)", node, o.ID, o.PeerURLs)}
				}
				if !o.IsLearner {
					voters++
				}
			}
			if !m.IsLearner && voters <= 1 {
				return false, &errRefused{fmt.Sprintf("remove %s: it is the last voting member", node)}
			}
		}
		removing = true
		c, err := t.admin(via)
		if err != nil {
			return false, err
		}
		if _, err := c.MemberRemove(ctx, m.ID); err != nil && !errors.Is(err, rpctypes.ErrMemberNotFound) {
			return false, fmt.Errorf("remove member %x: %w", m.ID, err)
		}
		return false, nil // confirmed by the next member list
	})
	if err != nil {
		return fmt.Errorf("remove %s: %w", node, err)
	}
	t.mu.Lock()
	delete(t.ids, node)
	t.mu.Unlock()
	return nil
}

// AddMember implements nemesis.Members: it adds node as a learner at its peer URL (the
// link proxy's address, when there is one) through another member, the leader first,
// and remembers the member list the answer gives: from then on Node starts node with
// --initial-cluster-state existing and an --initial-cluster of those members, itself
// included, on its (empty) data dir. A learner already at node's URL (an earlier add
// whose answer was lost) is taken as the add; a voting member there is an error.
func (t *Target) AddMember(ctx context.Context, node string) error {
	if !slices.Contains(t.names, node) {
		return fmt.Errorf("etcd: no node %q", node)
	}
	url := t.peerURL(node)
	var id uint64
	var ms []*pb.Member
	err := t.change(ctx, node, func(ctx context.Context, via string) (bool, error) {
		list, err := t.memberList(ctx, via)
		if err != nil {
			return false, err
		}
		if m := t.memberOf(list, node); m != nil {
			if !m.IsLearner {
				return false, &errRefused{fmt.Sprintf("add %s: it is already a voting member, %x", node, m.ID)}
			}
			id, ms = m.ID, list
			return true, nil
		}
		c, err := t.admin(via)
		if err != nil {
			return false, err
		}
		r, err := c.MemberAddAsLearner(ctx, []string{url})
		if err != nil {
			return false, fmt.Errorf("add learner %s: %w", url, err)
		}
		id, ms = r.Member.ID, r.Members
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("add %s: %w", node, err)
	}
	var initial []string
	for _, m := range ms {
		name := t.nodeAt(m)
		if m.ID == id {
			name = node
		} else if name == "" {
			name = m.Name
		}
		for _, u := range m.PeerURLs {
			initial = append(initial, name+"="+u)
		}
	}
	t.mu.Lock()
	t.joining[node] = strings.Join(initial, ",")
	t.fresh[node] = true
	t.ids[node] = id
	t.mu.Unlock()
	return nil
}

// Joined implements nemesis.Members: it waits until node (started after AddMember)
// answers as the learner AddMember added and has applied what the leader had committed
// when the wait began; then promotes it through another member, the leader first,
// retrying while etcd says the learner is not in sync yet; then waits until node
// answers as a voting member that knows the leader.
func (t *Target) Joined(ctx context.Context, node string) error {
	t.mu.Lock()
	id, added := t.ids[node], t.joining[node] != ""
	t.mu.Unlock()
	if !added || id == 0 {
		return fmt.Errorf("%s joined: it was not added back (AddMember)", node)
	}
	var goal uint64
	looked := time.Now()
	err := sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		// A member stuck on its own publish (see refusesOwnPublish) gets an entry to apply
		// every stuckAfter; one that fails it only for a moment, under load, is left alone.
		if time.Since(looked) > stuckAfter {
			looked = time.Now()
			if t.refusesOwnPublish(node) {
				t.nudge(ctx, node)
			}
		}
		if goal == 0 {
			l, err := t.Leader(ctx)
			if err != nil || l == "" || l == node {
				return fmt.Errorf("no leader to catch up with (%v)", err)
			}
			st, err := t.status(ctx, l, time.Second)
			if err != nil {
				return err
			}
			goal = st.raftIndex
		}
		st, err := t.status(ctx, node, time.Second)
		switch {
		case err != nil:
			return err
		case st.id != id:
			return fmt.Errorf("%s answers as member %x, not the %x added", node, st.id, id)
		case st.appliedIndex() < goal:
			return fmt.Errorf("%s applied %d of %d", node, st.appliedIndex(), goal)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s catching up as a learner: %w", node, err)
	}
	err = t.change(ctx, node, func(ctx context.Context, via string) (bool, error) {
		c, err := t.admin(via)
		if err != nil {
			return false, err
		}
		_, err = c.MemberPromote(ctx, id)
		if err == nil || errors.Is(err, rpctypes.ErrMemberNotLearner) {
			return true, nil
		}
		return false, fmt.Errorf("promote %x: %w", id, err) // ErrLearnerNotReady: not in sync yet
	})
	if err != nil {
		return fmt.Errorf("promote %s: %w", node, err)
	}
	err = sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		st, err := t.status(ctx, node, time.Second)
		switch {
		case err != nil:
			return err
		case st.learner:
			return fmt.Errorf("%s still answers as a learner", node)
		case st.leader == 0:
			return fmt.Errorf("%s knows no leader", node)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s after promotion: %w", node, err)
	}
	return nil
}

// stuckAfter is how often Joined looks whether a new member is stuck on its own
// publish, and makes an entry for it if it is.
const stuckAfter = 5 * time.Second

// refusesOwnPublish says whether the end of node's log is a failed publish. etcd (3.7.3
// and before) does not advance the applied index its request limit reads when it
// applies a snapshot: a new member that joined through a snapshot past index 5000,
// and whose first publish was lost (it is proposed as the member starts, and the
// snapshot's transport reset can drop it), refuses every retry as "too many requests"
// until another entry is committed and applied. It serves no client before it has
// published, so on an idle cluster it never does.
func (t *Target) refusesOwnPublish(node string) bool {
	if t.env.LogTail == nil {
		return false
	}
	return strings.Contains(t.env.LogTail(node), "failed to publish local member")
}

// nudge commits an entry that changes no data (an alarm list, which etcd proposes
// through raft) through a member other than node, so that node applies an entry after
// its snapshot and its publish goes through; it logs why.
func (t *Target) nudge(ctx context.Context, node string) {
	order, err := t.changeOrder(ctx, node)
	if err != nil {
		return
	}
	for _, via := range order {
		c, err := t.admin(via)
		if err != nil {
			continue
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err = c.AlarmList(actx)
		cancel()
		if err == nil {
			if t.env.Logf != nil {
				t.env.Logf("etcd: %s has failed to publish itself for %v (after a snapshot etcd refuses it as too many "+
					"requests until an entry is applied); committed an empty entry (alarm list) through %s", node, stuckAfter, via)
			}
			return
		}
	}
}
