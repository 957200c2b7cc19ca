package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// ProposalTimeout bounds how long a request waits for its entry to apply (or its read
// to be confirmed) when the client's context allows longer.
const ProposalTimeout = 5 * time.Second

// APIError is an error with an HTTP status and whether it is definite: the node knows
// the operation did not and will not take effect.
type APIError struct {
	Status   int
	Msg      string
	Definite bool
}

func (e *APIError) Error() string { return e.Msg }

func definite(status int, format string, a ...any) *APIError {
	return &APIError{Status: status, Msg: fmt.Sprintf(format, a...), Definite: true}
}

func indefinite(status int, format string, a ...any) *APIError {
	return &APIError{Status: status, Msg: fmt.Sprintf(format, a...)}
}

// ErrCASMismatch is returned by Propose when a CAS found another value.
var ErrCASMismatch = &APIError{Status: http.StatusConflict, Msg: "cas mismatch", Definite: true}

// checkServing refuses, definitely, requests a node cannot start. While no leader is
// known (an election is going on) it waits for one, as long as ctx allows.
func (n *Node) checkServing(ctx context.Context) *APIError {
	for {
		select {
		case <-n.stopc:
			return definite(http.StatusServiceUnavailable, "node stopping")
		default:
		}
		if n.removed.Load() {
			return definite(http.StatusGone, "node removed from the cluster")
		}
		if n.lead.Load() != raft.None {
			return nil
		}
		select {
		case <-ctx.Done():
			return definite(http.StatusServiceUnavailable, "no leader known")
		case <-time.After(leaderPoll):
		}
	}
}

const leaderPoll = 20 * time.Millisecond

// register makes a channel for the result of request id.
func (n *Node) register(id uint64) chan Result {
	ch := make(chan Result, 1)
	n.mu.Lock()
	n.waiters[id] = ch
	n.mu.Unlock()
	return ch
}

func (n *Node) unregister(id uint64) {
	n.mu.Lock()
	delete(n.waiters, id)
	n.mu.Unlock()
}

// notify delivers a result to the waiter of id, if this node has one.
func (n *Node) notify(id uint64, r Result) {
	n.mu.Lock()
	ch, ok := n.waiters[id]
	delete(n.waiters, id)
	n.mu.Unlock()
	if ok {
		ch <- r
	}
}

// Propose replicates a command and waits until it is applied (in ack-before-commit:
// appended) here. A CAS that found another value returns ErrCASMismatch.
func (n *Node) Propose(ctx context.Context, c Command) error {
	ctx, cancel := context.WithTimeout(ctx, ProposalTimeout)
	defer cancel()
	if err := n.checkServing(ctx); err != nil {
		return err
	}
	c.ID = n.nextID()
	data, err := c.MarshalBinary()
	if err != nil {
		return definite(http.StatusBadRequest, "encode command: %v", err)
	}
	ch := n.register(c.ID)
	defer n.unregister(c.ID)
	if err := n.rn.Propose(ctx, data); err != nil {
		return proposeError(err)
	}
	return n.await(ctx, ch, c.Op == OpCAS)
}

func (n *Node) await(ctx context.Context, ch chan Result, cas bool) error {
	select {
	case r := <-ch:
		if cas && r.CASMismatch {
			return ErrCASMismatch
		}
		return nil
	case <-ctx.Done():
		return indefinite(http.StatusGatewayTimeout, "proposal not applied in time: %v", ctx.Err())
	case <-n.stopc:
		return indefinite(http.StatusServiceUnavailable, "node stopping with the proposal in flight")
	}
}

// proposeError classifies an error of raft's Propose: a dropped proposal never entered
// any log (definite); anything else may have been handed over (indefinite).
func proposeError(err error) *APIError {
	if errors.Is(err, raft.ErrProposalDropped) {
		return definite(http.StatusServiceUnavailable, "proposal dropped (no leader or leadership transfer)")
	}
	return indefinite(http.StatusServiceUnavailable, "propose: %v", err)
}

// ChangeMember proposes a ConfChange and waits until it is applied.
func (n *Node) ChangeMember(ctx context.Context, cc raftpb.ConfChange) error {
	ctx, cancel := context.WithTimeout(ctx, ProposalTimeout)
	defer cancel()
	if err := n.checkServing(ctx); err != nil {
		return err
	}
	cc.ID = n.nextID()
	ch := n.register(cc.ID)
	defer n.unregister(cc.ID)
	if err := n.rn.ProposeConfChange(ctx, cc); err != nil {
		return proposeError(err)
	}
	return n.await(ctx, ch, false)
}

// readRetry is how often a ReadIndex request is re-sent while unanswered (raft drops it
// silently when the leader is unknown or changes).
const readRetry = time.Second

// ReadBarrier returns once a read of the local state is linearizable: ReadIndex
// confirmed by a quorum (or the leader's lease in lease-read), and applied caught up.
// In stale-read it returns at once. Reads have no effect, so their errors are definite.
//
// Every attempt carries a request context of its own, never a retry of an earlier one.
// raft v3.6 confirms a read when a quorum acknowledges a heartbeat carrying its context;
// with a reused context, acknowledgements delayed from the first attempt (say, queued at
// a leader that was paused) can confirm the retry at a leader that has since been
// deposed, and with it every read queued before it: stale reads (the bug etcd fixed for
// #20418). An answer to any attempt is valid: each was confirmed after the read began.
func (n *Node) ReadBarrier(ctx context.Context) error {
	if n.cfg.Unsafe == StaleRead {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ProposalTimeout)
	defer cancel()
	if err := n.checkServing(ctx); err != nil {
		return err
	}
	ch := make(chan uint64, 1)
	var ids []uint64
	defer func() {
		n.mu.Lock()
		for _, id := range ids {
			delete(n.reads, id)
		}
		n.mu.Unlock()
	}()
	var index uint64
	for got := false; !got; {
		id := n.nextID()
		n.mu.Lock()
		n.reads[id] = ch
		n.mu.Unlock()
		ids = append(ids, id)
		if err := n.rn.ReadIndex(ctx, binary.BigEndian.AppendUint64(nil, id)); err != nil {
			return definite(http.StatusServiceUnavailable, "read index: %v", err)
		}
		t := time.NewTimer(readRetry)
		select {
		case index = <-ch:
			got = true
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return definite(http.StatusGatewayTimeout, "read not confirmed in time: %v", ctx.Err())
		}
		t.Stop()
	}
	if err := n.waitApplied(ctx, index); err != nil {
		return definite(http.StatusGatewayTimeout, "read: waiting for apply: %v", err)
	}
	return nil
}

// readDone hands a ReadState to the read waiting for it.
func (n *Node) readDone(rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	id := binary.BigEndian.Uint64(rs.RequestCtx)
	n.mu.Lock()
	ch, ok := n.reads[id]
	n.mu.Unlock()
	if ok {
		select {
		case ch <- rs.Index:
		default:
		}
	}
}
