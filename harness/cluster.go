package harness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
)

// cluster is a run's nodes: what the nemesis acts on (nemesis.Cluster, and the Powers
// its plan's capabilities call for) and what the run heals at its end. It starts and
// stops nodes for every fault (nemesis.NodeControl, nemesis.Pauser over the runtime)
// and keeps the state each fault leaves — paused, clocked, removed, down — so that
// HealAll can mend everything whatever the schedule managed to do, and so that a node
// found stopped that nobody stopped is noted as a crash. The target's own capabilities
// reach the nemesis as the target implements them, the clock and membership through
// thin trackers of that state.
type cluster struct {
	rt     runtime.Runtime
	target sut.Target
	names  []string
	net    *partitioner // nil when the runtime can make no partition
	links  *linkFaults  // the link proxy, when the run has packet faults
	disks  *disks       // the nodes' disks, when the run's faults need them

	mu        sync.Mutex
	paused    map[string]bool
	clocked   map[string]bool // clock changed, not yet reset
	removed   map[string]bool // taken out of the membership, not yet added back
	rejoining map[string]bool // added back as a new member, not yet started
	down      map[string]bool // stopped by the harness (killed, or being replaced)
	armed     map[string]bool // node/failpoint armed, not yet disarmed
	exits     []string        // nodes found stopped that nobody stopped, with when
	// logf receives a line when a node is found to have exited by itself, and since
	// says how far into the run that is; either may be nil.
	logf  func(format string, args ...any)
	since func() time.Duration
	// logTail returns the last lines of a node's log (may be nil).
	logTail func(node string) string

	powers nemesis.Powers // set by assemble, with the capabilities they are for
	caps   nemesis.Caps
	vclock *processClock // the clock fault's, where the runtime gives it (not a hook)
	// clockVia is Spec.Clock: which of the hook and the runtime's clocks to use ("": the
	// hook where there is one).
	clockVia string
}

func newCluster(rt runtime.Runtime, t sut.Target, names []string) *cluster {
	return &cluster{rt: rt, target: t, names: names, net: newPartitioner(rt, names),
		paused: map[string]bool{}, clocked: map[string]bool{}, removed: map[string]bool{},
		rejoining: map[string]bool{}, down: map[string]bool{}, armed: map[string]bool{}}
}

// assemble gives the cluster the powers caps declares: the runtime's part from the
// cluster itself, the target's from the target. A capability declared and not
// implemented is a bug of the runtime's or the target's, said before anything starts.
func (c *cluster) assemble(caps nemesis.Caps) error {
	has := func(x nemesis.Capability) bool { ok, _ := caps.Has(x); return ok }
	p := nemesis.Powers{Nodes: c, Pause: c}
	if c.net != nil {
		p.Net = c.net
	}
	if c.links != nil {
		p.Links = c.links
	}
	if has(nemesis.CapClock) {
		if clk, ok := clockHook(c.target); ok && c.clockVia != ClockProcess {
			p.Clock = trackedClock{c: c, clk: clk}
		} else if rc, ok := c.rt.(runtime.Clocker); ok && c.rt.Abilities().Clock && c.clockVia != ClockHook {
			c.vclock = newProcessClock(rc)
			p.Clock = trackedClock{c: c, clk: c.vclock}
		}
	}
	if m, ok := c.target.(nemesis.Members); ok && has(nemesis.CapMembers) {
		p.Members = trackedMembers{c: c, m: m}
	}
	if u, ok := c.target.(nemesis.Upgrader); ok && has(nemesis.CapUpgrade) {
		p.Upgrade = u
	}
	if m, ok := c.target.(nemesis.Maintainer); ok && has(nemesis.CapMaintain) {
		p.Maintain = m
	}
	if s, ok := c.target.(nemesis.Snapshotter); ok && has(nemesis.CapSnapshots) {
		p.Snapshots = s
	}
	if f, ok := c.target.(nemesis.Failpointer); ok && has(nemesis.CapFailpoints) {
		p.Failpoints = trackedFailpoints{c: c, fp: f}
	}
	if c.disks != nil && has(nemesis.CapDisks) {
		p.Disks = c
	}
	if has(nemesis.CapDataDirs) {
		p.Files = c
	}
	c.powers, c.caps = p, caps
	if missing := p.Missing(caps); len(missing) > 0 {
		return fmt.Errorf("target %s on the %s runtime declares %v but does not implement it", c.target.Name(), c.rt.Name(), missing)
	}
	return nil
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

// Nodes implements nemesis.Cluster.
func (c *cluster) Nodes() []string { return slices.Clone(c.names) }

// Leader implements nemesis.Cluster.
func (c *cluster) Leader(ctx context.Context) (string, error) { return c.target.Leader(ctx) }

// signalTimeout bounds a kill or a pause the run's end does not cut short.
const signalTimeout = 10 * time.Second

// Kill implements nemesis.NodeControl. A node that has already exited by itself stays
// down: the kill's end state holds, and the exit is noted. The kill is finished even
// when ctx ends (the run's end): a SIGKILL sent and not waited for would leave a node
// dead and not marked down, reported as a crash.
func (c *cluster) Kill(ctx context.Context, node string) error {
	if !c.rt.Running(node) {
		c.CheckExits()
		c.mark(c.down, node, true)
		return nil
	}
	c.mark(c.down, node, true) // before the kill: the exit watcher must not see it as a crash
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalTimeout)
	defer cancel()
	if err := c.rt.Kill(kctx, node); err != nil {
		c.mark(c.down, node, !c.rt.Running(node))
		return err
	}
	c.mark(c.paused, node, false)
	return nil
}

// Stop implements nemesis.NodeControl: SIGTERM, as an operator's rollout does.
func (c *cluster) Stop(ctx context.Context, node string) error {
	c.mark(c.down, node, true) // stopped on purpose: not a crash
	if err := c.rt.Stop(ctx, node); err != nil {
		c.mark(c.down, node, !c.rt.Running(node))
		return err
	}
	c.mark(c.paused, node, false)
	return nil
}

// Start implements nemesis.NodeControl: the node's current command (a re-added member's,
// an upgraded one's), then the partition in force, if any.
func (c *cluster) Start(ctx context.Context, node string) error {
	if c.rt.Running(node) {
		return nil
	}
	if err := c.launch(ctx, node); err != nil {
		return err
	}
	c.mu.Lock()
	c.down[node] = false
	if c.rejoining[node] {
		c.rejoining[node], c.removed[node] = false, false
	}
	c.mu.Unlock()
	if c.net != nil {
		if err := c.net.reapply(ctx, node); err != nil {
			return fmt.Errorf("start %s: the partition in force: %w", node, err)
		}
	}
	if c.vclock != nil {
		// A node that exited as it started is not this fault's to report: CheckExits
		// notes it, and its next start gets the clock again.
		if err := c.vclock.reapply(ctx, node); err != nil && c.rt.Running(node) {
			return fmt.Errorf("start %s: %w", node, err)
		}
	}
	return nil
}

// Running implements nemesis.NodeControl.
func (c *cluster) Running(node string) bool { return c.rt.Running(node) }

// Wipe implements nemesis.NodeControl: a node on a disk gets an empty disk.
func (c *cluster) Wipe(ctx context.Context, node string) error {
	if d := c.disks.disk(node); d != nil {
		if c.rt.Running(node) {
			return fmt.Errorf("wipe %s: it is running", node)
		}
		return d.Wipe(ctx)
	}
	return c.rt.Wipe(ctx, node)
}

// PowerLoss implements nemesis.Disks, for a node that is down.
func (c *cluster) PowerLoss(ctx context.Context, node string) (string, error) {
	if c.rt.Running(node) {
		return "", fmt.Errorf("power-loss of %s: it is running", node)
	}
	return c.disks.PowerLoss(ctx, node)
}

// LogTail implements nemesis.NodeControl.
func (c *cluster) LogTail(node string) string {
	if c.logTail == nil {
		return "  (no log)"
	}
	return c.logTail(node)
}

// Pause implements nemesis.Pauser. Like a kill, a pause is finished even when ctx ends,
// so that a node frozen by it is known to be paused, and resumed.
func (c *cluster) Pause(ctx context.Context, node string) error {
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), signalTimeout)
	defer cancel()
	if err := c.rt.Pause(pctx, node); err != nil {
		return err
	}
	c.mark(c.paused, node, true)
	return nil
}

// Resume implements nemesis.Pauser.
func (c *cluster) Resume(ctx context.Context, node string) error {
	if !c.rt.Running(node) {
		c.mark(c.paused, node, false)
		return nil // killed while paused: nothing to resume
	}
	if err := c.rt.Resume(ctx, node); err != nil {
		return err
	}
	c.mark(c.paused, node, false)
	return nil
}

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

// trackedClock is the target's clock hook, noting which clocks are off true time. A
// reset of a node that is not running is done already: a node starts with a true clock.
type trackedClock struct {
	c   *cluster
	clk nemesis.Clocker
}

func (t trackedClock) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	reset := offset == 0 && rate == 1
	if reset && !t.c.rt.Running(node) {
		t.c.mark(t.c.clocked, node, false)
		if p, ok := t.clk.(*processClock); ok {
			p.forget(node) // healed while down: it starts true
		}
		return nil
	}
	if !reset {
		t.c.mark(t.c.clocked, node, true)
	}
	if err := t.clk.SetClock(ctx, node, offset, rate); err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	if reset {
		t.c.mark(t.c.clocked, node, false)
	}
	return nil
}

// trackedFailpoints is the target's failpoints, noting which are armed (HealAll
// disarms them). A node armed with a panic is marked down before it is armed: its exit
// at the point is the fault's, not a crash; disarmed while it still runs, it is up again.
type trackedFailpoints struct {
	c  *cluster
	fp nemesis.Failpointer
}

func (t trackedFailpoints) Failpoints(ctx context.Context, node string) ([]nemesis.Failpoint, error) {
	return t.fp.Failpoints(ctx, node)
}

func (t trackedFailpoints) SetFailpoint(ctx context.Context, node, name, term string) error {
	if strings.HasPrefix(term, "panic") {
		t.c.mark(t.c.down, node, true)
	}
	t.c.mark(t.c.armed, node+"/"+name, true)
	if err := t.fp.SetFailpoint(ctx, node, name, term); err != nil {
		_ = t.ClearFailpoint(context.WithoutCancel(ctx), node, name)
		return err
	}
	return nil
}

func (t trackedFailpoints) ClearFailpoint(ctx context.Context, node, name string) error {
	if t.c.rt.Running(node) {
		if err := t.fp.ClearFailpoint(ctx, node, name); err != nil {
			return fmt.Errorf("failpoint %s of %s: %w", name, node, err)
		}
		t.c.mark(t.c.down, node, false)
	}
	t.c.mark(t.c.armed, node+"/"+name, false)
	return nil
}

// trackedMembers is the target's membership changes, noting which members are out: a
// removed member may exit by itself (not a crash), and one not added back is added
// back by HealAll.
type trackedMembers struct {
	c *cluster
	m nemesis.Members
}

func (t trackedMembers) Healthy(ctx context.Context) error { return t.m.Healthy(ctx) }

func (t trackedMembers) RemoveMember(ctx context.Context, node string) error {
	t.c.mark(t.c.down, node, true) // a removed member may exit: not a crash
	if err := t.m.RemoveMember(ctx, node); err != nil {
		t.c.mark(t.c.down, node, !t.c.rt.Running(node))
		return err
	}
	t.c.mark(t.c.removed, node, true)
	return nil
}

func (t trackedMembers) AddMember(ctx context.Context, node string) error {
	if err := t.m.AddMember(ctx, node); err != nil {
		return err
	}
	t.c.mark(t.c.rejoining, node, true) // a member again once it starts
	return nil
}

func (t trackedMembers) Joined(ctx context.Context, node string) error { return t.m.Joined(ctx, node) }

// HealAll lifts every partition and packet fault, resumes every paused node, starts
// every node that is not running (killed, or crashed by itself), adds back every member
// that was taken out, and resets every clock that was changed. It goes on past errors
// and returns them all.
func (c *cluster) HealAll(ctx context.Context) error {
	c.CheckExits()
	var errs []error
	if c.net != nil {
		errs = append(errs, c.net.HealPartition(ctx))
	}
	if c.links != nil {
		errs = append(errs, c.links.HealPackets(ctx))
	}
	for _, n := range c.marked(c.paused) {
		errs = append(errs, c.Resume(ctx, n))
	}
	removed := c.marked(c.removed)
	for _, n := range c.names {
		if !c.rt.Running(n) && !slices.Contains(removed, n) {
			errs = append(errs, c.Start(ctx, n))
		}
	}
	for _, n := range removed {
		if err := nemesis.AddMember(ctx, c.powers, n); err != nil {
			errs = append(errs, fmt.Errorf("%s is not a member again: %w", n, err))
		}
	}
	if c.powers.Clock != nil {
		for _, n := range c.marked(c.clocked) {
			errs = append(errs, c.powers.Clock.SetClock(ctx, n, 0, 1))
		}
	}
	if c.powers.Failpoints != nil {
		for _, a := range c.marked(c.armed) {
			node, name, _ := strings.Cut(a, "/")
			errs = append(errs, c.powers.Failpoints.ClearFailpoint(ctx, node, name))
		}
	}
	return errors.Join(errs...)
}
