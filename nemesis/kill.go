package nemesis

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/faultline/faultline/history"
)

// kill SIGKILLs nodes and restarts them on heal. Killing every node weighs most: a power
// loss of the whole cluster is what finds a write acknowledged before it reached the
// disk of a majority.
var killDef = &Def{
	Kind: Kill, Doc: "SIGKILL nodes, restart them on their data at the heal",
	Needs:    []Capability{CapKill},
	Variants: nodeVariants("kill", map[string]int{"one": 1, "leader": 1, "minority": 0, "majority": 1, "all": 2}),
	Start:    "kill", End: "start", Verb: "killed", Healed: "restarted",
	Family: "kill", Color: "#c9c3e6",
	Inject: injectKill,
}

// injectKill kills the chosen nodes all at once (in parallel, as a power loss would: none
// gets to flush what it buffered while the others die); on a failure it restarts them.
func injectKill(ctx context.Context, env Env, v Variant) (Injection, error) {
	k := env.Powers.Nodes
	nodes, err := pickNodes(ctx, env, v.Name)
	if err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return eachNode(ctx, nodes, k.Start) }
	if err := killAll(ctx, k, nodes); err != nil {
		_ = heal(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("kill: %w", err)
	}
	return Injection{Nodes: nodes, Value: history.S1(v.Name), Heal: heal}, nil
}

// killAll kills nodes in parallel.
func killAll(ctx context.Context, k NodeControl, nodes []string) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Go(func() { errs[i] = k.Kill(ctx, n) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// pause freezes nodes and resumes them on heal. The leader weighs most: a paused leader
// that resumes still believing it leads is the pause that tests a system most (leases,
// stale leadership).
var pauseDef = &Def{
	Kind: Pause, Doc: "freeze nodes (SIGSTOP, the cgroup freezer), thaw them at the heal",
	Needs:    []Capability{CapPause},
	Variants: nodeVariants("pause", map[string]int{"one": 1, "leader": 3, "minority": 0, "majority": 1, "all": 0}),
	Start:    "pause", End: "resume", Verb: "paused", Healed: "resumed",
	Family: "pause", Color: "#b6d7f4",
	Inject: injectPause,
}

// injectPause pauses the chosen nodes; on a partial failure it resumes the ones it paused.
func injectPause(ctx context.Context, env Env, v Variant) (Injection, error) {
	p := env.Powers.Pause
	nodes, err := pickNodes(ctx, env, v.Name)
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
	return Injection{Nodes: nodes, Value: history.S1(v.Name), Heal: heal}, nil
}
