// Package sut (system under test) is the seam between faultline's runs and the systems they test. A
// Target knows one system: how to start its node i (a runtime.NodeCmd written from the
// runtime's runtime.NodeEnv), when the cluster serves, who leads, and how the workloads'
// clients talk to it. What else it can do for the nemesis it says with optional
// capabilities, found by type assertion: a clock hook (Clocker), membership changes
// (Members), an end-of-run cross-member check (Consistency). The harness offers a fault
// only where the target and the runtime both can take it, and names the reason where
// one cannot (Unable).
//
// The targets are its sub-packages: raftnode (faultline's own node) and etcd. A target
// knows no runtime: it reaches its nodes through Env.
package sut

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/workload"
)

// Env is what a target knows of the cluster it is given: its nodes and how to reach
// them. It is fixed for the run; the functions may be called at any time, from any
// goroutine.
type Env struct {
	// Nodes are the node names (n1, n2, ...), in a stable order.
	Nodes []string
	// Reach is host:port at which the harness reaches node's port.
	Reach func(node string, port int) string
	// PeerReach is host:port at which the other nodes reach node's port: Reach, or the
	// run's link proxy in front of it when packet faults are on.
	PeerReach func(node string, port int) string
	// RunID is the run's id (for cluster tokens and the like); Dir the run's directory.
	RunID, Dir string
	// Logf writes a line to the run's log (never nil once given to a target).
	Logf func(format string, args ...any)
}

// Target is a system under test.
type Target interface {
	// Name is the target's name, as --target gives it (raftnode, etcd).
	Name() string
	// Ports are the ports every node listens on, in its own namespace.
	Ports() []int
	// Peers says how nodes talk to each other, for the link proxy.
	Peers() Peers
	// Node returns the command that starts node now (its first start, a restart after a
	// kill, the start of a re-added member), where the runtime places it.
	Node(env runtime.NodeEnv) runtime.NodeCmd
	// Ready returns nil when the cluster serves: every node answers, they agree on a
	// leader, and a write through it is acknowledged. It tries once; the caller polls.
	Ready(ctx context.Context) error
	// Leader returns the node most of the nodes that answer follow ("" if none), and an
	// error only when no node answered.
	Leader(ctx context.Context) (string, error)
	// Opener returns the workloads' client opener; each operation is bounded by opTimeout.
	Opener(opTimeout time.Duration) workload.Opener
	// Describe is what test.json records of the target: version, binary, modes.
	Describe() map[string]any
}

// Peers is how a target's nodes talk to each other, for the link proxy.
type Peers struct {
	// Port is the port peers connect to.
	Port int
	// Messages says that peers send each other one-way HTTP POSTs whose answers carry
	// nothing (raftnode): the proxy may then delay, drop, duplicate and reorder messages.
	// Otherwise (etcd's long-lived streams) the proxy works on TCP streams: delay, limited
	// throughput, blackholes.
	Messages bool
}

// Clocker is a target with a clock hook: node's time runs at rate times real time,
// offset from it. SetClock(ctx, n, 0, 1) resets it.
type Clocker interface {
	SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error
}

// Members is a target whose membership the nemesis may change the way an operator
// replacing machines does. The harness does the runtime's part (stopping the node,
// wiping its data, starting it again) between the calls.
type Members interface {
	// Healthy returns nil when every member answers, all agree on the leader and the
	// membership, and none lags far behind; it waits (within ctx) for that.
	Healthy(ctx context.Context) error
	// RemoveMember removes node from the membership through another member. The node
	// may exit by itself afterwards; the harness stops it if it does not.
	RemoveMember(ctx context.Context, node string) error
	// AddMember adds node back as a new member; from then on Node starts it as one
	// joining the cluster (empty data dir).
	AddMember(ctx context.Context, node string) error
	// Joined waits until node, started after AddMember, has caught up with the leader
	// and is a full member.
	Joined(ctx context.Context, node string) error
}

// Upgrader is a target whose members can run other releases of the system, one member
// at a time, on their data: a live upgrade (or downgrade). The harness does the
// runtime's part: it stops the member, calls SetVersion, starts it again and waits for
// Healthy.
type Upgrader interface {
	// Versions are the releases the target has binaries for, in the order of the
	// upgrade path; the cluster starts on the first.
	Versions() []string
	// Version is the release node runs (or will run at its next start).
	Version(node string) string
	// SetVersion makes node's next start run release version.
	SetVersion(node, version string) error
	// PrepareDowngrade tells the cluster that its members are about to go back to
	// version (etcd: the downgrade API); an error when the release cannot.
	PrepareDowngrade(ctx context.Context, version string) error
	// ClusterVersion is the version the cluster as a whole reports running at.
	ClusterVersion(ctx context.Context) (string, error)
}

// Maintainer is a target with the maintenance operations its operators run while it
// serves (etcd: compaction and defragmentation).
type Maintainer interface {
	// Compact discards history before a recent revision (keeping some), and returns it.
	Compact(ctx context.Context) (revision int64, err error)
	// Defragment rewrites node's storage to reclaim space.
	Defragment(ctx context.Context, node string) error
}

// Snapshots is a target that can tell when a member cut off from the others has fallen
// so far behind that the leader must send it a snapshot, and whether it did.
type Snapshots interface {
	MarkSnapshots(ctx context.Context, node string) error
	SnapshotDue(ctx context.Context, node string) (bool, error)
	SnapshotSent(ctx context.Context, node string) (bool, error)
}

// Consistency is a target with an end-of-run check across members (e.g. etcd's HashKV
// at one revision on every member), run after the final reads on the healed cluster.
type Consistency interface {
	Consistent(ctx context.Context) ConsistencyResult
}

// ConsistencyResult is what a Consistency check found. Valid nil means it could not
// tell (some member did not answer): never a pass.
type ConsistencyResult struct {
	Name   string `json:"name"`
	Valid  *bool  `json:"valid"`
	Detail string `json:"detail"`
}

// Unable is an optional Target method naming the fault kinds (nemesis kind names) the
// target cannot take although the runtime could inject them, each with the reason, e.g.
// "clock": "etcd has no clock hook".
type Unable interface {
	Unable() map[string]string
}

// Poll calls f every interval until it returns nil or ctx ends; then it returns f's last
// error joined with ctx's.
func Poll(ctx context.Context, interval time.Duration, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// MostNamed returns the id named most often among ids, ignoring 0 (none), the lowest on
// a tie; 0 when none is named: who most nodes say leads.
func MostNamed(ids []uint64) uint64 {
	votes := map[uint64]int{}
	for _, id := range ids {
		if id != 0 {
			votes[id]++
		}
	}
	best, bestVotes := uint64(0), 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	return best
}
