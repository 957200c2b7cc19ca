package node

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// run is the Ready loop (see doc.go for its steps and the durability contract).
func (n *Node) run() {
	defer close(n.loopDone)
	for {
		select {
		case <-n.stopc:
			return
		case <-n.tickc:
			n.rn.Tick()
		case rd := <-n.rn.Ready():
			if err := n.handleReady(rd); err != nil {
				n.log.Error("ready loop stopped", "err", err)
				n.failc <- err
				return
			}
			n.rn.Advance()
		}
	}
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.lead.Store(rd.SoftState.Lead)
	}
	// Steps 1-3: persist the snapshot, entries and HardState (fsync), and send the
	// messages: a leader's while it writes (its appends need not wait for its own disk:
	// what it commits comes out in a later Ready), anyone else's after, but for the
	// requests it forwards to the leader (proposals, read indexes), which claim nothing
	// about this node's log.
	lead := n.lead.Load() == n.cfg.ID
	msgs := rd.Messages
	var early bool
	if lead {
		early = n.tr.send(msgs)
		msgs = nil
	} else {
		msgs, early = n.sendForwarded(msgs)
	}
	if early && (len(rd.Entries) > 0 || !raft.IsEmptySnap(rd.Snapshot)) {
		// Let the peers' senders write what was just queued before this goroutine
		// blocks in the fsync: a goroutine woken by a channel send waits in this P's
		// run-next slot, and a P in a system call runs nothing until the runtime takes
		// it back. Without this the leader's appends left only after its own fsync
		// had been under way for 100 µs or more (measured by per-message timestamps:
		// Ready to the follower's receipt 200 µs, 116 µs with the yield), and with them
		// the follower's fsync, the write's critical path.
		runtime.Gosched()
	}
	// Step 4, first part: committed entries that were on this node's disk before this
	// Ready are applied, and their clients answered, while its own write is under way,
	// not after it: a write's acknowledgement waits for its own entry's fsync, never for
	// the next one's.
	ents := rd.CommittedEntries
	if raft.IsEmptySnap(rd.Snapshot) {
		var err error
		if ents, err = n.applyDurable(ents, rd.Entries); err != nil {
			return err
		}
	}
	// Step 5: read states: reads waiting on a ReadIndex learn the index to wait for
	// (they answer once it is applied, so they may learn it before this Ready's write).
	for _, rs := range rd.ReadStates {
		n.readDone(rs)
	}
	if err := n.persist(rd); err != nil {
		return err
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		n.term.Store(rd.HardState.Term)
		n.commit.Store(rd.HardState.Commit)
	}
	if n.cfg.Unsafe == AckBeforeCommit {
		n.ackAppended(rd.Entries)
	}
	n.tr.send(msgs)
	// Step 4, the rest: committed entries written by this Ready.
	if err := n.apply(ents); err != nil {
		return err
	}
	// Step 6: take a snapshot and compact when enough has been applied.
	return n.maybeSnapshot()
}

// sendForwarded sends, at once, a follower's proposals and read indexes forwarded to the
// leader, and returns the other messages, which wait for this Ready's write, and whether
// it queued any.
func (n *Node) sendForwarded(msgs []raftpb.Message) (rest []raftpb.Message, sent bool) {
	var fwd []raftpb.Message
	for _, m := range msgs {
		if m.Type == raftpb.MsgProp || m.Type == raftpb.MsgReadIndex {
			fwd = append(fwd, m)
		} else {
			rest = append(rest, m)
		}
	}
	return rest, n.tr.send(fwd)
}

// applyDurable applies the committed entries that were durable here before this Ready
// (below the first of its new entries, and in the MemoryStorage, which holds only what
// was written) and returns the rest, to apply after the Ready's write. Committed means
// a majority wrote it, but a single voter commits its entries before writing them, and
// a client must never hear of a write that the node it asked has not written.
func (n *Node) applyDurable(committed, unstable []raftpb.Entry) ([]raftpb.Entry, error) {
	if len(committed) == 0 {
		return nil, nil
	}
	durable, err := n.ms.LastIndex()
	if err != nil {
		return committed, nil
	}
	if len(unstable) > 0 && unstable[0].Index <= durable {
		durable = unstable[0].Index - 1
	}
	k := 0
	for k < len(committed) && committed[k].Index <= durable {
		k++
	}
	if err := n.apply(committed[:k]); err != nil {
		return nil, err
	}
	return committed[k:], nil
}

// persist makes the Ready's snapshot, entries and HardState durable and gives them to
// the MemoryStorage raft reads from.
func (n *Node) persist(rd raft.Ready) error {
	if !raft.IsEmptySnap(rd.Snapshot) {
		return n.installSnapshot(rd)
	}
	if err := n.store.Save(rd.HardState, rd.Entries); err != nil {
		return fmt.Errorf("persist ready: %w", err)
	}
	if !raft.IsEmptyHardState(rd.HardState) {
		if err := n.ms.SetHardState(rd.HardState); err != nil {
			return fmt.Errorf("set hardstate: %w", err)
		}
	}
	if err := n.ms.Append(rd.Entries); err != nil {
		return fmt.Errorf("append entries: %w", err)
	}
	return nil
}

// installSnapshot handles a snapshot from the leader: snapshot file first, then a WAL
// holding only what follows it, then the in-memory state.
func (n *Node) installSnapshot(rd raft.Ready) error {
	snap := rd.Snapshot
	if err := n.store.SaveSnapshot(snap); err != nil {
		return err
	}
	hs := rd.HardState
	if raft.IsEmptyHardState(hs) {
		hs, _, _ = n.ms.InitialState()
	}
	hs.Commit = max(hs.Commit, snap.Metadata.Index)
	if err := n.store.Rewrite(hs, rd.Entries); err != nil {
		return err
	}
	if err := n.ms.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("apply snapshot: %w", err)
	}
	if err := n.ms.SetHardState(hs); err != nil {
		return fmt.Errorf("set hardstate: %w", err)
	}
	if err := n.ms.Append(rd.Entries); err != nil {
		return fmt.Errorf("append entries: %w", err)
	}
	if err := n.kv.Restore(snap.Data); err != nil {
		return err
	}
	n.confState = snap.Metadata.ConfState
	n.snapIndex = snap.Metadata.Index
	for _, m := range n.kv.Members() {
		if m.ID != n.cfg.ID {
			n.tr.setPeer(m.ID, n.peerURL(m.ID, m.PeerURL))
		}
	}
	n.log.Info("installed snapshot", "index", snap.Metadata.Index)
	n.setApplied(snap.Metadata.Index)
	return nil
}

// peerURL is where to send to id: the --peers URL when given (it may be a proxy), else
// the URL the member was added with.
func (n *Node) peerURL(id uint64, added string) string {
	if u, ok := n.cfg.Peers[id]; ok {
		return u
	}
	return added
}

// apply applies committed entries in order.
func (n *Node) apply(ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	applied := n.appliedIndex()
	defer func() { n.setApplied(applied) }()
	for _, e := range ents {
		if e.Index <= applied {
			continue
		}
		switch e.Type {
		case raftpb.EntryNormal:
			if len(e.Data) == 0 {
				break
			}
			var c Command
			if err := c.UnmarshalBinary(e.Data); err != nil {
				return fmt.Errorf("decode entry %d: %w", e.Index, err)
			}
			if r := n.kv.Apply(c); !r.Duplicate { // a duplicate's proposer heard at the first
				n.notify(c.ID, r)
			}
		case raftpb.EntryConfChange:
			if err := n.applyConfChange(e); err != nil {
				return err
			}
		}
		applied = e.Index
	}
	return nil
}

func (n *Node) applyConfChange(e raftpb.Entry) error {
	var cc raftpb.ConfChange
	if err := cc.Unmarshal(e.Data); err != nil {
		return fmt.Errorf("decode conf change %d: %w", e.Index, err)
	}
	n.confState = *n.rn.ApplyConfChange(cc)
	switch cc.Type {
	case raftpb.ConfChangeAddNode, raftpb.ConfChangeAddLearnerNode:
		n.kv.SetMember(cc.NodeID, string(cc.Context))
		if cc.NodeID != n.cfg.ID {
			n.tr.setPeer(cc.NodeID, n.peerURL(cc.NodeID, string(cc.Context)))
		}
		n.log.Info("member added", "id", cc.NodeID, "peer_url", string(cc.Context), "index", e.Index)
		// A leader that must send the new member a snapshot sends its latest one,
		// which must already name the member (raft ignores it otherwise): take one.
		n.forceSnap = true
	case raftpb.ConfChangeRemoveNode:
		n.kv.RemoveMember(cc.NodeID)
		if cc.NodeID == n.cfg.ID {
			n.log.Warn("this node was removed from the cluster", "index", e.Index)
			n.leave()
		} else {
			n.tr.removePeer(cc.NodeID)
			n.gone.Store(cc.NodeID, true)
		}
		n.log.Info("member removed", "id", cc.NodeID, "index", e.Index)
	}
	n.notify(cc.ID, Result{})
	return nil
}

// ackAppended (--unsafe ack-before-commit) answers the writers of puts and appends as
// soon as their entry is in this node's log, before it commits.
func (n *Node) ackAppended(ents []raftpb.Entry) {
	for _, e := range ents {
		if e.Type != raftpb.EntryNormal || len(e.Data) == 0 {
			continue
		}
		var c Command
		if c.UnmarshalBinary(e.Data) != nil || c.Op == OpCAS {
			continue
		}
		n.notify(c.ID, Result{})
	}
}

// maybeSnapshot snapshots the state machine every SnapshotCount applied entries,
// compacts the in-memory log (keeping a tail for slow followers) and rewrites the WAL.
func (n *Node) maybeSnapshot() error {
	applied := n.appliedIndex()
	if applied-n.snapIndex < n.cfg.SnapshotCount && !(n.forceSnap && applied > n.snapIndex) {
		return nil
	}
	n.forceSnap = false
	data, err := n.kv.Snapshot()
	if err != nil {
		return err
	}
	snap, err := n.ms.CreateSnapshot(applied, &n.confState, data)
	if err != nil {
		return fmt.Errorf("create snapshot at %d: %w", applied, err)
	}
	if err := n.store.SaveSnapshot(snap); err != nil {
		return err
	}
	keep := min(n.cfg.SnapshotCount, 1000)
	if applied > keep {
		if err := n.ms.Compact(applied - keep); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return fmt.Errorf("compact log to %d: %w", applied-keep, err)
		}
	}
	hs, _, _ := n.ms.InitialState()
	first, _ := n.ms.FirstIndex()
	last, _ := n.ms.LastIndex()
	ents, err := n.ms.Entries(first, last+1, math.MaxUint64)
	if err != nil && !errors.Is(err, raft.ErrUnavailable) {
		return fmt.Errorf("read log for rewrite: %w", err)
	}
	if err := n.store.Rewrite(hs, ents); err != nil {
		return err
	}
	n.snapIndex = applied
	n.log.Info("snapshot taken", "index", applied, "log_first", first)
	return nil
}
