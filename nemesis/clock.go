package nemesis

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// Clocker changes a node's clock through the target's clock hook: the node's time runs at
// rate times real time, offset from it. SetClock(ctx, n, 0, 1) resets it. Processes and
// containers share the host kernel's clock, so a target without such a hook cannot take
// clock faults at all.
type Clocker interface {
	SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error
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

// ClockBumpFault jumps the clocks of the leader, one node or a majority by ±5 s to
// ±2 min, and resets them on heal. On raftnode a backward jump stalls the node's timers
// (raft ticks) until its time catches up, a forward one fires what fell due, and the
// reset re-arms them.
type ClockBumpFault struct{}

func (ClockBumpFault) Name() string                       { return "clock" }
func (ClockBumpFault) Events() (string, string)           { return "clock-bump", "clock-reset" }
func (ClockBumpFault) Available(c Cluster) (bool, string) { return hasClock(c) }

// Inject bumps each chosen node's clock by the same offset.
func (ClockBumpFault) Inject(ctx context.Context, env Env) (Injection, error) {
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

// ClockSkewFault makes the clocks of the leader, one node or a majority run slow (0.1-0.5
// of real time) or fast (2-5 times), and resets them on heal.
type ClockSkewFault struct{}

func (ClockSkewFault) Name() string                       { return "clock" }
func (ClockSkewFault) Events() (string, string)           { return "clock-skew", "clock-reset" }
func (ClockSkewFault) Available(c Cluster) (bool, string) { return hasClock(c) }

// Inject sets each chosen node's clock rate.
func (ClockSkewFault) Inject(ctx context.Context, env Env) (Injection, error) {
	nodes, err := pickNodes(ctx, env, clockTargets[env.Rand.IntN(len(clockTargets))])
	if err != nil {
		return Injection{}, err
	}
	rate := 0.1 + 0.4*env.Rand.Float64()
	if env.Rand.IntN(2) == 0 {
		rate = 2 + 3*env.Rand.Float64()
	}
	rate = math.Round(rate*100) / 100
	return setClocks(ctx, env, nodes, 0, rate, fmt.Sprintf("rate %.2f", rate))
}

// setClocks sets every node's clock; on a failure it resets the ones it set.
func setClocks(ctx context.Context, env Env, nodes []string, off time.Duration, rate float64, what string) (Injection, error) {
	c := env.Cluster.(Clocker)
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

// ClockStrobeFault flips one node's (or the leader's) clock back and forth between its
// real time and an offset of ±5 s to ±2 min, every 10-200 ms, until healed, then resets
// it: time that runs backwards and forwards by turns.
type ClockStrobeFault struct{}

func (ClockStrobeFault) Name() string                       { return "clock" }
func (ClockStrobeFault) Events() (string, string)           { return "clock-strobe", "clock-reset" }
func (ClockStrobeFault) Available(c Cluster) (bool, string) { return hasClock(c) }

// Inject starts the strobe; heal stops it and resets the clock. A strobe step that fails
// (the node died under another fault's heal, say) ends the strobe early; the heal reports it.
func (ClockStrobeFault) Inject(ctx context.Context, env Env) (Injection, error) {
	c := env.Cluster.(Clocker)
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
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	var (
		wg     sync.WaitGroup
		strobe error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(period)
		defer t.Stop()
		for on := false; ; on = !on {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			o := time.Duration(0)
			if on {
				o = off
			}
			if err := c.SetClock(sctx, node, o, 1); err != nil && sctx.Err() == nil {
				strobe = err
				return
			}
		}
	}()
	heal := func(ctx context.Context) error {
		stop()
		wg.Wait()
		err := c.SetClock(ctx, node, 0, 1)
		if strobe != nil {
			return fmt.Errorf("strobe of %s stopped early: %w", node, strobe)
		}
		return err
	}
	return Injection{Nodes: nodes, Value: history.S1(fmt.Sprintf("strobe %v every %v", off, period)), Heal: heal}, nil
}

func hasClock(c Cluster) (bool, string) {
	return has[Clocker](c, "clock", "the target has no clock hook, and its nodes share the host kernel's clock")
}
