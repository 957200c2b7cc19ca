package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/faultline/faultline/history"
)

// Cluster is the view of the system under test that every fault needs.
type Cluster interface {
	// Nodes lists the node names, in a stable order.
	Nodes() []string
	// Leader returns the node the cluster currently follows, or "" if none is known.
	Leader(ctx context.Context) (string, error)
}

// Env is what a fault is injected with.
type Env struct {
	Cluster Cluster
	Powers  Powers
	Rand    *rand.Rand
	// Note records a step of a long fault as an info event of the nemesis, on node (may
	// be ""), with a value (may be ""); Note may be nil.
	Note func(f, node, value string)
	// Focus, when set, are the nodes the fault acts on, chosen for it by the part of a
	// combination before it: a partition isolates them, a kill kills them, a clock fault
	// changes their clocks. Its variant then says only how (clock:slow), not where.
	Focus []string
}

func (e Env) note(f, node string, value ...string) {
	if e.Note != nil {
		e.Note(f, node, strings.Join(value, " "))
	}
}

// Injection is one applied fault: what it did, and how to undo it.
type Injection struct {
	// Nodes are the nodes it touched; Value describes it (e.g. the partition's sides).
	Nodes []string
	Value history.Value
	// Focus are the nodes it acted on most (a partition's isolated side, the nodes a
	// kill killed): the parts of a combination after it act on them. Empty: Nodes.
	Focus []string
	// Heal undoes the fault. It is called exactly once, with a context of its own.
	Heal func(ctx context.Context) error
}

func (i Injection) focus() []string {
	if len(i.Focus) > 0 {
		return i.Focus
	}
	return i.Nodes
}

// healed is a Heal that has nothing to undo.
func healed(context.Context) error { return nil }

// pickNodes chooses the nodes a fault acts on: the Focus a combination gave it, else,
// by the variant's name, one random node, the leader (a random node when none is
// known), a random follower (any node when no leader is known), a random minority, a random majority, or all. It draws the same numbers
// whatever the cluster answers (replay by seed).
func pickNodes(ctx context.Context, env Env, variant string) ([]string, error) {
	if len(env.Focus) > 0 {
		return slices.Clone(env.Focus), nil
	}
	nodes := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	switch variant {
	case "one":
		return nodes[:1], nil
	case "leader":
		l, err := env.Cluster.Leader(ctx)
		if err != nil || l == "" {
			return nodes[:1], nil //nolint:nilerr // no leader known: a random node stands in
		}
		return []string{l}, nil
	case "follower":
		l, _ := env.Cluster.Leader(ctx) // unknown: any node will do
		if i := slices.IndexFunc(nodes, func(n string) bool { return n != l }); i >= 0 {
			return nodes[i : i+1], nil
		}
		return nodes[:1], nil
	case "minority":
		return sorted(nodes[:max(1, (len(nodes)-1)/2)]), nil
	case "majority":
		return sorted(nodes[:len(nodes)/2+1]), nil
	case "all":
		return sorted(nodes), nil
	}
	return nil, fmt.Errorf("unknown nodes %q", variant)
}

// nodeVariants are the variants of a fault that acts on nodes, by which nodes.
func nodeVariants(doc string, weights map[string]int) []Variant {
	docs := map[string]string{"one": "one random node", "leader": "the leader (a random node when none is known)",
		"minority": "a random minority", "majority": "a random majority", "all": "every node at once"}
	var out []Variant
	for _, n := range []string{"one", "leader", "minority", "majority", "all"} {
		if w, ok := weights[n]; ok {
			out = append(out, Variant{Name: n, Weight: w, Doc: doc + " " + docs[n]})
		}
	}
	return out
}

func sorted(s []string) []string { slices.Sort(s); return s }

// eachNode applies f to every node, going on past errors, and returns them joined.
func eachNode(ctx context.Context, nodes []string, f func(context.Context, string) error) error {
	var errs []string
	for _, n := range nodes {
		if err := f(ctx, n); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if errs != nil {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func joinNodes(nodes []string) string { return strings.Join(nodes, ",") }
