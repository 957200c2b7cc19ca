package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/node/client"
)

// cluster is what the nemesis acts on: a runtime's nodes of one target. It implements
// nemesis.Cluster, Killer, Pauser and Partitioner, and remembers what is broken so that
// HealAll can mend everything, whatever the schedule managed to do.
type cluster struct {
	rt     Runtime
	target *RaftTarget
	names  []string

	mu      sync.Mutex
	paused  map[string]bool
	clocked map[string]bool // clock changed, not yet reset
	removed map[string]bool // taken out of the membership, not yet added back
	links   *linkFaults     // the link proxy, when the run has packet faults
	down    map[string]bool // stopped by the harness (killed, or being replaced)
	exits   []string        // nodes found stopped that nobody stopped, with when
	// logf receives a line when a node is found to have exited by itself, and since
	// says how far into the run that is; either may be nil.
	logf  func(format string, args ...any)
	since func() time.Duration
}

func newCluster(rt Runtime, target *RaftTarget, names []string) *cluster {
	return &cluster{rt: rt, target: target, names: names, paused: map[string]bool{},
		clocked: map[string]bool{}, removed: map[string]bool{}, down: map[string]bool{}}
}

// CheckExits notes every node that is not running although the harness did not stop it:
// it exited by itself (a crash, or raftnode refusing a damaged log). Each exit is noted
// once, until the node is started again.
func (c *cluster) CheckExits() {
	for _, n := range c.names {
		if c.rt.Running(n) {
			continue
		}
		c.mu.Lock()
		news := !c.down[n] && !c.removed[n]
		if news {
			c.down[n] = true // noted; Start clears it
			at := "by the end"
			if c.since != nil {
				at = "at " + c.since().Round(time.Millisecond).String()
			}
			c.exits = append(c.exits, n+" "+at)
		}
		c.mu.Unlock()
		if news && c.logf != nil {
			c.logf("%s exited by itself (see nodes/%s/): the harness did not stop it", n, n)
		}
	}
}

// Exits returns the exits CheckExits noted.
func (c *cluster) Exits() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.exits)
}

func (c *cluster) Nodes() []string { return slices.Clone(c.names) }

func (c *cluster) Leader(ctx context.Context) (string, error) { return c.target.Leader(ctx) }

// Kill implements nemesis.Killer. A node that has already exited by itself stays down:
// the kill's end state holds, and the exit is noted.
func (c *cluster) Kill(ctx context.Context, node string) error {
	if !c.rt.Running(node) {
		c.CheckExits()
		c.mark(c.down, node, true)
		return nil
	}
	c.mark(c.down, node, true) // before the kill: the exit watcher must not see it as a crash
	if err := c.rt.Kill(ctx, node); err != nil {
		c.mark(c.down, node, !c.rt.Running(node))
		return err
	}
	c.setPaused(node, false)
	return nil
}

// Start implements nemesis.Killer.
func (c *cluster) Start(ctx context.Context, node string) error {
	if c.rt.Running(node) {
		return nil
	}
	if err := c.rt.Launch(ctx, node, c.target.Command(node)); err != nil {
		return err
	}
	c.mark(c.down, node, false)
	return nil
}

func (c *cluster) Pause(ctx context.Context, node string) error {
	if err := c.rt.Pause(ctx, node); err != nil {
		return err
	}
	c.setPaused(node, true)
	return nil
}

func (c *cluster) Resume(ctx context.Context, node string) error {
	if !c.rt.Running(node) {
		c.setPaused(node, false)
		return nil // killed while paused: nothing to resume
	}
	if err := c.rt.Resume(ctx, node); err != nil {
		return err
	}
	c.setPaused(node, false)
	return nil
}

func (c *cluster) Partition(ctx context.Context, g nemesis.Grudge) error {
	p, ok := c.rt.(nemesis.Partitioner)
	if !ok {
		return fmt.Errorf("the %s runtime cannot partition", c.rt.Name())
	}
	return p.Partition(ctx, g)
}

func (c *cluster) HealPartition(ctx context.Context) error {
	if p, ok := c.rt.(nemesis.Partitioner); ok {
		return p.HealPartition(ctx)
	}
	return nil
}

func (c *cluster) setPaused(node string, on bool) { c.mark(c.paused, node, on) }

func (c *cluster) mark(set map[string]bool, node string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	set[node] = on
}

// marked returns the nodes marked in set, sorted.
func (c *cluster) marked(set map[string]bool) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for n, on := range set {
		if on {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// SetClock implements nemesis.Clocker through raftnode's /clock. A reset of a node that is
// not running is done already: a node starts with a true clock.
func (c *cluster) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	reset := offset == 0 && rate == 1
	if reset && !c.rt.Running(node) {
		c.mark(c.clocked, node, false)
		return nil
	}
	if !reset {
		c.mark(c.clocked, node, true)
	}
	err := c.target.Client(node).SetClock(ctx, client.Clock{OffsetMS: offset.Milliseconds(), Rate: rate})
	if err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	if reset {
		c.mark(c.clocked, node, false)
	}
	return nil
}

// Packets implements nemesis.Packeter through the run's link proxy.
func (c *cluster) Packets(ctx context.Context, links []nemesis.Link, p nemesis.Packets) error {
	if c.links == nil {
		return errors.New("packet faults: no link proxy in this run")
	}
	return c.links.Packets(ctx, links, p)
}

// HealPackets implements nemesis.Packeter.
func (c *cluster) HealPackets(ctx context.Context) error {
	if c.links == nil {
		return nil
	}
	return c.links.HealPackets(ctx)
}

// Healthy implements nemesis.Membership.
func (c *cluster) Healthy(ctx context.Context) error { return c.target.Healthy(ctx) }

// RemoveMember implements nemesis.Membership: the ConfChange, then the node's exit (a
// removed raftnode exits by itself; one that does not is killed), then its data wiped.
func (c *cluster) RemoveMember(ctx context.Context, node string) error {
	c.mark(c.down, node, true) // a removed raftnode exits: not a crash
	if err := c.target.removeMember(ctx, node); err != nil {
		c.mark(c.down, node, !c.rt.Running(node))
		return fmt.Errorf("remove member %s: %w", node, err)
	}
	c.mark(c.removed, node, true)
	deadline := time.Now().Add(10 * time.Second)
	for c.rt.Running(node) && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(50 * time.Millisecond)
	}
	if c.rt.Running(node) {
		if err := c.Kill(context.WithoutCancel(ctx), node); err != nil {
			return fmt.Errorf("stop removed member %s: %w", node, err)
		}
	}
	if err := os.RemoveAll(c.target.dataDir(node)); err != nil {
		return fmt.Errorf("wipe removed member %s: %w", node, err)
	}
	return nil
}

// AddMember implements nemesis.Membership: the ConfChange for a new id, the node started
// empty as a joining member, and the wait until it has caught up.
func (c *cluster) AddMember(ctx context.Context, node string) error {
	if err := c.target.addMember(ctx, node); err != nil {
		return err
	}
	if c.rt.Running(node) {
		if err := c.Kill(ctx, node); err != nil {
			return fmt.Errorf("add member %s: %w", node, err)
		}
	}
	if err := c.rt.Launch(ctx, node, c.target.Command(node)); err != nil {
		return fmt.Errorf("add member %s: %w", node, err)
	}
	c.mark(c.down, node, false)
	c.mark(c.removed, node, false)
	if err := c.target.waitCaughtUp(ctx, node); err != nil {
		return fmt.Errorf("add member %s: catching up: %w", node, err)
	}
	return nil
}

// HealAll lifts every partition and packet fault, resumes every paused node, adds back every member that
// was taken out, starts every node that is not running (killed, or crashed by itself)
// and resets every clock that was changed. It goes on past errors and returns them all.
func (c *cluster) HealAll(ctx context.Context) error {
	c.CheckExits()
	errs := []error{c.HealPartition(ctx), c.HealPackets(ctx)}
	for _, n := range c.marked(c.paused) {
		errs = append(errs, c.Resume(ctx, n))
	}
	for _, n := range c.names {
		if !c.rt.Running(n) && !slices.Contains(c.marked(c.removed), n) {
			errs = append(errs, c.Start(ctx, n))
		}
	}
	for _, n := range c.marked(c.removed) {
		errs = append(errs, c.AddMember(ctx, n))
	}
	for _, n := range c.marked(c.clocked) {
		errs = append(errs, c.SetClock(ctx, n, 0, 1))
	}
	return errors.Join(errs...)
}

// faultsFor returns the nemesis faults for the spec's kinds on this runtime and cluster:
// "all" means every kind that can be injected here (the others are returned as skipped,
// with the reason); a kind asked for by name that cannot be injected is an error. A
// runtime that can make only some partition shapes (as "partition:<shape>" in its
// Unavailable) gets a partition fault restricted to the others.
func faultsFor(kinds []string, rt Runtime, cl nemesis.Cluster) (faults []nemesis.Fault, skipped map[string]string, err error) {
	unavailable := rt.Unavailable()
	skipped = map[string]string{}
	all := slices.Equal(kinds, []string{"all"})
	if all {
		kinds = nemesis.Kinds
	}
	for _, k := range kinds {
		fs, err := nemesis.ByName([]string{k})
		if err != nil {
			return nil, nil, &UsageError{Msg: "nemesis: " + err.Error()}
		}
		why, bad := unavailable[k]
		for _, f := range fs {
			if ok, w := f.Available(cl); !ok && !bad {
				why, bad = w, true
			}
		}
		switch {
		case bad && all:
			skipped[k] = why
			continue
		case bad:
			return nil, nil, &UsageError{Msg: fmt.Sprintf("nemesis: %s is unavailable on the %s runtime: %s", k, rt.Name(), why)}
		}
		if k == "partition" {
			var only []string
			for _, s := range nemesis.Shapes {
				if _, no := unavailable["partition:"+s]; !no {
					only = append(only, s)
				}
			}
			if len(only) < len(nemesis.Shapes) {
				fs = []nemesis.Fault{nemesis.PartitionFault{Only: only}}
			}
		}
		faults = append(faults, fs...)
	}
	return faults, skipped, nil
}
