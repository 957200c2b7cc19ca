package nemesis

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline/faultline/history"
)

// stop shuts nodes down the way an operator or a kubelet does (SIGTERM, then SIGKILL
// after a grace period), holds them down, and starts them again on their data at the
// heal. Unlike a kill, the node may flush and close what it holds: a system that is
// safe under kills but loses data on an orderly shutdown (a flush that acknowledges
// what it has not synced, a leader that hands off wrongly) shows it here.
var stopDef = &Def{
	Kind: Stop, Doc: "shut nodes down gracefully (SIGTERM), start them again on their data at the heal",
	Needs:    []Capability{CapKill},
	Variants: nodeVariants("stop", map[string]int{"one": 1, "leader": 2, "minority": 0, "majority": 1, "all": 1}),
	Start:    "shutdown", End: "restart", Verb: "stopped", Healed: "restarted",
	Family: "kill", Color: "#c9c3e6",
	Timeout: func(int) time.Duration { return HealTimeout + runtimeStopGrace },
	Inject:  injectStop,
}

// runtimeStopGrace is a runtime's grace after SIGTERM before it kills (runtime.StopGrace).
const runtimeStopGrace = 5 * time.Second

// injectStop stops the chosen nodes one after another (an orderly shutdown is not a
// power cut); on a failure it starts the ones it stopped.
func injectStop(ctx context.Context, env Env, v Variant) (Injection, error) {
	n := env.Powers.Nodes
	nodes, err := pickNodes(ctx, env, v.Name)
	if err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return eachNode(ctx, nodes, n.Start) }
	for i, node := range nodes {
		if err := n.Stop(ctx, node); err != nil {
			_ = eachNode(context.WithoutCancel(ctx), nodes[:i+1], n.Start)
			return Injection{}, fmt.Errorf("stop %s: %w", node, err)
		}
	}
	return Injection{Nodes: nodes, Value: history.S1(v.Name), Heal: heal}, nil
}
