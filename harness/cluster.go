package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
)

// cluster is what the nemesis acts on: a runtime's nodes of one target. Its type has
// every capability's methods (nemesis.Killer, Pauser, Partitioner, Clocker, Packeter,
// Membership); Unable says which of them this runtime and target really have, so the
// nemesis's Available checks are true only for faults that can be injected. It
// remembers what is broken so that HealAll can mend everything, whatever the schedule
// managed to do.
type cluster struct {
	rt     runtime.Runtime
	target sut.Target
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
	// logTail returns the last lines of a node's log (may be nil).
	logTail func(node string) string
}

func newCluster(rt runtime.Runtime, t sut.Target, names []string) *cluster {
	return &cluster{rt: rt, target: t, names: names, paused: map[string]bool{},
		clocked: map[string]bool{}, removed: map[string]bool{}, down: map[string]bool{}}
}

// Unable implements nemesis.Unable: what the runtime cannot inject (its Unavailable),
// what the target says it cannot take, and the capabilities the target lacks.
func (c *cluster) Unable(kind string) string {
	if why, ok := c.rt.Unavailable()[kind]; ok {
		return why
	}
	if u, ok := c.target.(sut.Unable); ok {
		if why, ok := u.Unable()[kind]; ok {
			return why
		}
	}
	name := c.target.Name()
	switch kind {
	case "clock":
		if _, ok := c.target.(sut.Clocker); !ok {
			return name + " has no clock hook (its nodes share the host kernel's clock)"
		}
	case "member", "rolling-replace":
		if _, ok := c.target.(sut.Members); !ok {
			return name + " cannot change its membership here"
		}
	case "partition", "packet":
		if _, ok := c.rt.(nemesis.Partitioner); !ok {
			return "the " + c.rt.Name() + " runtime gives nodes no network of their own"
		}
	case "rolling-upgrade", "rolling-downgrade":
		if _, ok := c.target.(sut.Upgrader); !ok {
			return name + " cannot run other releases here"
		}
	case "maintenance":
		if _, ok := c.target.(sut.Maintainer); !ok {
			return name + " has no maintenance operations"
		}
	case "partition:snapshot":
		if _, ok := c.target.(sut.Snapshots); !ok {
			return name + " cannot tell when a member needs a snapshot"
		}
	}
	return ""
}

// launch starts node's current command where the runtime places it.
func (c *cluster) launch(ctx context.Context, node string) error {
	return c.rt.Launch(ctx, node, c.target.Node(c.rt.Env(node)))
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
	// The kill is finished even when ctx ends (the run's end): a SIGKILL sent and not
	// waited for would leave a node dead and not marked down, reported as a crash.
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalTimeout)
	defer cancel()
	if err := c.rt.Kill(kctx, node); err != nil {
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
	if err := c.launch(ctx, node); err != nil {
		return err
	}
	c.mark(c.down, node, false)
	return nil
}

// signalTimeout bounds a kill or a pause the run's end does not cut short.
const signalTimeout = 10 * time.Second

// Pause implements nemesis.Pauser. Like a kill, a pause is finished even when ctx ends,
// so that a node frozen by it is known to be paused, and resumed.
func (c *cluster) Pause(ctx context.Context, node string) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalTimeout)
	defer cancel()
	if err := c.rt.Pause(pctx, node); err != nil {
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

// PartitionReset implements nemesis.Resetter where the runtime does, else partitions
// the plain way.
func (c *cluster) PartitionReset(ctx context.Context, g nemesis.Grudge) error {
	if r, ok := c.rt.(nemesis.Resetter); ok {
		return r.PartitionReset(ctx, g)
	}
	return c.Partition(ctx, g)
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

// SetClock implements nemesis.Clocker through the target's clock hook. A reset of a node
// that is not running is done already: a node starts with a true clock.
func (c *cluster) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	clk, ok := c.target.(sut.Clocker)
	if !ok {
		return fmt.Errorf("clock of %s: %s has no clock hook", node, c.target.Name())
	}
	reset := offset == 0 && rate == 1
	if reset && !c.rt.Running(node) {
		c.mark(c.clocked, node, false)
		return nil
	}
	if !reset {
		c.mark(c.clocked, node, true)
	}
	if err := clk.SetClock(ctx, node, offset, rate); err != nil {
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

func (c *cluster) members() (sut.Members, error) {
	m, ok := c.target.(sut.Members)
	if !ok {
		return nil, fmt.Errorf("%s cannot change its membership", c.target.Name())
	}
	return m, nil
}

// Healthy implements nemesis.Membership.
func (c *cluster) Healthy(ctx context.Context) error {
	m, err := c.members()
	if err != nil {
		return err
	}
	return m.Healthy(ctx)
}

// RemoveMember implements nemesis.Membership: the change through the cluster, then the
// node's exit (a removed member may exit by itself; one that does not is killed), then
// its data wiped.
func (c *cluster) RemoveMember(ctx context.Context, node string) error {
	m, err := c.members()
	if err != nil {
		return err
	}
	c.mark(c.down, node, true) // a removed member may exit: not a crash
	if err := m.RemoveMember(ctx, node); err != nil {
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
	if err := c.rt.Wipe(ctx, node); err != nil {
		return fmt.Errorf("wipe removed member %s: %w", node, err)
	}
	return nil
}

// AddMember implements nemesis.Membership: the change for a new member, the node started
// empty as a joining member, and the wait until it has caught up.
func (c *cluster) AddMember(ctx context.Context, node string) error {
	m, err := c.members()
	if err != nil {
		return err
	}
	if err := m.AddMember(ctx, node); err != nil {
		return err
	}
	if c.rt.Running(node) {
		if err := c.Kill(ctx, node); err != nil {
			return fmt.Errorf("add member %s: %w", node, err)
		}
	}
	if err := c.launch(ctx, node); err != nil {
		return fmt.Errorf("add member %s: %w", node, err)
	}
	c.mark(c.down, node, false)
	c.mark(c.removed, node, false)
	if err := m.Joined(ctx, node); err != nil {
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
		if err := c.AddMember(ctx, n); err != nil {
			errs = append(errs, fmt.Errorf("%s is not a member again: %w", n, err))
		}
	}
	for _, n := range c.marked(c.clocked) {
		errs = append(errs, c.SetClock(ctx, n, 0, 1))
	}
	return errors.Join(errs...)
}

// faultsFor returns the nemesis faults for the spec's kinds on this cluster: "all" means
// every kind that can be injected here, by this runtime into this target (the others are
// returned as skipped, with the reason); a kind asked for by name that cannot be
// injected is a usage error naming the reason. A runtime that can make only some
// partition shapes (as "partition:<shape>" in its Unavailable) gets a partition fault
// restricted to the others; a target whose peers talk over streams gets the stream
// variant of packet faults.
func faultsFor(kinds []string, cl *cluster) (faults []nemesis.Fault, skipped map[string]string, err error) {
	rt := cl.rt
	skipped = map[string]string{}
	all := slices.Equal(kinds, []string{"all"})
	if all {
		kinds = nemesis.Kinds
	}
	for _, k := range kinds {
		fs, why, err := kindFaults(k, cl, skipped)
		switch {
		case err != nil:
			return nil, nil, err
		case why != "" && all:
			skipped[k] = why
			continue
		case why != "":
			return nil, nil, &UsageError{Msg: fmt.Sprintf("nemesis: %s is unavailable for %s on the %s runtime: %s",
				k, cl.target.Name(), rt.Name(), why)}
		}
		faults = append(faults, fs...)
	}
	return faults, skipped, nil
}

// kindFaults returns the faults of one kind on this cluster, or why it cannot take them;
// a variant it cannot take is noted in skipped. A combined kind ("partition+clock") is a
// nemesis.Combo of each part's faults, unavailable if any part is.
func kindFaults(k string, cl *cluster, skipped map[string]string) ([]nemesis.Fault, string, error) {
	if parts := nemesis.SplitCombo(k); parts != nil {
		var why string
		c, err := nemesis.NewCombo(parts, func(part string) ([]nemesis.Fault, error) {
			fs, w, err := kindFaults(part, cl, skipped)
			if w != "" && why == "" {
				why = part + ": " + w
			}
			return fs, err
		})
		if err != nil {
			return nil, "", &UsageError{Msg: "nemesis: " + err.Error()}
		}
		return []nemesis.Fault{c}, why, nil
	}
	fs, err := nemesis.ByName([]string{k})
	if err != nil {
		return nil, "", &UsageError{Msg: "nemesis: " + err.Error()}
	}
	if why := cl.Unable(k); why != "" {
		return nil, why, nil
	}
	for _, f := range fs {
		if ok, why := f.Available(cl); !ok {
			return nil, why, nil
		}
	}
	if k == "packet" && !cl.target.Peers().Messages {
		fs = []nemesis.Fault{nemesis.PacketFault{Stream: true}}
	}
	if k == "partition" {
		unavailable := cl.rt.Unavailable()
		var only []string
		for _, s := range nemesis.Shapes {
			if _, no := unavailable["partition:"+s]; !no {
				only = append(only, s)
			}
		}
		if len(only) < len(nemesis.Shapes) {
			fs = []nemesis.Fault{nemesis.PartitionFault{Only: only}}
		}
		if ok, why := (nemesis.SnapshotPartitionFault{}).Available(cl); ok {
			fs = append(fs, nemesis.SnapshotPartitionFault{}) // the schedule picks one of them each turn
		} else if _, has := cl.target.(sut.Snapshots); has {
			skipped["partition:snapshot"] = why
		}
	}
	return fs, "", nil
}
