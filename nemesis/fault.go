package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"

	"github.com/faultline/faultline/history"
)

// Cluster is the view of the system under test that every fault needs.
type Cluster interface {
	// Nodes lists the node names, in a stable order.
	Nodes() []string
	// Leader returns the node the cluster currently follows, or "" if none is known.
	Leader(ctx context.Context) (string, error)
}

// Killer can SIGKILL a node and start it again with its data.
type Killer interface {
	Kill(ctx context.Context, node string) error
	Start(ctx context.Context, node string) error
}

// Pauser can freeze a node (SIGSTOP, cgroup freezer) and thaw it.
type Pauser interface {
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
}

// Partitioner makes each node drop the packets of the nodes its grudge names, replacing
// any partition in force; Heal lifts every partition.
type Partitioner interface {
	Partition(ctx context.Context, g Grudge) error
	HealPartition(ctx context.Context) error
}

// Env is what a fault is injected with.
type Env struct {
	Cluster Cluster
	Rand    *rand.Rand
	// Note records a step of a long fault as an info event of the nemesis, on node (may
	// be ""), with a value (may be ""); Note may be nil.
	Note func(f, node, value string)
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
	// Heal undoes the fault. It is called exactly once, with a context of its own.
	Heal func(ctx context.Context) error
}

// Fault is one kind of fault. Values are small and stateless: state lives in the Injection.
type Fault interface {
	// Name is how the fault is shown and chosen (partition, kill, pause).
	Name() string
	// Events are the history f names for the fault's start and its end.
	Events() (start, end string)
	// Available says whether the cluster can take this fault, and if not, why.
	Available(c Cluster) (bool, string)
	// Inject applies the fault. On error nothing is left applied.
	Inject(ctx context.Context, env Env) (Injection, error)
}

// Kinds are the fault kinds ByName knows, in the order "all" takes them.
var Kinds = []string{"partition", "kill", "pause", "clock", "packet", "member", "rolling-replace",
	"rolling-upgrade", "rolling-downgrade", "maintenance"}

// ByName returns the faults for the given kinds. A kind may be several faults: clock is a
// bump, a skew and a strobe. A combined kind ("partition+clock", see Combo) is one Combo.
func ByName(kinds []string) ([]Fault, error) {
	var out []Fault
	for _, k := range kinds {
		if parts := SplitCombo(k); parts != nil {
			c, err := NewCombo(parts, func(part string) ([]Fault, error) { return ByName([]string{part}) })
			if err != nil {
				return nil, err
			}
			out = append(out, c)
			continue
		}
		switch k {
		case "partition":
			out = append(out, PartitionFault{})
		case "kill":
			out = append(out, KillFault{})
		case "pause":
			out = append(out, PauseFault{})
		case "clock":
			out = append(out, ClockBumpFault{}, ClockSkewFault{}, ClockStrobeFault{})
		case "packet":
			out = append(out, PacketFault{})
		case "member":
			out = append(out, MemberFault{})
		case "rolling-replace":
			out = append(out, RollingReplaceFault{})
		case "rolling-upgrade":
			out = append(out, RollingUpgradeFault{})
		case "rolling-downgrade":
			out = append(out, RollingDowngradeFault{})
		case "maintenance":
			out = append(out, MaintenanceFault{})
		default:
			return nil, fmt.Errorf("unknown fault %q", k)
		}
	}
	return out, nil
}

// pickNodes chooses the nodes a fault targets: one random node, the leader (a random node
// when none is known), a random majority, or all.
func pickNodes(ctx context.Context, env Env, target string) ([]string, error) {
	nodes := slices.Clone(env.Cluster.Nodes())
	env.Rand.Shuffle(len(nodes), func(i, j int) { nodes[i], nodes[j] = nodes[j], nodes[i] })
	switch target {
	case "one":
		return nodes[:1], nil
	case "leader":
		l, err := env.Cluster.Leader(ctx)
		if err != nil || l == "" {
			return nodes[:1], nil //nolint:nilerr // no leader known: a random node stands in
		}
		return []string{l}, nil
	case "majority":
		return sorted(nodes[:len(nodes)/2+1]), nil
	case "all":
		return sorted(nodes), nil
	}
	return nil, fmt.Errorf("unknown target %q", target)
}

func sorted(s []string) []string { slices.Sort(s); return s }

// KillFault SIGKILLs one node, the leader, a majority or all, and restarts them on heal.
type KillFault struct{}

func (KillFault) Name() string             { return "kill" }
func (KillFault) Events() (string, string) { return "kill", "start" }
func (KillFault) Available(c Cluster) (bool, string) {
	return has[Killer](c, "kill", "this runtime cannot kill nodes")
}

// killTargets weighs killing every node: a power loss of the whole cluster is what
// finds durability bugs (a write acknowledged before it reached disk on a majority).
var killTargets = []string{"one", "leader", "majority", "all", "all"}

// Inject kills the chosen nodes all at once (in parallel, as a power loss would: none
// gets to flush what it buffered while the others die); on a failure it restarts them.
func (KillFault) Inject(ctx context.Context, env Env) (Injection, error) {
	k := env.Cluster.(Killer)
	target := killTargets[env.Rand.IntN(len(killTargets))]
	nodes, err := pickNodes(ctx, env, target)
	if err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return eachNode(ctx, nodes, k.Start) }
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = k.Kill(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		_ = heal(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("kill: %w", err)
	}
	return Injection{Nodes: nodes, Value: history.S1(target), Heal: heal}, nil
}

// pauseTargets weighs the leader: a paused leader that resumes still believing it leads
// is the pause that tests a system most (leases, stale leadership).
var pauseTargets = []string{"leader", "leader", "leader", "one", "majority"}

// PauseFault freezes the leader, one node or a majority, and resumes them on heal.
type PauseFault struct{}

func (PauseFault) Name() string             { return "pause" }
func (PauseFault) Events() (string, string) { return "pause", "resume" }
func (PauseFault) Available(c Cluster) (bool, string) {
	return has[Pauser](c, "pause", "this runtime cannot pause nodes")
}

// Inject pauses the chosen nodes; on a partial failure it resumes the ones it paused.
func (PauseFault) Inject(ctx context.Context, env Env) (Injection, error) {
	p := env.Cluster.(Pauser)
	target := pauseTargets[env.Rand.IntN(len(pauseTargets))]
	nodes, err := pickNodes(ctx, env, target)
	if err != nil {
		return Injection{}, err
	}
	for i, n := range nodes {
		if err := p.Pause(ctx, n); err != nil {
			// n too: a pause that failed half-way may have frozen it.
			_ = eachNode(context.WithoutCancel(ctx), nodes[:i+1], p.Resume)
			return Injection{}, fmt.Errorf("pause %s: %w", n, err)
		}
	}
	heal := func(ctx context.Context) error { return eachNode(ctx, nodes, p.Resume) }
	return Injection{Nodes: nodes, Value: history.S1(target), Heal: heal}, nil
}

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

// Unable is an optional Cluster method. A cluster whose type has a capability's methods
// but cannot use them here (its runtime or its target lacks them) names the reason for
// the capability's kind ("kill", "pause", "partition", "clock", "packet", "member"), and
// "" for a capability it has.
type Unable interface {
	Unable(kind string) string
}

// has reports whether c has capability T and can use it (see Unable); without, why.
func has[T any](c Cluster, kind, without string) (bool, string) {
	if _, ok := c.(T); !ok {
		return false, without
	}
	if u, ok := c.(Unable); ok {
		if why := u.Unable(kind); why != "" {
			return false, why
		}
	}
	return true, ""
}
