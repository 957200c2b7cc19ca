// Package sim is a simulated replicated key-value store, the target of the fast tier: it
// runs on the in-memory runtime (harness/runtime/memory) and serves its clients from
// the runtime's World, so that what the nemesis does to a node is what its clients
// see. A node that was killed refuses connections; a paused one answers nothing until
// it is resumed; a node cut off from a majority (by the partition in force) has no
// leader and refuses what it is asked. The store itself is linearizable: one copy,
// each operation applied at one instant. Its deliberate anomalies (--sim-anomaly)
// break that in the ways real systems do, for tests that the harness catches them:
//
//   - stale-read: a node cut off from the majority answers reads from what it last saw;
//   - lost-ack: a node cut off from the majority acknowledges writes it never applies.
//
// It registers as --target sim for the programs that import it (tests).
package sim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/memory"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Name is the target's name.
const Name = "sim"

// The anomalies.
const (
	StaleRead = "stale-read"
	LostAck   = "lost-ack"
)

var anomalies = []string{StaleRead, LostAck}

func init() {
	sut.Register(sut.Factory{Name: Name, Options: func() sut.Options { return &Options{Latency: time.Millisecond} },
		Doc: "a simulated replicated store on the in-memory runtime, with deliberate anomalies (tests of the harness)"})
}

// Options is the sim's section of a spec: sim: {anomaly, latency}.
type Options struct {
	// Anomaly is a deliberate anomaly ("" for a correct store).
	Anomaly string `yaml:"anomaly" json:"anomaly,omitempty"`
	// Latency is how long each operation takes.
	Latency time.Duration `yaml:"latency" json:"latency,omitempty"`
	// ReadOnly makes every node refuse every write: a store that never takes one, whose
	// runs hold no evidence.
	ReadOnly bool `yaml:"read-only" json:"read_only,omitempty"`
	// PanicIn makes the target panic in one of its methods ("clock", "leader",
	// "client"): for tests that a panic anywhere ends a run healed and clean.
	PanicIn string `yaml:"panic-in" json:"panic_in,omitempty"`
	// Only limits the workloads its clients support (none: all of them).
	Only []workload.Kind `yaml:"only" json:"only,omitempty"`
}

// Flags implements sut.Options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Anomaly, "sim-anomaly", o.Anomaly, "the sim target's deliberate anomaly: "+strings.Join(anomalies, "|"))
}

// Given implements sut.Options.
func (o *Options) Given() bool { return o.Anomaly != "" }

// Resolve implements sut.Options.
func (o *Options) Resolve(sut.Common) error {
	if o.Anomaly != "" && !slices.Contains(anomalies, o.Anomaly) {
		return results.Usagef("sim-anomaly: %q is not one of %s", o.Anomaly, strings.Join(anomalies, ", "))
	}
	return nil
}

// Label implements sut.Options.
func (o *Options) Label() string { return Name }

// KnownUnsafe implements sut.Options.
func (o *Options) KnownUnsafe() string { return o.Anomaly }

// Args implements sut.Options.
func (o *Options) Args() []string {
	if o.Anomaly == "" {
		return nil
	}
	return []string{"--sim-anomaly", o.Anomaly}
}

// Caps implements sut.Options: a clock hook (the clocks it records, for tests of
// their reset).
func (o *Options) Caps() nemesis.Caps {
	return nemesis.Can(nemesis.CapClock, nemesis.CapMessages).
		Lacks(nemesis.CapMembers, "the sim has a fixed membership").
		Lacks(nemesis.CapUpgrade, "the sim has one release").
		Lacks(nemesis.CapMaintain, "the sim has no maintenance").
		Lacks(nemesis.CapSnapshots, "the sim sends no snapshots").
		Lacks(nemesis.CapStreams, "the sim's nodes would send messages")
}

// Workloads implements sut.Options.
func (o *Options) Workloads() []workload.Kind {
	if len(o.Only) > 0 {
		return o.Only
	}
	return []workload.Kind{workload.Register, workload.Set, workload.Append, workload.Lease, workload.Txn}
}

// Prepare implements sut.Options.
func (o *Options) Prepare(context.Context, func(string)) error { return nil }

// New implements sut.Options: the target of the run's World (the memory runtime's).
func (o *Options) New(env sut.Env) (sut.Target, error) {
	w, ok := memory.Lookup(env.RunID)
	if !ok {
		return nil, errors.New("the sim target runs on the memory runtime (--runtime memory)")
	}
	return &Target{env: env, world: w, anomaly: o.Anomaly, latency: o.Latency, readOnly: o.ReadOnly, panicIn: o.PanicIn,
		regs: map[string][]version{}, synced: map[string]int64{}, clocks: map[string]Clock{}}, nil
}

// Target is the simulated store of one run.
type Target struct {
	env      sut.Env
	world    *memory.World
	anomaly  string
	latency  time.Duration
	readOnly bool
	panicIn  string

	mu     sync.Mutex
	now    int64                // the store's version: one more each write
	regs   map[string][]version // each key's values, oldest first
	synced map[string]int64     // the version each node last saw, connected
	clocks map[string]Clock
	// leases run on the leader's clock, as etcd's lessor does; a new leader gives every
	// lease its whole TTL again.
	leases      workload.SimLeases
	leaseLeader string
}

// version is a key's value from version at on.
type version struct {
	at    int64
	value string
	list  []string
	set   bool // value or list was set (a key never written has none)
}

// Clock is a node's clock as the nemesis set it.
type Clock struct {
	Offset time.Duration
	Rate   float64
	since  time.Time // when it was set: a rate runs from there
}

// read is what a node with clock c reads at now.
func (c Clock) read(now time.Time) time.Time {
	if c.Rate == 0 {
		return now
	}
	return now.Add(c.Offset + time.Duration((c.Rate-1)*float64(now.Sub(c.since))))
}

var (
	_ sut.Target      = (*Target)(nil)
	_ nemesis.Clocker = (*Target)(nil)
)

// Name implements sut.Target.
func (t *Target) Name() string { return Name }

// Ports implements sut.Target.
func (t *Target) Ports() []int { return []int{1} }

// Peers implements sut.Target.
func (t *Target) Peers() sut.Peers { return sut.Peers{Port: 1, Messages: true} }

// Node implements sut.Target.
func (t *Target) Node(env runtime.NodeEnv) runtime.NodeCmd {
	return runtime.NodeCmd{Program: "simnode", Args: []string{"--name", env.Name, "--data-dir", env.DataDir}}
}

// Describe implements sut.Target.
func (t *Target) Describe() results.TargetInfo {
	return results.TargetInfo{Name: Name, Unsafe: t.anomaly}
}

// connected reports whether node runs, is not paused, and reaches a majority of the
// nodes that run (itself included).
func (t *Target) connected(node string) bool {
	n := t.world.Node(node)
	if !n.Running || n.Paused {
		return false
	}
	names := t.world.Names()
	reach := 0
	for _, m := range names {
		if t.world.Node(m).Running && t.world.Reaches(node, m) {
			reach++
		}
	}
	return reach > len(names)/2
}

// Leader implements sut.Target: the first node, by name, that is connected.
func (t *Target) Leader(context.Context) (string, error) {
	if t.panicIn == "leader" {
		panic("sim: leader went wrong")
	}
	for _, n := range t.world.Names() {
		if t.connected(n) {
			return n, nil
		}
	}
	return "", nil
}

// Ready implements sut.Target: every node runs and a leader is elected.
func (t *Target) Ready(ctx context.Context) error {
	for _, n := range t.world.Names() {
		if !t.world.Node(n).Running {
			return fmt.Errorf("%s is not running", n)
		}
	}
	if l, _ := t.Leader(ctx); l == "" {
		return errors.New("no leader")
	}
	return nil
}

// SetClock implements nemesis.Clocker: the clock is recorded, for tests.
func (t *Target) SetClock(_ context.Context, node string, offset time.Duration, rate float64) error {
	if t.panicIn == "clock" {
		panic("sim: clock went wrong")
	}
	if !t.world.Node(node).Running {
		return fmt.Errorf("clock of %s: not running", node)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if offset == 0 && rate == 1 {
		delete(t.clocks, node)
	} else {
		t.clocks[node] = Clock{Offset: offset, Rate: rate, since: time.Now()}
	}
	return nil
}

// Clocks returns the clocks that are off true time.
func (t *Target) Clocks() map[string]Clock {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]Clock{}
	for k, v := range t.clocks {
		out[k] = v
	}
	return out
}

// Opener implements sut.Target: process p talks to node p mod N.
func (t *Target) Opener(time.Duration) workload.Opener {
	return func(_ context.Context, process int) (workload.Client, string, error) {
		names := t.world.Names()
		node := names[process%len(names)]
		return &client{t: t, node: node}, node, nil
	}
}

// refused is a definite error: the request was refused, it did nothing.
func refused(format string, args ...any) error { return workload.Definite(fmt.Errorf(format, args...)) }

// opKind is what an operation does, for the anomalies: each breaks one kind.
type opKind uint8

const (
	reading opKind = iota
	writing
	leasing // lease operations: no anomaly breaks them
)

// client is one process's connection to a node.
type client struct {
	t    *Target
	node string
}

// do runs one operation through the client's node: it waits out a pause (until ctx
// ends: an indeterminate outcome), is refused by a node that is down or has no leader,
// and otherwise applies op to the store at one instant. A node without a leader may
// misbehave as the anomaly says: stale answers op with what it last saw (reads); lost
// acknowledges without applying (writes).
func (c *client) do(ctx context.Context, kind opKind, op func(at int64) error) error {
	t := c.t
	if t.panicIn == "client" {
		panic("sim: client went wrong")
	}
	if t.latency > 0 {
		tm := time.NewTimer(t.latency)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
	for {
		n := t.world.Node(c.node)
		if !n.Running {
			return refused("%s: connection refused", c.node)
		}
		if !n.Paused {
			break
		}
		select { // a paused node answers nothing until it is resumed
		case <-t.world.Wait():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if kind != reading && t.readOnly {
		return refused("%s: read-only", c.node)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range t.world.Names() {
		if t.connected(m) {
			t.synced[m] = t.now
		}
	}
	if t.connected(c.node) {
		t.expireLeases()
		return op(t.now)
	}
	switch {
	case kind == reading && t.anomaly == StaleRead:
		return op(t.synced[c.node])
	case kind == writing && t.anomaly == LostAck:
		return nil
	}
	return refused("%s: no leader", c.node)
}

// at returns key's value as of version v.
func (t *Target) at(key string, v int64) version {
	vs := t.regs[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].at <= v {
			return vs[i]
		}
	}
	return version{}
}

func (t *Target) put(key string, x version) {
	t.now++
	x.at, x.set = t.now, true
	t.regs[key] = append(t.regs[key], x)
}

func (c *client) Read(ctx context.Context, key string) (string, bool, error) {
	var out version
	err := c.do(ctx, reading, func(v int64) error { out = c.t.at(key, v); return nil })
	return out.value, out.set, err
}

func (c *client) Write(ctx context.Context, key, value string) error {
	return c.do(ctx, writing, func(int64) error { c.t.put(key, version{value: value}); return nil })
}

func (c *client) CAS(ctx context.Context, key, from, to string) error {
	return c.do(ctx, writing, func(v int64) error {
		if cur := c.t.at(key, v); !cur.set || cur.value != from {
			return workload.ErrMismatch
		}
		c.t.put(key, version{value: to})
		return nil
	})
}

func (c *client) Append(ctx context.Context, key, value string) error {
	return c.do(ctx, writing, func(v int64) error {
		c.t.put(key, version{list: append(slices.Clone(c.t.at(key, v).list), value)})
		return nil
	})
}

// Txn applies the transaction at one version; a read-only one is a read (a node cut off
// answers it from what it last saw, with the stale-read anomaly), any other a write.
func (c *client) Txn(ctx context.Context, mops []history.Mop) (out []history.Mop, err error) {
	kind := reading
	if slices.ContainsFunc(mops, func(m history.Mop) bool { return m.F == history.MopAppend }) {
		kind = writing
	}
	err = c.do(ctx, kind, func(v int64) error {
		out = workload.ApplyMops(mops, func(k string) []string { return c.t.at(k, v).list },
			func(k string, l []string) { c.t.put(k, version{list: l}) })
		return nil
	})
	return out, err
}

func (c *client) ReadList(ctx context.Context, key string) ([]string, error) {
	var out []string
	err := c.do(ctx, reading, func(v int64) error { out = slices.Clone(c.t.at(key, v).list); return nil })
	return out, err
}

// leaseNow is the time on the leader's clock, for the leases; with t.mu held. A leader
// other than the last one refreshes every lease first.
func (t *Target) leaseNow() time.Time {
	leader := ""
	for _, n := range t.world.Names() {
		if t.connected(n) {
			leader = n
			break
		}
	}
	now := t.clocks[leader].read(time.Now())
	if leader != t.leaseLeader {
		t.leaseLeader = leader
		t.leases.Refresh(now)
	}
	return now
}

// expireLeases deletes the keys of every lease whose time is up on the leader's clock.
func (t *Target) expireLeases() {
	t.del(t.leases.Expire(t.leaseNow()))
}

// del deletes keys, at one version.
func (t *Target) del(keys []string) {
	if len(keys) == 0 {
		return
	}
	t.now++
	for _, k := range keys {
		t.regs[k] = append(t.regs[k], version{at: t.now})
	}
}

var _ workload.Leaser = (*client)(nil)

func (c *client) Grant(ctx context.Context, ttl time.Duration) (id string, granted time.Duration, err error) {
	err = c.do(ctx, leasing, func(int64) error { id = c.t.leases.Grant(c.t.leaseNow(), ttl); return nil })
	return id, ttl, err
}

func (c *client) PutWithLease(ctx context.Context, key, value, lease string) error {
	return c.do(ctx, leasing, func(int64) error {
		if !c.t.leases.Attach(lease, key) {
			return workload.ErrLeaseNotFound
		}
		c.t.put(key, version{value: value})
		return nil
	})
}

func (c *client) KeepAlive(ctx context.Context, lease string) (ttl time.Duration, err error) {
	err = c.do(ctx, leasing, func(int64) error {
		var ok bool
		if ttl, ok = c.t.leases.Renew(c.t.leaseNow(), lease); !ok {
			return workload.ErrLeaseNotFound
		}
		return nil
	})
	return ttl, err
}

func (c *client) Revoke(ctx context.Context, lease string) error {
	return c.do(ctx, leasing, func(int64) error {
		keys, ok := c.t.leases.Revoke(lease)
		if !ok {
			return workload.ErrLeaseNotFound
		}
		c.t.del(keys)
		return nil
	})
}
