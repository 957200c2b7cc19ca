package nemesis

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// clock changes nodes' clocks through the Clocker the cluster has — the target's clock
// hook, or the runtime's per-process clocks (vclock) — and resets them at the heal.
var clockDef = &Def{
	Kind: Clock, Doc: "change nodes' clocks (the target's clock hook, or per-process clocks), reset them at the heal",
	Needs: []Capability{CapClock},
	Variants: []Variant{
		{Name: "bump", Weight: 2, Start: "clock-bump", Doc: "jump the clocks of the leader, one node or a majority by ±5 s to ±2 min"},
		{Name: "slow", Weight: 1, Start: "clock-skew", Doc: "make clocks run slow (0.1-0.5 of real time): leases last too long"},
		{Name: "fast", Weight: 1, Start: "clock-skew", Doc: "make clocks run fast (2-5 times real time): timeouts fire early"},
		{Name: "strobe", Weight: 2, Start: "clock-strobe", Doc: "flip one node's clock back and forth by ±5 s to ±2 min every 10-200 ms"},
	},
	Start: "clock-bump", End: "clock-reset", Verb: "clock changed", Healed: "clock reset",
	Family: "clock", Color: "#f4e79e",
	Inject: injectClock,
}

func injectClock(ctx context.Context, env Env, v Variant) (Injection, error) {
	switch v.Name {
	case "bump":
		return injectClockBump(ctx, env)
	case "slow", "fast":
		return injectClockSkew(ctx, env, v.Name == "slow")
	case "strobe":
		return injectClockStrobe(ctx, env)
	}
	return Injection{}, fmt.Errorf("clock: unknown variant %q", v.Name)
}

// Bounds of the clock faults.
const (
	maxBump   = 2 * time.Minute
	minBump   = 5 * time.Second
	strobeMin = 10 * time.Millisecond
	strobeMax = 200 * time.Millisecond
)

// clockTargets weighs the leader: a leader whose clock misbehaves is what lease logic
// trusts.
var clockTargets = []string{"leader", "leader", "one", "majority"}

// injectClockBump jumps the clocks of the leader, one node or a majority by the same
// offset of ±5 s to ±2 min. On raftnode a backward jump stalls the node's timers (raft
// ticks) until its time catches up, a forward one fires what fell due, and the reset
// re-arms them.
func injectClockBump(ctx context.Context, env Env) (Injection, error) {
	nodes, err := pickNodes(ctx, env, clockTargets[env.Rand.IntN(len(clockTargets))])
	if err != nil {
		return Injection{}, err
	}
	off := minBump + time.Duration(env.Rand.Int64N(int64(maxBump-minBump)))
	if env.Rand.IntN(2) == 0 {
		off = -off
	}
	return setClocks(ctx, env, nodes, off, 1, fmt.Sprintf("bump %v", off))
}

// injectClockSkew makes the clocks of the leader, one node or a majority run slow
// (0.1-0.5 of real time) or fast (2-5 times).
func injectClockSkew(ctx context.Context, env Env, slow bool) (Injection, error) {
	nodes, err := pickNodes(ctx, env, clockTargets[env.Rand.IntN(len(clockTargets))])
	if err != nil {
		return Injection{}, err
	}
	rate := 2 + 3*env.Rand.Float64()
	if slow {
		rate = 0.1 + 0.4*env.Rand.Float64()
	}
	rate = math.Round(rate*100) / 100
	return setClocks(ctx, env, nodes, 0, rate, fmt.Sprintf("rate %.2f", rate))
}

// setClocks sets every node's clock; on a failure it resets the ones it set.
func setClocks(ctx context.Context, env Env, nodes []string, off time.Duration, rate float64, what string) (Injection, error) {
	c := env.Powers.Clock
	for i, n := range nodes {
		if err := c.SetClock(ctx, n, off, rate); err != nil {
			_ = resetClocks(context.WithoutCancel(ctx), c, nodes[:i])
			return Injection{}, fmt.Errorf("clock of %s: %w", n, err)
		}
	}
	heal := func(ctx context.Context) error { return resetClocks(ctx, c, nodes) }
	return Injection{Nodes: nodes, Value: history.S1(what), Heal: heal}, nil
}

func resetClocks(ctx context.Context, c Clocker, nodes []string) error {
	return eachNode(ctx, nodes, func(ctx context.Context, n string) error { return c.SetClock(ctx, n, 0, 1) })
}

// injectClockStrobe flips one node's (or the leader's) clock back and forth between its
// real time and an offset of ±5 s to ±2 min, every 10-200 ms, until healed, then resets
// it: time that runs backwards and forwards by turns. A strobe step that fails (the node
// died under another fault's heal, say) ends the strobe early; the heal reports it.
func injectClockStrobe(ctx context.Context, env Env) (Injection, error) {
	c := env.Powers.Clock
	nodes, err := pickNodes(ctx, env, []string{"leader", "one"}[env.Rand.IntN(2)])
	if err != nil {
		return Injection{}, err
	}
	node := nodes[0]
	off := minBump + time.Duration(env.Rand.Int64N(int64(maxBump-minBump)))
	if env.Rand.IntN(2) == 0 {
		off = -off
	}
	period := strobeMin + time.Duration(env.Rand.Int64N(int64(strobeMax-strobeMin)))
	if err := c.SetClock(ctx, node, off, 1); err != nil {
		return Injection{}, fmt.Errorf("clock of %s: %w", node, err)
	}
	// A flip is never abandoned half-way: a request already sent could arrive after the
	// heal's reset and leave the clock off. The heal stops the strobe between flips and
	// waits for the one under way, cutting it short only when its own ctx ends.
	fctx, abandon := context.WithCancel(context.WithoutCancel(ctx))
	stopping, done := make(chan struct{}), make(chan struct{})
	stop := sync.OnceFunc(func() { close(stopping) }) // a heal may be retried
	var strobe error
	go func() {
		defer close(done)
		t := time.NewTicker(period)
		defer t.Stop()
		for on := false; ; on = !on {
			select {
			case <-stopping:
				return
			case <-t.C:
			}
			o := time.Duration(0)
			if on {
				o = off
			}
			if err := c.SetClock(fctx, node, o, 1); err != nil {
				if fctx.Err() == nil {
					strobe = err
				}
				return
			}
		}
	}()
	heal := func(ctx context.Context) error {
		stop()
		select {
		case <-done:
		case <-ctx.Done():
			abandon()
			<-done
		}
		abandon()
		err := c.SetClock(ctx, node, 0, 1)
		if strobe != nil {
			return fmt.Errorf("strobe of %s stopped early: %w", node, strobe)
		}
		return err
	}
	return Injection{Nodes: nodes, Value: history.S1(fmt.Sprintf("strobe %v every %v", off, period)), Heal: heal}, nil
}
