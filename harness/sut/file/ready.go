package file

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/harness/sut"
)

// readyKey is the key of the write that proves a cluster serves.
const readyKey = "faultline-ready"

// setupTimeout bounds hooks.setup's call.
const setupTimeout = time.Minute

// Ready implements sut.Target: every node passes the readiness check, all name the
// same leader (with a leader hook), hooks.setup has been made (the first time), and a
// write through the leader (without one: through the first node that takes it) is
// acknowledged. It tries once; the harness
// polls. With ready.timeout, a cluster whose first readiness takes longer fails the
// target (and so the run), naming the node that was not ready, with its log's tail.
func (t *Target) Ready(ctx context.Context) error {
	node, err := t.readyOnce(ctx)
	t.mu.Lock()
	if t.started.IsZero() {
		t.started = time.Now()
	}
	first, since := !t.ready, time.Since(t.started)
	t.ready = t.ready || err == nil
	t.mu.Unlock()
	if limit := time.Duration(t.f.Ready.Timeout); err != nil && first && limit > 0 && since > limit {
		msg := fmt.Sprintf("the cluster was not ready within %v (ready.timeout): %v", limit, err)
		if node != "" && t.env.LogTail != nil {
			msg += fmt.Sprintf("; the end of %s's log (nodes/%s/):\n%s", node, node, t.env.LogTail(node))
		}
		t.fail(errors.New(msg))
	}
	return err
}

// readyOnce checks the cluster once; node is the node that was not ready, if one was.
func (t *Target) readyOnce(ctx context.Context) (node string, err error) {
	for _, n := range t.names {
		if err := t.probe(ctx, n); err != nil {
			return n, fmt.Errorf("%s is not ready: %w", n, err)
		}
	}
	order := t.names
	if t.f.Hooks.Leader != nil {
		leader, err := t.agreedLeader(ctx)
		if err != nil {
			return "", err
		}
		order = []string{leader}
	}
	if err := t.setUp(ctx, order[0]); err != nil {
		return "", err
	}
	var errs []error
	for _, n := range order {
		if err := t.readyWrite(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("%s: a write: %w", n, err))
			continue
		}
		return "", nil
	}
	return order[0], errors.Join(errs...) // the log to read: the leader's, or the first node's
}

// setUp makes hooks.setup's call once, to node: the first time every node passes its
// readiness check and (with a leader hook) they agree on the leader, before the
// readiness write, which may need what setup makes (a bucket). What it answers goes to
// the run's log; an error fails the target, and so stops the run (exit 3), with what
// the call said. Without the hook it does nothing.
func (t *Target) setUp(ctx context.Context, node string) error {
	c := t.f.Hooks.Setup
	t.mu.Lock()
	done := t.setupDone
	t.mu.Unlock()
	if c == nil || done {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()
	out, err := t.call(ctx, "hooks.setup", c, node, t.data(node, "", nil))
	if err != nil {
		err = fmt.Errorf("setup on %s: %w", node, err)
		t.fail(err)
		return err
	}
	said := strings.TrimSpace(string(out))
	if len(said) > 4096 {
		said = said[:4096] + "…"
	}
	t.env.Logf("setup on %s: %s", node, said)
	t.mu.Lock()
	t.setupDone = true
	t.mu.Unlock()
	return nil
}

// ReadyTimeout implements sut.ReadyBudget: ready.timeout (0: the harness's default).
func (t *Target) ReadyTimeout() time.Duration { return time.Duration(t.f.Ready.Timeout) }

// readyWrite writes readyKey through node's admin client, which is opened on first use
// and dropped after an error (the next write opens a new one).
func (t *Target) readyWrite(ctx context.Context, node string) error {
	t.mu.Lock()
	c := t.admins[node]
	t.mu.Unlock()
	if c == nil {
		var err error
		if c, err = t.open(ctx, node, -1, 3*time.Second); err != nil {
			return err
		}
		t.mu.Lock()
		t.admins[node] = c
		t.mu.Unlock()
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	err := c.Write(wctx, readyKey, "1")
	if err != nil {
		t.mu.Lock()
		delete(t.admins, node)
		t.mu.Unlock()
		_ = closeClient(c)
	}
	return err
}

// ClockHook says whether the target file has a clock hook: without one, the clock
// fault goes through the runtime's per-process clocks, where it has them.
func (t *Target) ClockHook() bool { return t.f.Hooks.Clock != nil }

// SetClock implements nemesis.Clocker through hooks.clock, called about node with
// OffsetMS and Rate.
func (t *Target) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	h := t.f.Hooks.Clock
	if h == nil {
		return fmt.Errorf("target file %s has no clock hook", t.f.Path)
	}
	d := t.data(node, "", nil)
	d.OffsetMS, d.Rate = offset.Milliseconds(), rate
	_, err := t.call(ctx, "hooks.clock", h, node, d)
	return err
}

// poll retries f every 200 ms until it returns nil or ctx ends.
func (t *Target) poll(ctx context.Context, f func(context.Context) error) error {
	return sut.Poll(ctx, 200*time.Millisecond, f)
}

// Healthy implements nemesis.Members: every node passes the readiness check and (with
// a leader hook) all name the same leader. The file says nothing of lag: a member that
// is far behind counts as healthy.
func (t *Target) Healthy(ctx context.Context) error {
	return t.poll(ctx, func(ctx context.Context) error { return t.serving(ctx, t.names...) })
}

// serving checks once that nodes pass the readiness check and (with a leader hook)
// that every node names the same leader.
func (t *Target) serving(ctx context.Context, nodes ...string) error {
	for _, n := range nodes {
		if err := t.probe(ctx, n); err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
	}
	if t.f.Hooks.Leader == nil {
		return nil
	}
	_, err := t.agreedLeader(ctx)
	return err
}

// RemoveMember implements nemesis.Members: hooks.remove-member with .Member the node
// (its current ID), asked of (or, for a command, about) another node, the leader
// first, until one call succeeds. The hook must be idempotent: a call whose answer was
// lost is made again.
func (t *Target) RemoveMember(ctx context.Context, node string) error {
	member := t.peer(node)
	return t.changeVia(ctx, "hooks.remove-member", t.f.Hooks.RemoveMember, node, member)
}

// AddMember implements nemesis.Members: hooks.add-member with .Member the node under a
// new ID, as RemoveMember; from then on the node starts with Join set.
func (t *Target) AddMember(ctx context.Context, node string) error {
	member := t.peer(node)
	t.mu.Lock()
	member.ID = t.nextID
	t.mu.Unlock()
	if err := t.changeVia(ctx, "hooks.add-member", t.f.Hooks.AddMember, node, member); err != nil {
		return fmt.Errorf("add %s as member %d: %w", node, member.ID, err)
	}
	t.mu.Lock()
	t.ids[node], t.joined[node] = member.ID, true
	t.nextID++
	t.mu.Unlock()
	return nil
}

// changeVia makes hook h about member through the nodes other than skip, the leader
// first, until a call succeeds or ctx ends.
func (t *Target) changeVia(ctx context.Context, where string, h *Call, skip string, member Peer) error {
	if h == nil {
		return fmt.Errorf("target file %s has no membership hooks", t.f.Path)
	}
	return t.poll(ctx, func(ctx context.Context) error {
		order := slices.DeleteFunc(slices.Clone(t.names), func(n string) bool { return n == skip })
		if l, _ := t.Leader(ctx); l != "" && l != skip {
			order = append([]string{l}, slices.DeleteFunc(order, func(n string) bool { return n == l })...)
		}
		var errs []error
		for _, via := range order {
			d := t.data(via, "", nil)
			d.Member = member
			cctx, cancel := context.WithTimeout(ctx, 6*time.Second)
			_, err := t.call(cctx, where, h, via, d)
			cancel()
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("via %s: %w", via, err))
		}
		return errors.Join(errs...)
	})
}

// Joined implements nemesis.Members: node passes the readiness check and (with a leader
// hook) names the leader the others name.
func (t *Target) Joined(ctx context.Context, node string) error {
	return t.poll(ctx, func(ctx context.Context) error { return t.serving(ctx, node) })
}
