package nemesis

import (
	"context"
	"fmt"

	"github.com/faultline/faultline/history"
)

// power-loss cuts the power of nodes: they die at once (as a kill), and their disks lose
// what they had not synced — the bytes written since a file's last fsync, the names
// changed since the last commit — which a SIGKILL never loses (the kernel keeps them).
// They come back on what their disks kept at the heal. The whole cluster at once weighs
// most: Jepsen's coordinated power failure, where a write acknowledged before a majority
// synced it is gone from everywhere.
var powerLossDef = &Def{
	Kind: PowerLoss, Doc: "cut the power of nodes: kill them and drop what their disks had not synced, restart them at the heal",
	Needs:    []Capability{CapKill, CapDisks},
	Variants: nodeVariants("power-loss of", map[string]int{"one": 1, "minority": 1, "majority": 1, "all": 2}),
	Start:    "power-loss", End: "power-on", Verb: "lost power", Healed: "powered on",
	Family: "kill", Color: "#a99fd6",
	Inject: injectPowerLoss,
}

// injectPowerLoss kills the chosen nodes at once, then drops each one's unsynced data,
// noting what each lost; on a failure it starts them all again.
func injectPowerLoss(ctx context.Context, env Env, v Variant) (Injection, error) {
	k := env.Powers.Nodes
	nodes, err := pickNodes(ctx, env, v.Name)
	if err != nil {
		return Injection{}, err
	}
	heal := func(ctx context.Context) error { return eachNode(ctx, nodes, k.Start) }
	fail := func(err error) (Injection, error) {
		_ = heal(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("power-loss: %w", err)
	}
	if err := killAll(ctx, k, nodes); err != nil {
		return fail(err)
	}
	for _, n := range nodes {
		lost, err := env.Powers.Disks.PowerLoss(ctx, n)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", n, err))
		}
		env.note("disk-lost", n, lost)
	}
	return Injection{Nodes: nodes, Value: history.S1(v.Name), Heal: heal}, nil
}
