// Package memory is a runtime whose nodes are state in this process: no processes,
// containers, namespaces or root. It records what a run does to its nodes — launches,
// kills, stops, pauses, wipes, the packets each node drops — in a World that a
// simulated target (harness/sut/sim) serves its clients from, so that a run's whole
// lifecycle (plan, schedule, heal on every path, interrupts, final reads, verdicts,
// exit codes) is tested in milliseconds, and inside a testing/synctest bubble on
// synthetic time. It is registered as --runtime memory for the programs that import it
// (tests); auto never picks it.
package memory

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/faultline/faultline/harness/runtime"
)

// Name is the runtime's name.
const Name = "memory"

func init() {
	runtime.Register(runtime.Kind{Name: Name, Doc: "nodes as state in this process, for tests of the harness (with the sim target)",
		Probe:     func(context.Context) (bool, string) { return true, "in this process" },
		Abilities: func(context.Context) runtime.Abilities { return abilities },
		New:       func(runID, dir string) (runtime.Runtime, error) { return New(runID, dir), nil },
	})
}

var abilities = runtime.Abilities{Partition: true, Isolate: true,
	Why:      "the in-memory runtime's nodes exchange no packets a link proxy could stand between",
	DisksWhy: "the in-memory runtime's nodes keep their state in memory, on no disk"}

// Node is one node's state.
type Node struct {
	// Cmd is the command it was last launched with; Launches counts its launches.
	Cmd      runtime.NodeCmd
	Launches int
	// Running: launched and neither killed nor stopped since; Paused: frozen.
	Running, Paused bool
	// Drops are the peers whose packets it drops.
	Drops []string
	// Wipes counts the wipes of its data.
	Wipes int
}

// World is the nodes of one run as the runtime has left them. Its methods are safe for
// concurrent use; Wait returns a channel closed at the next change.
type World struct {
	mu      sync.Mutex
	nodes   map[string]*Node
	names   []string
	changed chan struct{}
	closed  bool
	log     []string // every change, in order: "kill n1", "drop n2 n1,n3", "close"
}

// Log returns every change made to the nodes, in order ("launch n1", "pause n2",
// "drop n3 n1,n2", "drop n3", "close"): what a test reads to see that every fault was
// healed before the runtime closed.
func (w *World) Log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.log)
}

// Node returns a copy of node's state.
func (w *World) Node(node string) Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n, ok := w.nodes[node]; ok {
		c := *n
		c.Drops = slices.Clone(n.Drops)
		return c
	}
	return Node{}
}

// Names lists the nodes, in order.
func (w *World) Names() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.names)
}

// Reaches reports whether a's packets reach b and b's reach a: neither drops the other.
func (w *World) Reaches(a, b string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	na, nb := w.nodes[a], w.nodes[b]
	if na == nil || nb == nil {
		return false
	}
	return a == b || !slices.Contains(na.Drops, b) && !slices.Contains(nb.Drops, a)
}

// Wait returns a channel that is closed at the next change of any node's state.
func (w *World) Wait() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// update applies f to node's state, logs what (with node), and wakes every waiter.
func (w *World) update(node, what string, f func(n *Node) error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("memory runtime: closed")
	}
	n, ok := w.nodes[node]
	if !ok {
		return fmt.Errorf("memory runtime: no node %q", node)
	}
	if err := f(n); err != nil {
		return err
	}
	w.log = append(w.log, strings.TrimSpace(strings.Replace(what, "%s", node, 1)))
	close(w.changed)
	w.changed = make(chan struct{})
	return nil
}

var (
	worldsMu sync.Mutex
	worlds   = map[string]*World{}
)

// Lookup returns the World of the run runID (also once its runtime is closed: a test
// reads what the run left).
func Lookup(runID string) (*World, bool) {
	worldsMu.Lock()
	defer worldsMu.Unlock()
	w, ok := worlds[runID]
	return w, ok
}

// Runtime is the in-memory runtime of one run.
type Runtime struct {
	runID, dir string
	world      *World
}

var (
	_ runtime.Runtime = (*Runtime)(nil)
	_ runtime.Filter  = (*Runtime)(nil)
)

// New returns the runtime of run runID; dir is the run's directory (its nodes' data
// directories are made under dir/data/).
func New(runID, dir string) *Runtime {
	w := &World{nodes: map[string]*Node{}, changed: make(chan struct{})}
	worldsMu.Lock()
	worlds[runID] = w
	worldsMu.Unlock()
	return &Runtime{runID: runID, dir: dir, world: w}
}

// World returns the runtime's nodes.
func (r *Runtime) World() *World { return r.world }

// Name implements runtime.Runtime.
func (r *Runtime) Name() string { return Name }

// Abilities implements runtime.Runtime.
func (r *Runtime) Abilities() runtime.Abilities { return abilities }

// Prepare implements runtime.Runtime.
func (r *Runtime) Prepare(_ context.Context, nodes []string, _ []int) error {
	r.world.mu.Lock()
	defer r.world.mu.Unlock()
	for _, n := range nodes {
		if err := os.MkdirAll(r.Env(n).DataDir, 0o755); err != nil {
			return fmt.Errorf("memory runtime: %w", err)
		}
		r.world.nodes[n] = &Node{}
	}
	r.world.names = slices.Clone(nodes)
	return nil
}

// Env implements runtime.Runtime: a node binds nothing.
func (r *Runtime) Env(node string) runtime.NodeEnv {
	return runtime.NodeEnv{Name: node, DataDir: filepath.Join(r.dir, "data", node),
		Bind: func(port int) string { return fmt.Sprintf("%s:%d", node, port) }}
}

// HostPort implements runtime.Runtime: a name, never dialled.
func (r *Runtime) HostPort(node string, port int) string { return fmt.Sprintf("%s:%d", node, port) }

// Launch implements runtime.Runtime.
func (r *Runtime) Launch(_ context.Context, node string, cmd runtime.NodeCmd) error {
	return r.world.update(node, "launch %s", func(n *Node) error {
		if n.Running {
			return fmt.Errorf("launch %s: already running", node)
		}
		n.Cmd, n.Running, n.Paused = cmd, true, false
		n.Launches++
		return nil
	})
}

// Kill implements runtime.Runtime.
func (r *Runtime) Kill(_ context.Context, node string) error {
	return r.world.update(node, "kill %s", func(n *Node) error { n.Running, n.Paused = false, false; return nil })
}

// Stop implements runtime.Runtime.
func (r *Runtime) Stop(_ context.Context, node string) error {
	return r.world.update(node, "stop %s", func(n *Node) error { n.Running, n.Paused = false, false; return nil })
}

// Running implements runtime.Runtime.
func (r *Runtime) Running(node string) bool { return r.world.Node(node).Running }

// Pause implements runtime.Runtime.
func (r *Runtime) Pause(_ context.Context, node string) error {
	return r.world.update(node, "pause %s", func(n *Node) error {
		if !n.Running {
			return fmt.Errorf("pause %s: not running", node)
		}
		n.Paused = true
		return nil
	})
}

// Resume implements runtime.Runtime.
func (r *Runtime) Resume(_ context.Context, node string) error {
	return r.world.update(node, "resume %s", func(n *Node) error { n.Paused = false; return nil })
}

// Wipe implements runtime.Runtime.
func (r *Runtime) Wipe(_ context.Context, node string) error {
	return r.world.update(node, "wipe %s", func(n *Node) error {
		if n.Running {
			return fmt.Errorf("wipe %s: running", node)
		}
		n.Wipes++
		return nil
	})
}

// Drop implements runtime.Filter.
func (r *Runtime) Drop(_ context.Context, node string, peers []string, _ bool) error {
	return r.world.update(node, "drop %s "+strings.Join(peers, ","), func(n *Node) error { n.Drops = slices.Clone(peers); return nil })
}

// Close implements runtime.Runtime: every node stopped and its filters gone.
func (r *Runtime) Close(context.Context) error {
	w := r.world
	w.mu.Lock()
	if !w.closed {
		for _, n := range w.nodes {
			n.Running, n.Paused, n.Drops = false, false, nil
		}
		w.closed = true
		w.log = append(w.log, "close")
		close(w.changed)
		w.changed = make(chan struct{})
	}
	w.mu.Unlock()
	return nil
}

// Closed reports whether the runtime was closed: what a test checks a run left behind.
func (w *World) Closed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.closed
}

// Snapshot returns every node's state, for a test's assertions.
func (w *World) Snapshot() map[string]Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]Node, len(w.nodes))
	for k, n := range maps.All(w.nodes) {
		c := *n
		c.Drops = slices.Clone(n.Drops)
		out[k] = c
	}
	return out
}
