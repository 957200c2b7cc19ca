package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// Grudge says, for each node, the nodes whose packets it drops. Partitions built here are
// symmetric: if a drops b, b drops a.
type Grudge map[string][]string

// Shapes are the partition shapes PartitionFault chooses from.
var Shapes = []string{"one", "leader", "halves", "random-halves", "majorities-ring", "bridge"}

// PartitionFault cuts the network into a shape chosen at random from Shapes.
type PartitionFault struct {
	// Shape fixes the shape; empty picks one at random each time, from Only if it is
	// set (a runtime that can make some shapes only), else from Shapes.
	Shape string
	Only  []string
}

func (PartitionFault) Name() string             { return "partition" }
func (PartitionFault) Events() (string, string) { return "start-partition", "stop-partition" }
func (PartitionFault) Available(c Cluster) (bool, string) {
	if len(c.Nodes()) < 2 {
		return false, "a partition needs at least 2 nodes"
	}
	return has[Partitioner](c, "partition", "this runtime cannot partition nodes")
}

// Inject computes a grudge of the chosen shape and applies it.
func (f PartitionFault) Inject(ctx context.Context, env Env) (Injection, error) {
	p := env.Cluster.(Partitioner)
	shape := f.Shape
	if shape == "" {
		from := Shapes
		if len(f.Only) > 0 {
			from = f.Only
		}
		shape = from[env.Rand.IntN(len(from))]
	}
	// Every random draw is taken before the cluster is asked anything, and the same
	// number of them whatever it answers: the schedule after this fault must not depend
	// on whether a leader was known (replay by seed).
	nodes := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	if shape == "leader" {
		if l, _ := env.Cluster.Leader(ctx); l != "" {
			nodes = append([]string{l}, slices.DeleteFunc(nodes, func(n string) bool { return n == l })...)
		} // else: no leader known: nodes[0], at random, stands in
	}
	g, err := MakeGrudge(shape, nodes, func(int, func(i, j int)) {}) // already shuffled
	if err != nil {
		return Injection{}, err
	}
	if err := p.Partition(ctx, g); err != nil {
		_ = p.HealPartition(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("partition %s: %w", shape, err)
	}
	return Injection{
		Nodes: nodes,
		Value: history.L(shape, g.String()),
		Heal:  p.HealPartition,
	}, nil
}

// MakeGrudge computes a partition of the given shape. For "leader", nodes[0] is the node
// to isolate; shuffle randomizes the shapes that are random.
func MakeGrudge(shape string, nodes []string, shuffle func(n int, swap func(i, j int))) (Grudge, error) {
	n := slices.Clone(nodes)
	mix := func() { shuffle(len(n), func(i, j int) { n[i], n[j] = n[j], n[i] }) }
	switch shape {
	case "one":
		mix()
		return isolate(n[:1], n[1:]), nil
	case "leader":
		return isolate(n[:1], n[1:]), nil
	case "halves":
		slices.Sort(n)
		return isolate(n[:len(n)/2], n[len(n)/2:]), nil
	case "random-halves":
		mix()
		return isolate(n[:len(n)/2], n[len(n)/2:]), nil
	case "majorities-ring":
		mix()
		return majoritiesRing(n), nil
	case "bridge":
		mix()
		if len(n) < 3 {
			return isolate(n[:1], n[1:]), nil
		}
		// n[0] is the bridge: it sees both sides, which do not see each other.
		rest := n[1:]
		g := isolate(rest[:len(rest)/2], rest[len(rest)/2:])
		return g, nil
	}
	return nil, fmt.Errorf("unknown partition shape %q", shape)
}

// isolate makes every node of a drop every node of b, and the other way round.
func isolate(a, b []string) Grudge {
	g := Grudge{}
	for _, x := range a {
		g[x] = append(g[x], b...)
	}
	for _, y := range b {
		g[y] = append(g[y], a...)
	}
	return g.normalized()
}

// majoritiesRing arranges the nodes in a ring where each sees its nearest neighbours, so
// that every node sees a majority (itself included) but no two see the same majority.
func majoritiesRing(ring []string) Grudge {
	n := len(ring)
	reach := (n/2 + 1) / 2 // neighbours on each side: with itself, a majority
	g := Grudge{}
	for i, x := range ring {
		for j, y := range ring {
			d := min((i-j+n)%n, (j-i+n)%n)
			if d > reach {
				g[x] = append(g[x], y)
			}
		}
	}
	return g.normalized()
}

func (g Grudge) normalized() Grudge {
	for k, v := range g {
		slices.Sort(v)
		g[k] = slices.Compact(v)
	}
	return g
}

// String renders the grudge as "a>b,c a2>d" with nodes sorted, for histories and logs.
func (g Grudge) String() string {
	keys := make([]string, 0, len(g))
	for k := range g {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		if len(g[k]) > 0 {
			parts = append(parts, k+">"+strings.Join(g[k], ","))
		}
	}
	return strings.Join(parts, " ")
}

// Resetter partitions like Partitioner, but refuses TCP with resets instead of dropping
// it: established connections die at once on both ends, with what they had in flight,
// instead of stalling and delivering it all when the partition heals.
type Resetter interface {
	PartitionReset(ctx context.Context, g Grudge) error
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

// SnapshotPartitionTimeout bounds the wait for the isolated follower to fall behind.
const SnapshotPartitionTimeout = 2 * time.Minute

// SnapshotPartitionFault isolates one follower and holds the partition until the leader
// can no longer catch it up from its log, so that healing makes the leader send it a
// snapshot: the path where etcd served old watch events to such a member (fixed in
// 3.6.2) and where a snapshot applied during a defragmentation corrupted data (3.6.5).
// Healing waits (a little) for the snapshot and records whether it was sent.
type SnapshotPartitionFault struct{}

func (SnapshotPartitionFault) Name() string             { return "partition" }
func (SnapshotPartitionFault) Events() (string, string) { return "start-partition", "stop-partition" }
func (SnapshotPartitionFault) Available(c Cluster) (bool, string) {
	if len(c.Nodes()) < 3 {
		return false, "a snapshot partition needs a follower to spare: at least 3 nodes"
	}
	if ok, why := has[Partitioner](c, "partition", "this runtime cannot partition nodes"); !ok {
		return false, why
	}
	return has[Snapshotter](c, "partition:snapshot", "the target cannot tell when a member needs a snapshot")
}

// InjectTimeout gives the follower time to fall behind.
func (SnapshotPartitionFault) InjectTimeout(int) time.Duration { return SnapshotPartitionTimeout }

// Inject isolates a random follower and waits until a snapshot is due for it.
func (SnapshotPartitionFault) Inject(ctx context.Context, env Env) (Injection, error) {
	p, s := env.Cluster.(Partitioner), env.Cluster.(Snapshotter)
	pick := env.Rand.Uint64() // one draw, whatever the cluster answers (replay by seed)
	leader, _ := env.Cluster.Leader(ctx)
	followers := slices.DeleteFunc(slices.Clone(env.Cluster.Nodes()), func(n string) bool { return n == leader })
	node := followers[pick%uint64(len(followers))]
	if err := s.MarkSnapshots(ctx, node); err != nil {
		return Injection{}, fmt.Errorf("snapshot partition: %w", err)
	}
	rest := slices.DeleteFunc(slices.Clone(env.Cluster.Nodes()), func(n string) bool { return n == node })
	g, err := MakeGrudge("leader", append([]string{node}, rest...), nil) // isolates its first
	if err != nil {
		return Injection{}, err
	}
	// Resets, not drops, where the cluster can: a stalled stream would deliver what the
	// leader had already sent when the partition heals, and the follower would catch up
	// from it with no snapshot.
	partition := p.Partition
	if r, ok := env.Cluster.(Resetter); ok {
		partition = r.PartitionReset
	}
	if err := partition(ctx, g); err != nil {
		_ = p.HealPartition(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("snapshot partition of %s: %w", node, err)
	}
	for { // the cluster's writes put the follower behind; wait until it is far enough
		due, _ := s.SnapshotDue(ctx, node)
		if due {
			env.note("snapshot-due", node)
			break
		}
		if !Sleep(ctx, 500*time.Millisecond) {
			env.note("snapshot-not-due", node) // cut short: healed all the same
			break
		}
	}
	heal := func(ctx context.Context) error {
		if err := p.HealPartition(ctx); err != nil {
			return err
		}
		for range 80 { // the leader sends the snapshot once it reaches the member again
			if sent, err := s.SnapshotSent(ctx, node); err == nil && sent {
				env.note("snapshot-sent", node)
				return nil
			}
			if !Sleep(ctx, 250*time.Millisecond) {
				break
			}
		}
		env.note("snapshot-not-seen", node)
		return nil
	}
	return Injection{Nodes: []string{node}, Value: history.L("snapshot", g.String()), Heal: heal}, nil
}
