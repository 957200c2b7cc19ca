package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/faultline/faultline/nemesis"
)

// cluster is what the nemesis acts on: a runtime's nodes of one target. It implements
// nemesis.Cluster, Killer, Pauser and Partitioner, and remembers what is broken so that
// HealAll can mend everything, whatever the schedule managed to do.
type cluster struct {
	rt     Runtime
	target *RaftTarget
	names  []string

	mu     sync.Mutex
	paused map[string]bool
}

func newCluster(rt Runtime, target *RaftTarget, names []string) *cluster {
	return &cluster{rt: rt, target: target, names: names, paused: map[string]bool{}}
}

func (c *cluster) Nodes() []string { return slices.Clone(c.names) }

func (c *cluster) Leader(ctx context.Context) (string, error) { return c.target.Leader(ctx) }

func (c *cluster) Kill(ctx context.Context, node string) error {
	if err := c.rt.Kill(ctx, node); err != nil {
		return err
	}
	c.setPaused(node, false)
	return nil
}

func (c *cluster) Start(ctx context.Context, node string) error {
	if c.rt.Running(node) {
		return nil
	}
	return c.rt.Launch(ctx, node, c.target.Command(node))
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

func (c *cluster) setPaused(node string, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.paused[node] = on
}

// HealAll lifts every partition, resumes every paused node and starts every node that is
// not running (killed, or crashed by itself). It goes on past errors and returns them all.
func (c *cluster) HealAll(ctx context.Context) error {
	errs := []error{c.HealPartition(ctx)}
	c.mu.Lock()
	var paused []string
	for n, on := range c.paused {
		if on {
			paused = append(paused, n)
		}
	}
	c.mu.Unlock()
	slices.Sort(paused)
	for _, n := range paused {
		errs = append(errs, c.Resume(ctx, n))
	}
	for _, n := range c.names {
		if !c.rt.Running(n) {
			errs = append(errs, c.Start(ctx, n))
		}
	}
	return errors.Join(errs...)
}

// faultsFor returns the nemesis faults for the spec's kinds on this runtime: "all" means
// every kind the runtime can inject (the others are returned as skipped, with the reason);
// a kind asked for by name that the runtime cannot inject is an error.
func faultsFor(kinds []string, rt Runtime) (faults []nemesis.Fault, skipped map[string]string, err error) {
	unavailable := rt.Unavailable()
	skipped = map[string]string{}
	if slices.Equal(kinds, []string{"all"}) {
		kinds = nil
		for _, k := range NemesisKinds {
			if why, bad := unavailable[k]; bad {
				skipped[k] = why
			} else {
				kinds = append(kinds, k)
			}
		}
	}
	for _, k := range kinds {
		if why, bad := unavailable[k]; bad {
			return nil, nil, &UsageError{Msg: fmt.Sprintf("nemesis: %s is unavailable on the %s runtime: %s", k, rt.Name(), why)}
		}
	}
	faults, err = nemesis.ByName(kinds)
	return faults, skipped, err
}
