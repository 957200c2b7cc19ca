package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"

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
	nodes := slices.Clone(env.Cluster.Nodes())
	if shape == "leader" {
		l, _ := env.Cluster.Leader(ctx)
		if l != "" {
			nodes = append([]string{l}, slices.DeleteFunc(nodes, func(n string) bool { return n == l })...)
		} else {
			shape = "one" // no leader known: isolate a random node instead
		}
	}
	g, err := MakeGrudge(shape, nodes, env.Rand.Shuffle)
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
