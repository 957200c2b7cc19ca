package nemesis

import (
	"context"
	"maps"
	"slices"
	"time"
)

// Capability is something a cluster can do to its nodes that faults need: what the
// runtime the nodes run in can do (kill, pause, filter their network) and what the
// target knows how to do (change its clock, its membership, its release). Runtimes and
// targets declare theirs as Caps before anything starts; the faults that need a
// capability get its implementation from Powers.
type Capability string

// The capabilities, each with the interface that implements it (a Powers field).
const (
	CapKill       Capability = "kill"           // NodeControl: kill, stop, start, wipe nodes
	CapPause      Capability = "pause"          // Pauser
	CapIsolate    Capability = "isolate"        // Partitioner: cut nodes off from all the others
	CapPartition  Capability = "partition"      // Partitioner with Grudges: any grudge
	CapLinks      Capability = "links"          // Packeter
	CapMessages   Capability = "message-links"  // Packeter on links of one-way messages
	CapStreams    Capability = "stream-links"   // Packeter on links of long-lived TCP streams
	CapClock      Capability = "clock"          // Clocker
	CapMembers    Capability = "members"        // Members
	CapUpgrade    Capability = "upgrade"        // Upgrader
	CapMaintain   Capability = "maintenance"    // Maintainer
	CapSnapshots  Capability = "snapshot-sends" // Snapshotter
	CapDisks      Capability = "disks"          // Disks: nodes' disks that can lose unsynced writes
	CapDataDirs   Capability = "data-dirs"      // Corrupter: nodes' data files, reached while they are down
	CapFailpoints Capability = "failpoints"     // Failpointer: gofail failpoints in the nodes' programs
	// A target that names its files of a kind declares FileKind.Cap ("log-files",
	// "snapshot-files", "state-files"); the runtime's CapDataDirs implements them.
	CapLogFiles      = Capability("log-files")
	CapSnapshotFiles = Capability("snapshot-files")
	CapStateFiles    = Capability("state-files")
)

// Caps is what a runtime or a target declares it can do: the capabilities it has, and
// for those it lacks, why (the reason a user reads when a fault is refused). The zero
// value has none.
type Caps struct {
	has map[Capability]bool
	why map[Capability]string
}

// Can returns Caps holding these capabilities.
func Can(caps ...Capability) Caps {
	c := Caps{has: map[Capability]bool{}, why: map[Capability]string{}}
	for _, x := range caps {
		c.has[x] = true
	}
	return c
}

// Lacks returns c with capability x removed, for the reason why.
func (c Caps) Lacks(x Capability, why string) Caps {
	out := c.clone()
	delete(out.has, x)
	out.why[x] = why
	return out
}

// Has reports whether c holds x, and if not, why.
func (c Caps) Has(x Capability) (bool, string) {
	if c.has[x] {
		return true, ""
	}
	if why := c.why[x]; why != "" {
		return false, why
	}
	return false, "no " + string(x)
}

// Union is what c and o can do together: a capability either has; the reasons of
// both for what neither has.
func (c Caps) Union(o Caps) Caps {
	out := c.clone()
	for x := range o.has {
		out.has[x] = true
		delete(out.why, x)
	}
	for x, why := range o.why {
		if !out.has[x] && out.why[x] == "" {
			out.why[x] = why
		}
	}
	return out
}

// List returns the capabilities c holds, sorted.
func (c Caps) List() []Capability { return slices.Sorted(maps.Keys(c.has)) }

func (c Caps) clone() Caps {
	out := Caps{has: maps.Clone(c.has), why: maps.Clone(c.why)}
	if out.has == nil {
		out.has = map[Capability]bool{}
	}
	if out.why == nil {
		out.why = map[Capability]string{}
	}
	return out
}

// Powers are the implementations of a cluster's capabilities, given to every fault it
// injects (Env). A field is nil where the cluster lacks the capability; a fault only
// runs where its kind's and variant's needs were found in the cluster's Caps, so it
// may use the fields it needs without checking.
type Powers struct {
	Nodes      NodeControl
	Pause      Pauser
	Net        Partitioner
	Links      Packeter
	Clock      Clocker
	Members    Members
	Upgrade    Upgrader
	Maintain   Maintainer
	Snapshots  Snapshotter
	Disks      Disks
	Files      Corrupter
	Failpoints Failpointer
}

// Missing returns the capabilities of caps whose implementation p lacks: a runtime or
// target that declares what it cannot do, a bug of faultline's, which the harness
// reports before anything starts.
func (p Powers) Missing(caps Caps) []Capability {
	var out []Capability
	for _, x := range caps.List() {
		var ok bool
		switch x {
		case CapKill:
			ok = p.Nodes != nil
		case CapPause:
			ok = p.Pause != nil
		case CapIsolate:
			ok = p.Net != nil
		case CapPartition:
			ok = p.Net != nil && p.Net.Grudges()
		case CapLinks:
			ok = p.Links != nil
		case CapMessages:
			ok = p.Links != nil && p.Links.Messages()
		case CapStreams:
			ok = p.Links != nil && !p.Links.Messages()
		case CapClock:
			ok = p.Clock != nil
		case CapMembers:
			ok = p.Members != nil
		case CapUpgrade:
			ok = p.Upgrade != nil
		case CapMaintain:
			ok = p.Maintain != nil
		case CapSnapshots:
			ok = p.Snapshots != nil
		case CapDisks:
			ok = p.Disks != nil
		case CapFailpoints:
			ok = p.Failpoints != nil
		case CapDataDirs, CapLogFiles, CapSnapshotFiles, CapStateFiles:
			ok = p.Files != nil
		}
		if !ok {
			out = append(out, x)
		}
	}
	return out
}

// NodeControl starts and stops the cluster's nodes: the runtime's part of kills,
// membership changes and upgrades.
type NodeControl interface {
	// Kill stops node at once (SIGKILL); its data stays. A node already down stays so.
	Kill(ctx context.Context, node string) error
	// Stop asks node to shut down, and kills it after a grace period.
	Stop(ctx context.Context, node string) error
	// Start starts node on its data, the way the target starts it now (a re-added member
	// as one joining, an upgraded member on its new release); a running node is left be.
	Start(ctx context.Context, node string) error
	// Running reports whether node's program runs (paused counts as running).
	Running(node string) bool
	// Wipe empties node's data directory; node must be down.
	Wipe(ctx context.Context, node string) error
	// LogTail is the end of node's log, for an error that says why a node died.
	LogTail(node string) string
}

// Pauser can freeze a node (SIGSTOP, the cgroup freezer) and thaw it.
type Pauser interface {
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
}

// Partitioner makes each node drop the packets of the nodes its grudge names, replacing
// any partition in force; HealPartition lifts every partition.
type Partitioner interface {
	// Partition applies g. With reset, TCP is refused with resets instead of dropped:
	// established connections die at once on both ends, with what they had in flight,
	// instead of stalling and delivering it all when the partition heals.
	Partition(ctx context.Context, g Grudge, reset bool) error
	HealPartition(ctx context.Context) error
	// Grudges reports whether any grudge can be applied; false when only grudges that
	// cut nodes off from all the others can be (CapIsolate without CapPartition).
	Grudges() bool
}

// Packeter degrades links: Packets replaces the packet faults in force with p on these
// links (the others are healthy); HealPackets makes every link healthy.
type Packeter interface {
	Packets(ctx context.Context, links []Link, p Packets) error
	HealPackets(ctx context.Context) error
	// Messages reports whether the links carry one-way messages (delay, loss,
	// duplication, reordering apply) rather than long-lived TCP streams (delay, loss,
	// throughput, blackholes).
	Messages() bool
}

// Clocker changes a node's clock: its time runs at rate times real time, offset from it.
// SetClock(ctx, n, 0, 1) resets it; resetting a node that is down is a no-op (a node
// starts with a true clock).
type Clocker interface {
	SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error
}

// Members is a target whose membership can change the way an operator replacing
// machines changes it. The faults do the runtime's part (NodeControl) between the calls.
type Members interface {
	// Healthy returns nil when every member answers, all agree on the leader and the
	// membership, and none lags far behind: a member can then be taken out without
	// risking the quorum. It waits (within ctx) for the cluster to get there.
	Healthy(ctx context.Context) error
	// RemoveMember removes node from the membership through another member. The node
	// may exit by itself afterwards.
	RemoveMember(ctx context.Context, node string) error
	// AddMember adds node back as a new member; from then on NodeControl.Start starts it
	// as one joining the cluster (on an empty data dir).
	AddMember(ctx context.Context, node string) error
	// Joined waits until node, started after AddMember, has caught up and is a member.
	Joined(ctx context.Context, node string) error
}

// Upgrader is a target whose members can run other releases, one member at a time, on
// their data: the live upgrade of a Kubernetes control plane's etcd. The faults stop a
// member (NodeControl), set its release, and start it again.
type Upgrader interface {
	// Healthy is as Members'.
	Healthy(ctx context.Context) error
	// Versions are the releases in upgrade order; the cluster starts on the first.
	Versions() []string
	// Version is the release node runs (or will run at its next start).
	Version(node string) string
	// SetVersion makes node's next start run release version.
	SetVersion(node, version string) error
	// PrepareDowngrade readies the cluster for its members going back to version
	// (etcd's downgrade API); an error when the releases cannot.
	PrepareDowngrade(ctx context.Context, version string) error
	// ClusterVersion is the version the cluster as a whole reports running at
	// (major.minor for etcd).
	ClusterVersion(ctx context.Context) (string, error)
}

// Maintainer runs the maintenance its operators schedule while the system serves.
type Maintainer interface {
	// Compact discards history before a recent revision and returns it; with an error,
	// the highest revision it asked for (0: none), which may have been compacted.
	Compact(ctx context.Context) (int64, error)
	// Defragment rewrites node's storage (blocking it meanwhile).
	Defragment(ctx context.Context, node string) error
}

// Snapshotter tells whether a member cut off from the others must be caught up with a
// snapshot rather than log entries, and whether it was.
type Snapshotter interface {
	// MarkSnapshots notes how many snapshots have been sent to node so far.
	MarkSnapshots(ctx context.Context, node string) error
	// SnapshotDue reports whether node is so far behind that the leader will send it a
	// snapshot once it can reach it.
	SnapshotDue(ctx context.Context, node string) (bool, error)
	// SnapshotSent reports whether node was sent a snapshot since the mark.
	SnapshotSent(ctx context.Context, node string) (bool, error)
}

// Disks are the nodes' disks, which hold what a node wrote and did not sync the way a
// machine's page cache does.
type Disks interface {
	// PowerLoss drops everything node's disk holds that was not synced (fsync'd bytes and
	// committed names stay), as a power cut would, and says what it dropped. node must be
	// down.
	PowerLoss(ctx context.Context, node string) (string, error)
}
