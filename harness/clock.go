package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/vclock"
	"github.com/faultline/faultline/nemesis"
)

// clockHook returns the target's own clock hook, if it has one: a target that
// implements nemesis.Clocker, unless it says (ClockHook) that this one has none.
func clockHook(t any) (nemesis.Clocker, bool) {
	clk, ok := t.(nemesis.Clocker)
	if h, says := t.(interface{ ClockHook() bool }); ok && says && !h.ClockHook() {
		return nil, false
	}
	return clk, ok
}

// processClock is nemesis.Clocker through the runtime's per-process clocks (vclock):
// the clock fault for a target with no hook of its own. SetClock(n, offset, rate)
// moves both the wall and the monotonic clocks of n's processes, as a hook moves the
// one clock of its program. A node started while its clock is off gets it again
// (reapply): a restart does not heal a clock fault, the heal does.
type processClock struct {
	rt runtime.Clocker

	mu  sync.Mutex
	set map[string]vclock.Clocks // nodes whose clocks are off, and how
}

func newProcessClock(rt runtime.Clocker) *processClock {
	return &processClock{rt: rt, set: map[string]vclock.Clocks{}}
}

// SetClock implements nemesis.Clocker.
func (p *processClock) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	s := vclock.Setting{Offset: offset, Rate: rate}
	c := vclock.Clocks{Wall: s, Mono: s}
	if s.True() {
		c = vclock.Clocks{}
	}
	p.mu.Lock()
	if s.True() {
		delete(p.set, node)
	} else {
		p.set[node] = c
	}
	p.mu.Unlock()
	return p.setClock(ctx, node, c)
}

// execGrace bounds how long setClock waits for a node's process to have a vDSO.
const execGrace = 2 * time.Second

// setClock gives node the clocks c, waiting up to execGrace while its process has no
// vDSO: a process caught mid-exec has none for an instant (a container's first process
// between runc's init and the program, which docker's start does not wait for; a busy
// machine widens the window). A process that has none after that has none at all.
func (p *processClock) setClock(ctx context.Context, node string, c vclock.Clocks) error {
	deadline := time.Now().Add(execGrace)
	for {
		err := p.rt.SetClock(ctx, node, c)
		if !errors.Is(err, vclock.ErrNoVDSO) || !time.Now().Before(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// forget drops node's clock fault (healed while the node was down).
func (p *processClock) forget(node string) {
	p.mu.Lock()
	delete(p.set, node)
	p.mu.Unlock()
}

// reapply gives a node just started the clocks a fault in force set for it.
func (p *processClock) reapply(ctx context.Context, node string) error {
	p.mu.Lock()
	c, ok := p.set[node]
	p.mu.Unlock()
	if !ok {
		return nil
	}
	if err := p.setClock(ctx, node, c); err != nil {
		return fmt.Errorf("the clock fault in force: %w", err)
	}
	return nil
}
