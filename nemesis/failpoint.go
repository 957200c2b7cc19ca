package nemesis

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// Failpoint is a point in a node's program where the failpoint fault can crash or stall
// it: a gofail failpoint (go.etcd.io/gofail) compiled into the program.
type Failpoint struct {
	Name string
	// Trigger is what makes the program reach the point besides the workload's writes:
	// TriggerNone, TriggerDefrag, TriggerCompact (the fault runs it where the cluster has
	// maintenance).
	Trigger Trigger
}

// Trigger is an operation that makes a program reach a failpoint.
type Trigger string

// The triggers.
const (
	TriggerNone    Trigger = ""
	TriggerDefrag  Trigger = "defrag"
	TriggerCompact Trigger = "compact"
)

// Failpointer arms and disarms the failpoints of nodes' programs.
type Failpointer interface {
	// Failpoints are the points of node's program the run may use.
	Failpoints(ctx context.Context, node string) ([]Failpoint, error)
	// SetFailpoint arms name on node with a gofail term: `panic("why")`, "sleep(500)".
	// Armed with a panic, node is expected to exit: its exit is the fault's.
	SetFailpoint(ctx context.Context, node, name, term string) error
	// ClearFailpoint disarms name on node; on a node that is down (it crashed there)
	// nothing is armed any more, and it is no error.
	ClearFailpoint(ctx context.Context, node, name string) error
}

// failpoint crashes or stalls a node at an exact point of its program: the way etcd's
// robustness tests reach the bugs that hide between two writes (a crash after the WAL
// save and before the commit, in the middle of a defragmentation). A panic takes the node
// down the moment it gets there (the fault waits for it, running the maintenance that
// reaches a defrag or compaction point), and the heal starts it again on its data; a
// sleep holds every pass through the point until the heal. A point the node never
// reaches in time is noted (failpoint-missed) and disarmed: the turn did nothing.
var failpointDef = &Def{
	Kind: FailpointKind, Doc: "crash a node at an exact point of its program (a gofail panic) and restart it at the heal, or stall it there (a sleep) until the heal",
	Needs: []Capability{CapKill, CapFailpoints},
	Uses:  []Capability{CapMaintain},
	Variants: []Variant{
		{Name: "panic-one", Weight: 1, Doc: "crash a random node at a random failpoint"},
		{Name: "panic-leader", Weight: 2, Doc: "crash the leader at a random failpoint"},
		{Name: "panic-follower", Weight: 1, Doc: "crash a follower at a random failpoint", MinNodes: 2},
		{Name: "sleep-one", Weight: 0, Doc: "stall a random node at a random failpoint"},
		{Name: "sleep-leader", Weight: 1, Doc: "stall the leader at a random failpoint"},
		{Name: "sleep-follower", Weight: 1, Doc: "stall a follower at a random failpoint", MinNodes: 2},
	},
	Start: "failpoint", End: "failpoint-heal", Verb: "crashed or stalled at a failpoint", Healed: "restarted or released",
	Family: "kill", Color: "#7d74b8",
	Timeout: func(int) time.Duration { return HealTimeout + fireWait },
	Inject:  injectFailpoint,
}

// fireWait bounds the wait for an armed panic to fire.
const fireWait = 15 * time.Second

// sleeps are the stalls a sleep variant draws from.
var sleeps = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

func injectFailpoint(ctx context.Context, env Env, v Variant) (Injection, error) {
	action, who, _ := strings.Cut(v.Name, "-")
	node, err := failpointNode(ctx, env, who)
	if err != nil {
		return Injection{}, err
	}
	fps, err := env.Powers.Failpoints.Failpoints(ctx, node)
	if err != nil {
		return Injection{}, fmt.Errorf("failpoint: %s: %w", node, err)
	}
	if len(fps) == 0 {
		return Injection{}, fmt.Errorf("failpoint: %s has no failpoints to use", node)
	}
	fp := fps[env.Rand.IntN(len(fps))]
	fpc := env.Powers.Failpoints
	if action == "sleep" {
		d := sleeps[env.Rand.IntN(len(sleeps))]
		term := fmt.Sprintf("sleep(%d)", d.Milliseconds())
		if err := arm(ctx, fpc, node, fp.Name, term); err != nil {
			return Injection{}, fmt.Errorf("failpoint: %s on %s: %w", fp.Name, node, err)
		}
		env.note("failpoint-armed", node, fp.Name+"="+term)
		go func() { // the stall outlives the injection's context
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fireWait)
			defer cancel()
			trigger(tctx, env, node, fp.Trigger)
		}()
		heal := func(ctx context.Context) error { return fpc.ClearFailpoint(ctx, node, fp.Name) }
		return Injection{Nodes: []string{node}, Value: history.S1(v.Name + " " + fp.Name + "=" + term), Heal: heal}, nil
	}
	term := fmt.Sprintf("panic(%q)", "faultline failpoint "+fp.Name)
	if err := arm(ctx, fpc, node, fp.Name, term); err != nil {
		return Injection{}, fmt.Errorf("failpoint: %s on %s: %w", fp.Name, node, err)
	}
	env.note("failpoint-armed", node, fp.Name+"="+term)
	k := env.Powers.Nodes
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline := time.Now().Add(fireWait)
	go trigger(tctx, env, node, fp.Trigger)
	for k.Running(node) && time.Now().Before(deadline) && Sleep(ctx, 50*time.Millisecond) {
	}
	value := history.S1(v.Name + " " + fp.Name)
	if k.Running(node) {
		err := fpc.ClearFailpoint(context.WithoutCancel(ctx), node, fp.Name)
		env.note("failpoint-missed", node, fp.Name+" was not reached in "+fireWait.String())
		if err != nil {
			return Injection{}, fmt.Errorf("failpoint: disarm %s on %s: %w", fp.Name, node, err)
		}
		return Injection{Nodes: []string{node}, Value: value, Heal: healed}, nil
	}
	env.note("failpoint-crashed", node, exitLine(k.LogTail(node)))
	_ = fpc.ClearFailpoint(ctx, node, fp.Name) // down: nothing is armed any more
	heal := func(ctx context.Context) error { return k.Start(ctx, node) }
	return Injection{Nodes: []string{node}, Value: value, Heal: heal}, nil
}

// armWait is how long arming a failpoint is retried: a node the nemesis started a
// moment ago (the heal of the fault before) may not serve gofail's endpoint yet.
const armWait = 10 * time.Second

// arm sets the failpoint name to term on node, retrying within armWait.
func arm(ctx context.Context, fpc Failpointer, node, name, term string) error {
	deadline := time.Now().Add(armWait)
	for {
		err := fpc.SetFailpoint(ctx, node, name, term)
		if err == nil || !time.Now().Before(deadline) || !Sleep(ctx, 200*time.Millisecond) {
			return err
		}
	}
}

// failpointNode is the node a variant acts on: the combination's focus (its first
// node), the leader, a follower, or any node (pickNodes).
func failpointNode(ctx context.Context, env Env, who string) (string, error) {
	nodes, err := pickNodes(ctx, env, who)
	if err != nil {
		return "", err
	}
	return nodes[0], nil
}

// trigger runs what makes node reach a point of trigger's kind, where the cluster has
// maintenance; its errors are the node's crash, or nothing the fault depends on.
func trigger(ctx context.Context, env Env, node string, t Trigger) {
	m := env.Powers.Maintain
	if m == nil {
		return
	}
	switch t {
	case TriggerDefrag:
		_ = m.Defragment(ctx, node)
	case TriggerCompact:
		rev, err := m.Compact(ctx)
		noteCompact(env, rev, err)
	}
}

// noteCompact records a compaction the nemesis made (history.NemesisCompact) or asked
// for without an answer (history.NemesisCompactAsked): the keyspace check must know
// what was compacted besides the workload's own compactions.
func noteCompact(env Env, rev int64, err error) {
	switch {
	case rev <= 0:
	case err == nil:
		env.note(history.NemesisCompact, "", fmt.Sprint(rev))
	default:
		env.note(history.NemesisCompactAsked, "", fmt.Sprint(rev))
	}
}
