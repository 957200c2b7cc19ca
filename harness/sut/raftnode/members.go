package raftnode

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/node/client"
)

// Membership of a raftnode cluster, through its admin API: nemesis.Members. The harness
// adds the runtime's part: stopping, wiping and starting the node.

// maxLag is how far behind the leader's commit index a member may be for the cluster to
// count as healthy.
const maxLag = 1000

// Healthy implements nemesis.Members: it waits until every node answers, all name the same leader, every node's
// membership is exactly the nodes' current ids, and none lags more than maxLag entries
// behind the leader's commit: then one member can go without risking the quorum.
func (t *Target) Healthy(ctx context.Context) error {
	return t.poll(ctx, t.healthy)
}

func (t *Target) healthy(ctx context.Context) error {
	sts, errs := t.statuses(ctx, time.Second)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	want := t.memberIDs()
	var leader, commit uint64
	for _, n := range t.names {
		st := sts[n]
		if st.Leader == 0 || leader != 0 && st.Leader != leader {
			return fmt.Errorf("%s names leader %d, others %d", n, st.Leader, leader)
		}
		leader = st.Leader
		if st.ID == leader {
			commit = st.Commit
		}
		var got []uint64
		for _, m := range st.Members {
			got = append(got, m.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("%s has members %v, want %v", n, got, want)
		}
	}
	for _, n := range t.names {
		if st := sts[n]; st.Applied+maxLag < commit {
			return fmt.Errorf("%s applied %d, %d behind the leader's commit", n, st.Applied, commit-st.Applied)
		}
	}
	return nil
}

// memberIDs returns the nodes' current raft ids, sorted.
func (t *Target) memberIDs() []uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	ids := make([]uint64, 0, len(t.ids))
	for _, id := range t.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// poll retries f every 200 ms until it returns nil or ctx ends.
func (t *Target) poll(ctx context.Context, f func(context.Context) error) error {
	return sut.Poll(ctx, 200*time.Millisecond, f)
}

// RemoveMember implements nemesis.Members: it removes node's current id from the
// membership through one of the other nodes, retrying through others until the change is
// seen applied. A removed raftnode exits by itself.
func (t *Target) RemoveMember(ctx context.Context, node string) error {
	id := t.ID(node)
	return t.poll(ctx, func(ctx context.Context) error {
		return t.changeVia(ctx, node, func(ctx context.Context, via string) (bool, error) {
			st, err := t.Client(via).Status(ctx)
			if err != nil {
				return false, err
			}
			if !hasMember(st.Members, id) {
				return true, nil
			}
			return false, t.Client(via).RemoveMember(ctx, id)
		})
	})
}

// AddMember implements nemesis.Members: it gives node a new raft id and adds it to the
// membership, at the URL its peers reach it at, through one of the other nodes; from
// then on node starts as a joining member.
func (t *Target) AddMember(ctx context.Context, node string) error {
	t.mu.Lock()
	id := t.nextID
	t.mu.Unlock()
	url := t.peerURL(node)
	err := t.poll(ctx, func(ctx context.Context) error {
		return t.changeVia(ctx, node, func(ctx context.Context, via string) (bool, error) {
			st, err := t.Client(via).Status(ctx)
			if err != nil {
				return false, err
			}
			if hasMember(st.Members, id) {
				return true, nil
			}
			return false, t.Client(via).AddMember(ctx, id, url)
		})
	})
	if err != nil {
		return fmt.Errorf("add %s as member %d: %w", node, id, err)
	}
	t.mu.Lock()
	t.ids[node], t.joined[node] = id, true
	t.nextID++
	t.mu.Unlock()
	return nil
}

// changeVia tries f through each node but skip, the leader first; f reports whether the
// change is already done. It returns nil once some node says it is done or did it.
func (t *Target) changeVia(ctx context.Context, skip string, f func(ctx context.Context, via string) (bool, error)) error {
	order := slices.DeleteFunc(slices.Clone(t.names), func(n string) bool { return n == skip })
	if l, _ := t.Leader(ctx); l != "" && l != skip {
		order = append([]string{l}, slices.DeleteFunc(order, func(n string) bool { return n == l })...)
	}
	var errs []error
	for _, via := range order {
		sctx, cancel := context.WithTimeout(ctx, 6*time.Second)
		done, err := f(sctx, via)
		cancel()
		if done || err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("via %s: %w", via, err))
	}
	return errors.Join(errs...)
}

// Joined implements nemesis.Members: it waits until node knows the leader and has
// applied what the leader had committed when the wait began.
func (t *Target) Joined(ctx context.Context, node string) error {
	var target uint64
	return t.poll(ctx, func(ctx context.Context) error {
		if target == 0 {
			sts, _ := t.statuses(ctx, time.Second)
			for _, st := range sts {
				if st.ID == st.Leader && st.Leader != 0 {
					target = st.Commit
				}
			}
			if target == 0 {
				return errors.New("no leader answers")
			}
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := t.Client(node).Status(sctx)
		switch {
		case err != nil:
			return err
		case st.Leader == 0:
			return fmt.Errorf("%s knows no leader", node)
		case st.Applied < target:
			return fmt.Errorf("%s applied %d of %d", node, st.Applied, target)
		}
		return nil
	})
}

func hasMember(ms []client.Member, id uint64) bool {
	return slices.ContainsFunc(ms, func(m client.Member) bool { return m.ID == id })
}
