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

// shapeDocs are the partition shapes, each a variant of partition.
var shapeDocs = []struct {
	name, doc string
	min       int // the smallest cluster the shape cuts anything in
}{
	{"one", "isolate one random node", 2},
	{"leader", "isolate the leader (a random node when none is known)", 2},
	{"halves", "cut the cluster in two halves, by name", 2},
	{"random-halves", "cut the cluster in two random halves", 2},
	{"majorities-ring", "a ring in which every node sees a majority, no two the same", 4},
	{"bridge", "two sides that do not see each other, and one node that sees both", 3},
}

// Shapes are the partition shapes MakeGrudge makes.
var Shapes = func() []string {
	out := make([]string, len(shapeDocs))
	for i, s := range shapeDocs {
		out[i] = s.name
	}
	return out
}()

// partition cuts the network. The shapes that isolate single nodes need only CapIsolate
// (a runtime that can take a node off the network); the others need any grudge
// (CapPartition). The snapshot variant, where the target can tell, holds a follower cut
// off until it must be caught up by a snapshot.
var partitionDef = &Def{
	Kind: Partition, Doc: "cut the network between nodes, heal it at the end",
	MinNodes: 2,
	Variants: func() []Variant {
		var out []Variant
		for _, s := range shapeDocs {
			need := CapPartition
			if s.name == "one" || s.name == "leader" {
				need = CapIsolate
			}
			out = append(out, Variant{Name: s.name, Doc: s.doc, Weight: 1, Needs: []Capability{need}, MinNodes: s.min})
		}
		return append(out, Variant{Name: "snapshot", Weight: len(shapeDocs), MinNodes: 3,
			Doc:     "isolate a follower until the leader must send it a snapshot (where the target can tell)",
			Needs:   []Capability{CapIsolate, CapSnapshots},
			Timeout: func(int) time.Duration { return SnapshotPartitionTimeout }})
	}(),
	Start: "start-partition", End: "stop-partition", Verb: "partitioned", Healed: "healed",
	Family: "partition", Color: "#f4b6b6",
	Inject: injectPartition,
}

// injectPartition computes a grudge of the variant's shape (or one that isolates the
// Focus a combination gave it) and applies it.
func injectPartition(ctx context.Context, env Env, v Variant) (Injection, error) {
	if v.Name == "snapshot" {
		return injectSnapshotPartition(ctx, env)
	}
	p := env.Powers.Net
	shape := v.Name
	// Every random draw is taken before the cluster is asked anything, and the same
	// number of them whatever it answers: the schedule after this fault must not depend
	// on whether a leader was known (replay by seed).
	nodes := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	var (
		g     Grudge
		focus []string
		err   error
	)
	switch {
	case len(env.Focus) > 0:
		shape, focus = "isolate", slices.Clone(env.Focus)
		g = isolate(focus, slices.DeleteFunc(nodes, func(n string) bool { return slices.Contains(focus, n) }))
	default:
		if shape == "leader" {
			if l, _ := env.Cluster.Leader(ctx); l != "" {
				nodes = append([]string{l}, slices.DeleteFunc(nodes, func(n string) bool { return n == l })...)
			} // else: no leader known: nodes[0], at random, stands in
		}
		g, err = MakeGrudge(shape, nodes, func(int, func(i, j int)) {}) // already shuffled
		if err != nil {
			return Injection{}, err
		}
		focus = nodes[:1] // the isolated node, the bridge, a node of the ring
		if shape == "halves" || shape == "random-halves" {
			focus = g.smallerSide(nodes)
		}
	}
	if err := p.Partition(ctx, g, false); err != nil {
		_ = p.HealPartition(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("partition %s: %w", shape, err)
	}
	return Injection{Nodes: sorted(slices.Clone(env.Cluster.Nodes())), Focus: sorted(focus),
		Value: history.L(shape, g.String()), Heal: p.HealPartition}, nil
}

// smallerSide returns the nodes on the smaller side of a two-sided grudge over nodes
// (the side of nodes[0] on a tie).
func (g Grudge) smallerSide(nodes []string) []string {
	var a, b []string
	for _, n := range nodes {
		if n == nodes[0] || !slices.Contains(g[nodes[0]], n) {
			a = append(a, n)
		} else {
			b = append(b, n)
		}
	}
	if len(b) < len(a) {
		return b
	}
	return a
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

// SnapshotPartitionTimeout bounds the wait for the isolated follower to fall behind.
const SnapshotPartitionTimeout = 2 * time.Minute

// injectSnapshotPartition isolates a random follower and holds the partition until the
// leader can no longer catch it up from its log, so that healing makes the leader send
// it a snapshot: the path where etcd served old watch events to such a member (fixed in
// 3.6.2) and where a snapshot applied during a defragmentation corrupted data (3.6.5).
// Healing waits (a little) for the snapshot and records whether it was sent.
func injectSnapshotPartition(ctx context.Context, env Env) (Injection, error) {
	p, s := env.Powers.Net, env.Powers.Snapshots
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
	// Resets, not drops: a stalled stream would deliver what the leader had already sent
	// when the partition heals, and the follower would catch up from it with no snapshot.
	if err := p.Partition(ctx, g, true); err != nil {
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
