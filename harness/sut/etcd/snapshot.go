package etcd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Snapshot catch-up: whether a lagging member was brought back with a snapshot rather
// than log entries (the partition variant that holds a follower off until the leader
// has compacted its log past it: Config.SnapshotCatchUpEntries, CatchUpEntries).
//
// It is read from the members' Prometheus metrics, served at /metrics on the client URL
// in every release 3.4–3.7: the sender's counter etcd_network_snapshot_send_success{To=
// "<member id, hex>"} (etcdserver/api/rafthttp/metrics.go, incremented in
// snapshot_sender.go once a snapshot was sent and answered; the same name and label in
// 3.5.35, 3.6.16 and 3.7.3, and present in Debian's 3.4.23). The sender's counter, not
// the receiver's etcd_network_snapshot_receive_success{From=...}: the member catching up
// is the one the fault kills or restarts, and a restart zeroes its counters. A sender
// may restart too (and the leader may change), so a mark keeps every member's count and
// its process_start_time_seconds: a member started since the mark counts every snapshot
// it sent.

// snapshotMark is what MarkSnapshots saw, for SnapshotSent.
type snapshotMark struct {
	to   string               // node's member id, as the metric's To label writes it
	seen map[string]sendCount // per member that answered
}

// sendCount is one member's count of snapshots sent to one member, and when its process
// started.
type sendCount struct {
	started float64
	sent    float64
}

// MarkSnapshots notes, for SnapshotSent(node), how many snapshots each member has sent to
// node so far (replacing node's earlier mark). Members that do not answer count as
// having sent none. node itself need not answer if its member id is known.
func (t *Target) MarkSnapshots(ctx context.Context, node string) error {
	_, err := t.status(ctx, node, 2*time.Second) // refreshes node's member id
	t.mu.Lock()
	id := t.ids[node]
	t.mu.Unlock()
	if id == 0 {
		return fmt.Errorf("snapshot mark: %s's member id is unknown: %w", node, err)
	}
	to := strconv.FormatUint(id, 16) // as types.ID.String writes it
	m := snapshotMark{to: to, seen: map[string]sendCount{}}
	for _, n := range t.names {
		if n == node {
			continue
		}
		if c, err := t.sendCount(ctx, n, to); err == nil {
			m.seen[n] = c
		}
	}
	t.mu.Lock()
	t.marks[node] = m
	t.mu.Unlock()
	return nil
}

// SnapshotSent reports whether some member has sent node a snapshot since
// MarkSnapshots(node). An error, with false, when node has no mark, or when no member
// showed a snapshot sent and some did not answer.
func (t *Target) SnapshotSent(ctx context.Context, node string) (bool, error) {
	t.mu.Lock()
	mark, ok := t.marks[node]
	t.mu.Unlock()
	if !ok {
		return false, fmt.Errorf("snapshots sent to %s: no mark (MarkSnapshots)", node)
	}
	var errs []error
	for _, n := range t.names {
		if n == node {
			continue
		}
		c, err := t.sendCount(ctx, n, mark.to)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		before, ok := mark.seen[n]
		if !ok || c.started != before.started {
			before.sent = 0 // unseen, or restarted since: every send counts
		}
		if c.sent > before.sent {
			return true, nil
		}
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("snapshots sent to %s: %w", node, errors.Join(errs...))
	}
	return false, nil
}

// sendCount reads node's metrics: the snapshots it sent to member to (hex id).
func (t *Target) sendCount(ctx context.Context, node, to string) (sendCount, error) {
	b, err := httpGet(ctx, t.clientAddr(node), "/metrics")
	if err != nil {
		return sendCount{}, fmt.Errorf("%s: %w", node, err)
	}
	var c sendCount
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	want := `etcd_network_snapshot_send_success{To="` + to + `"}`
	for sc.Scan() {
		line := sc.Text()
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		switch name {
		case "process_start_time_seconds":
			c.started, _ = strconv.ParseFloat(strings.TrimSpace(value), 64)
			found = true
		case want:
			c.sent, _ = strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return sendCount{}, fmt.Errorf("%s: /metrics: %w", node, err)
	}
	if !found {
		return sendCount{}, fmt.Errorf("%s: /metrics has no process_start_time_seconds", node)
	}
	return c, nil
}

// maxSnapshotLag is the most entries a snapshot partition may need node to fall
// behind: beyond it (etcd's default --snapshot-count of 10000 or 100000) the wait would
// take most of a run, so the variant is offered only with a small --snapshot-count.
// Releases with no catch-up flag (3.4, 3.5 before 3.5.14) keep 5000 entries: with
// --snapshot-count 100 and the in-flight margin that is 6100, about a minute of the
// workloads' writes, within SnapshotPartitionTimeout — the reach of etcd#15271's
// v3.5.7.
const maxSnapshotLag = 6500

// inflightEntries is a margin for what the leader may still hold for a cut-off follower.
// A partition that drops packets keeps the TCP streams, and what the leader had sent
// (up to raft's 512 in-flight appends, many entries each under load) is delivered when it
// heals: no snapshot (seen: 400 entries behind got none, 2000 did; under a run's load even
// 4500 did not). The snapshot partition therefore resets the connections
// (nemesis.Resetter), and this margin only covers the leader's own buffers.
const inflightEntries = 1000

// snapshotLag is how far behind the leader node must fall before the leader can no
// longer catch it up from its log: one snapshot interval, plus the entries a member
// keeps after a snapshot, plus what may already be on the wire to it.
func (t *Target) snapshotLag(node string) uint64 {
	return uint64(t.cfg.SnapshotCount + t.CatchUpEntries(node) + inflightEntries)
}

// SnapshotDue reports whether node has fallen so far behind the leader that the leader
// will send it a snapshot rather than log entries when it can reach it again.
func (t *Target) SnapshotDue(ctx context.Context, node string) (bool, error) {
	leader, err := t.Leader(ctx)
	if err != nil || leader == "" || leader == node {
		return false, fmt.Errorf("snapshot due for %s: leader %q: %v", node, leader, err)
	}
	ls, err := t.status(ctx, leader, time.Second)
	if err != nil {
		return false, err
	}
	ns, err := t.status(ctx, node, time.Second)
	if err != nil {
		return false, err
	}
	return ls.raftIndex > ns.raftIndex+t.snapshotLag(node), nil
}

// snapshotUnable says why members of cfg on release version cannot be made to need a
// snapshot within a partition ("" when they can).
func snapshotUnable(cfg Config, version string) string {
	catchUp := catchUpEntries(cfg, version)
	if cfg.SnapshotCount <= 0 || uint64(cfg.SnapshotCount+catchUp+inflightEntries) > maxSnapshotLag {
		return fmt.Sprintf("a member must fall a snapshot interval behind (--snapshot-count %d plus %d catch-up entries): give --etcd-snapshot-count of at most %d",
			cfg.SnapshotCount, catchUp, maxSnapshotLag/2)
	}
	return ""
}
