package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var five = []string{"n1", "n2", "n3", "n4", "n5"}

// fakeCluster is a cluster of five nodes with every capability. It keeps the state the
// faults set (who is down, paused, partitioned, clocked, a member, on which release) so
// that tests see a fault take effect and be undone, and a log of every call.
type fakeCluster struct {
	mu          sync.Mutex
	down        map[string]string // node → "killed" | "paused" | "stopped"
	partitioned bool
	grudge      Grudge
	log         []string
	clocks      map[string][2]float64 // node → offset (s), rate
	sets        int                   // SetClock calls
	members     []string
	steps       []string
	links       map[Link]Packets
	versions    map[string]string
	path        []string
	prepared    string
	compacted   int64
	defrags     []string

	leader     string // "" for n2
	failPause  bool
	unhealth   error
	noDown     bool // the releases cannot downgrade
	lagging    bool // the cluster version does not follow
	streams    bool // the links are streams, not messages
	isolating  bool // only grudges that cut nodes off from all the others
	snapshots  bool // the cluster can tell when a member needs a snapshot
	slowRemove bool // the next removal takes effect at once, confirmed only when its ctx ends
	// freezeThenFail: a pause takes effect and reports an error (its wait cut short).
	freezeThenFail bool
	// wholeToBeHealthy: the cluster is healthy only when every member runs.
	wholeToBeHealthy bool
	// clockLag: a SetClock that moves a clock off true time takes this long to arrive
	// and arrives even if its caller gives up first (a request already on the wire);
	// each such call sends on clockSent, if set, as it leaves.
	clockLag  time.Duration
	clockSent chan struct{}
}

func newFake() *fakeCluster {
	c := &fakeCluster{down: map[string]string{}, clocks: map[string][2]float64{}, members: slices.Clone(five),
		links: map[Link]Packets{}, versions: map[string]string{}, path: []string{"v1"}}
	for _, n := range five {
		c.versions[n] = "v1"
	}
	return c
}

// withPath makes the cluster's releases path, every member on the first.
func (c *fakeCluster) withPath(path ...string) *fakeCluster {
	c.path = path
	for _, n := range five {
		c.versions[n] = path[0]
	}
	return c
}

func (c *fakeCluster) powers() Powers {
	return Powers{Nodes: c, Pause: c, Net: c, Links: c, Clock: c, Members: c, Upgrade: c, Maintain: c, Snapshots: c}
}

// caps is every capability but the link kind the cluster does not have and those its
// knobs take away.
func (c *fakeCluster) caps() Caps {
	caps := Can(CapKill, CapPause, CapIsolate, CapPartition, CapLinks, CapMessages, CapStreams, CapClock,
		CapMembers, CapUpgrade, CapMaintain, CapSnapshots)
	if c.streams {
		caps = caps.Lacks(CapMessages, "the links are streams")
	} else {
		caps = caps.Lacks(CapStreams, "the links carry messages")
	}
	if c.isolating {
		caps = caps.Lacks(CapPartition, "only isolation")
	}
	if !c.snapshots {
		caps = caps.Lacks(CapSnapshots, "no snapshot sends to count")
	}
	return caps
}

func (c *fakeCluster) Nodes() []string { return five }
func (c *fakeCluster) Leader(context.Context) (string, error) {
	if c.leader != "" {
		return c.leader, nil
	}
	return "n2", nil
}

func (c *fakeCluster) record(format string, args ...any) {
	c.log = append(c.log, fmt.Sprintf(format, args...))
}

func (c *fakeCluster) set(n, state, what string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if state == "" {
		delete(c.down, n)
	} else {
		c.down[n] = state
	}
	c.record("%s %s", what, n)
	return nil
}

func (c *fakeCluster) Kill(_ context.Context, n string) error { return c.set(n, "killed", "kill") }
func (c *fakeCluster) Stop(_ context.Context, n string) error { return c.set(n, "stopped", "stop") }
func (c *fakeCluster) Start(_ context.Context, n string) error {
	c.mu.Lock()
	paused := c.down[n] == "paused"
	c.mu.Unlock()
	if paused {
		return nil // running: left be
	}
	return c.set(n, "", "start")
}
func (c *fakeCluster) Running(n string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.down[n]
	return s == "" || s == "paused"
}
func (c *fakeCluster) Wipe(_ context.Context, n string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.down[n]; s == "" || s == "paused" {
		return fmt.Errorf("wipe %s: running", n)
	}
	c.record("wipe %s", n)
	return nil
}
func (c *fakeCluster) LogTail(n string) string { return "  (the log of " + n + ")" }

func (c *fakeCluster) Resume(_ context.Context, n string) error { return c.set(n, "", "resume") }
func (c *fakeCluster) Pause(_ context.Context, n string) error {
	if c.failPause {
		return errors.New("freezer unavailable")
	}
	if c.freezeThenFail {
		_ = c.set(n, "paused", "pause")
		return errors.New("paused, but the answer was lost")
	}
	return c.set(n, "paused", "pause")
}

func (c *fakeCluster) Partition(_ context.Context, g Grudge, _ bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partitioned, c.grudge = true, g
	c.record("partition true")
	return nil
}
func (c *fakeCluster) HealPartition(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.partitioned, c.grudge = false, nil
	c.record("partition false")
	return nil
}
func (c *fakeCluster) Grudges() bool { return !c.isolating }

func (c *fakeCluster) Packets(_ context.Context, links []Link, p Packets) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.links)
	for _, l := range links {
		c.links[l] = p
	}
	return nil
}
func (c *fakeCluster) HealPackets(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.links)
	return nil
}
func (c *fakeCluster) Messages() bool { return !c.streams }

func (c *fakeCluster) SetClock(ctx context.Context, n string, off time.Duration, rate float64) error {
	if c.clockLag > 0 && (off != 0 || rate != 1) {
		if c.clockSent != nil {
			c.clockSent <- struct{}{}
		}
		arrived := make(chan struct{})
		go func() {
			time.Sleep(c.clockLag)
			c.setClock(n, off, rate)
			close(arrived)
		}()
		select {
		case <-arrived:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.setClock(n, off, rate)
	return nil
}

func (c *fakeCluster) setClock(n string, off time.Duration, rate float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sets++
	if off == 0 && rate == 1 {
		delete(c.clocks, n)
	} else {
		c.clocks[n] = [2]float64{off.Seconds(), rate}
	}
}

func (c *fakeCluster) Healthy(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.members) != len(five) {
		return errors.New("a member short")
	}
	if c.wholeToBeHealthy {
		for _, m := range c.members {
			if s := c.down[m]; s != "" {
				return fmt.Errorf("%s is %s", m, s)
			}
		}
	}
	return c.unhealth
}

func (c *fakeCluster) RemoveMember(ctx context.Context, n string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.members, n) {
		return nil // removed already: a retry after a lost confirmation
	}
	c.members = slices.DeleteFunc(c.members, func(m string) bool { return m == n })
	c.steps = append(c.steps, "remove "+n)
	if c.slowRemove {
		c.slowRemove = false // once
		// The removal takes effect, but its confirmation outlasts ctx: what a run's end
		// does to a removal through a busy cluster.
		c.mu.Unlock()
		<-ctx.Done()
		c.mu.Lock()
		return fmt.Errorf("remove %s: %w", n, ctx.Err())
	}
	return nil
}
func (c *fakeCluster) AddMember(_ context.Context, n string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.members = append(c.members, n)
	c.steps = append(c.steps, "add "+n)
	return nil
}
func (c *fakeCluster) Joined(context.Context, string) error { return nil }

func (c *fakeCluster) Versions() []string { return c.path }
func (c *fakeCluster) Version(n string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.versions[n]
}
func (c *fakeCluster) SetVersion(n, v string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[n] == "" {
		return fmt.Errorf("set the version of %s: running", n)
	}
	c.versions[n] = v
	c.steps = append(c.steps, n+" "+v)
	return nil
}
func (c *fakeCluster) PrepareDowngrade(_ context.Context, v string) error {
	if c.noDown {
		return errors.New("this release cannot downgrade")
	}
	c.prepared = v
	return nil
}

// ClusterVersion is the lowest release any member runs, as etcd's is.
func (c *fakeCluster) ClusterVersion(context.Context) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	low := len(c.path)
	for _, v := range c.versions {
		for i, p := range c.path {
			if p == v {
				low = min(low, i)
			}
		}
	}
	if c.lagging {
		low = 0
	}
	return majorMinor(c.path[low]) + ".0", nil
}

func (c *fakeCluster) Compact(context.Context) (int64, error) { c.compacted = 42; return 42, nil }
func (c *fakeCluster) Defragment(_ context.Context, n string) error {
	c.defrags = append(c.defrags, n)
	return nil
}

func (c *fakeCluster) MarkSnapshots(context.Context, string) error        { return nil }
func (c *fakeCluster) SnapshotDue(context.Context, string) (bool, error)  { return true, nil }
func (c *fakeCluster) SnapshotSent(context.Context, string) (bool, error) { return true, nil }

// fault resolves one --nemesis entry on c.
func fault(t *testing.T, c *fakeCluster, entry string) *Fault {
	t.Helper()
	fs, _, err := Choose([]string{entry}, len(five), c.caps())
	require.NoError(t, err, entry)
	require.Len(t, fs, 1)
	return fs[0]
}

// inject draws a turn of entry from seed and injects it into c.
func inject(t *testing.T, ctx context.Context, c *fakeCluster, entry string, seed uint64) (Injection, error) {
	t.Helper()
	return injectWith(ctx, c, c, fault(t, c, entry), seed, nil)
}

// injectWith injects a turn of f drawn from seed into a cluster (cl) with c's powers.
func injectWith(ctx context.Context, cl Cluster, c *fakeCluster, f *Fault, seed uint64, note func(f, n, v string)) (Injection, error) {
	t := f.draw(rand.New(rand.NewPCG(seed, 1)))
	return t.inject(ctx, Env{Cluster: cl, Powers: c.powers(), Note: note})
}
