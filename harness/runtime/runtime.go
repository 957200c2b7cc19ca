// Package runtime is the seam between faultline's runs and the places their nodes run in:
// the Runtime interface, what a runtime is asked to run (NodeCmd) and tells the node
// about where it runs (NodeEnv), what it can do (Abilities), and the registry of runtimes
// (Kind: --runtime's names, and how auto chooses). The implementations are its
// sub-packages, each registering itself: process (child processes, each in a network
// namespace of its own), docker (FROM-scratch containers on a bridge network of the
// run's) and memory (state in this process, for tests of the harness).
//
// A runtime runs programs; it knows no target. Whatever a system under test needs on its
// command line — addresses, ports, a data directory — the target writes from a NodeEnv,
// and the runtime only supplies the values: where a node binds and is reached, where its
// data lives. Adding a target changes nothing here.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness/runtime/vclock"
)

// NodeCmd is how one node is started: a program on this host, its arguments and extra
// environment. The runtime decides where it runs (a process in a namespace, a container
// holding the program) and collects its output in the node's log.
type NodeCmd struct {
	// Program is the path of the program on this host. The docker runtime puts it in the
	// node's image as /<base name of Program>, so a program that looks at its own name
	// (argv[0]) sees the same name in both runtimes.
	Program string
	// Args are the program's arguments (without the program itself).
	Args []string
	// Env is extra environment, KEY=VALUE: added to the harness's own for a process, the
	// whole environment of a container.
	Env []string
}

// Equal reports whether two commands start the same program the same way.
func (c NodeCmd) Equal(o NodeCmd) bool {
	return c.Program == o.Program && slices.Equal(c.Args, o.Args) && slices.Equal(c.Env, o.Env)
}

// NodeEnv is where a runtime puts one node: what a target writes the node's command
// line with.
type NodeEnv struct {
	// Name is the node's name (n1, n2, ...).
	Name string
	// DataDir is the node's data directory as the node sees it. It exists, and it
	// survives kills and restarts; only Runtime.Wipe empties it.
	DataDir string
	// Bind returns host:port the node should listen on for one of the ports the runtime
	// was prepared with.
	Bind func(port int) string
}

// Runtime runs the nodes of one test. The process and docker runtimes implement it, and
// the same target and nemesis code drive both.
//
// A runtime owns everything it creates for a run (processes, containers, namespaces,
// bridges, rules, data directories' mounts) and removes all of it in Close, which must be
// safe to call at any point, more than once, and with a cancelled context's parent (it
// uses its own). Node data directories are kept (they are the run's evidence).
type Runtime interface {
	// Name is "process" or "docker".
	Name() string
	// Prepare creates the run's network for these nodes, each listening on these ports
	// (in its own namespace). Nothing is started yet.
	Prepare(ctx context.Context, nodes []string, ports []int) error
	// Env says where node runs: its data directory and the addresses it binds.
	Env(node string) NodeEnv
	// HostPort is the address at which node's port can be reached, both from the harness
	// and from the other nodes.
	HostPort(node string, port int) string
	// Launch starts the node's program (again, after a kill: same data dir). A command
	// that differs from the node's last one (another program: an upgrade; other flags: a
	// re-added member) is started the same way, on the same data and address.
	Launch(ctx context.Context, node string, cmd NodeCmd) error
	// Kill stops the node at once (SIGKILL); its data stays.
	Kill(ctx context.Context, node string) error
	// Stop asks the node to shut down (SIGTERM), then kills it after a grace period.
	Stop(ctx context.Context, node string) error
	// Running reports whether the node's program is running (paused counts as running).
	Running(node string) bool
	// Pause freezes the node; Resume thaws it.
	Pause(ctx context.Context, node string) error
	Resume(ctx context.Context, node string) error
	// Wipe empties the node's data directory; the node must not be running.
	Wipe(ctx context.Context, node string) error
	// Abilities says what the runtime can do on this host (the same as its Kind's).
	Abilities() Abilities
	// Close stops every node and removes everything the run created.
	Close(ctx context.Context) error
}

// Abilities are what a runtime can do to its nodes on this host beyond running them
// (every runtime can kill, stop, pause and restart them), known before it starts
// anything: a run's plan is made of them.
type Abilities struct {
	// Partition says that each node's packets can be filtered by peer: partitions of any
	// shape. A NetworkRuntime has it when every node gets a network namespace and an
	// address of its own, where the harness filters; a Filter runtime filters itself.
	Partition bool
	// Isolate says that whole nodes can be taken off the network (with Partition, or an
	// Isolator's way): partitions that cut nodes off from all the others.
	Isolate bool
	// Links says that the run's link proxy can stand between the nodes' peer links
	// (a NetworkRuntime with a host address on the nodes' network): packet faults.
	Links bool
	// Why says why the runtime lacks what it lacks of the above.
	Why string
	// Disks says that the nodes' data directories are directories of this host
	// (HostDirs names them), and that a node sees there whatever is mounted on them
	// when it starts: the harness can put them on disks that lose power. DisksWhy says
	// why not.
	Disks    bool
	DisksWhy string
	// DataDirs says that the nodes' data directories are directories of this host
	// (HostDirs names them) the harness can read and write while a node is down: the
	// corrupt fault damages files there.
	DataDirs bool
	// Clock says that the runtime gives a node's processes clocks of their own (Clocker),
	// for any program; ClockWhy says why not.
	Clock    bool
	ClockWhy string
}

// Clocker is a runtime that can set the clocks of a node's processes (Abilities.Clock).
type Clocker interface {
	// SetClock gives the processes of running node the clocks c; the zero Clocks are
	// the true ones. A node started later starts with true clocks.
	SetClock(ctx context.Context, node string, c vclock.Clocks) error
}

// HostDirs is a runtime whose nodes' data directories are directories of this host
// (Abilities.Disks).
type HostDirs interface {
	// HostDataDir is the host directory that node sees as its NodeEnv.DataDir.
	HostDataDir(node string) string
}

// Filter is a runtime that filters its nodes' packets itself (an in-memory runtime);
// the harness filters a NetworkRuntime's in its namespaces.
type Filter interface {
	// Drop makes node drop the packets of peers (none: heals it); with reset, TCP is
	// refused with resets rather than dropped.
	Drop(ctx context.Context, node string, peers []string, reset bool) error
}

// Isolator is a runtime that can take whole nodes off the network (docker without
// access to the containers' namespaces: disconnecting them from the run's network).
type Isolator interface {
	// Isolate takes exactly these nodes off the network and puts the others back on.
	Isolate(ctx context.Context, nodes []string) error
}

// Kind is a runtime as --runtime names it, registered by its package.
type Kind struct {
	Name, Doc string
	// Auto is the runtime's rank for --runtime auto (the highest that Probe finds
	// usable is chosen); 0: only when named.
	Auto int
	// Probe says whether the runtime can run nodes here, and what it found or why not.
	Probe func(ctx context.Context) (ok bool, why string)
	// Abilities says what it can do here, before anything starts.
	Abilities func(ctx context.Context) Abilities
	// New makes the runtime of one run: runID marks what it creates, dir is the run's
	// directory (node logs under dir/nodes/<name>/, data under dir/data/<name>/).
	New func(runID, dir string) (Runtime, error)
}

var kinds []Kind

// Register adds a runtime kind; its package calls it in an init function.
func Register(k Kind) {
	if _, ok := Lookup(k.Name); ok {
		panic("runtime " + k.Name + " registered twice")
	}
	kinds = append(kinds, k)
	slices.SortStableFunc(kinds, func(a, b Kind) int { return b.Auto - a.Auto })
}

// Lookup returns the runtime kind named name.
func Lookup(name string) (Kind, bool) {
	i := slices.IndexFunc(kinds, func(k Kind) bool { return k.Name == name })
	if i < 0 {
		return Kind{}, false
	}
	return kinds[i], true
}

// Names lists the registered runtimes, those auto prefers first.
func Names() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.Name
	}
	return out
}

// Resolve says which runtime name stands for and why: itself, or for "auto" the
// registered runtime of highest rank whose Probe finds it usable here.
func Resolve(ctx context.Context, name string) (string, string, error) {
	if name != "auto" {
		if _, ok := Lookup(name); !ok {
			return "", "", fmt.Errorf("%q is not one of auto, %s", name, strings.Join(Names(), ", "))
		}
		return name, "asked for", nil
	}
	var whys []string
	for _, k := range kinds {
		if k.Auto == 0 {
			continue
		}
		ok, why := k.Probe(ctx)
		if ok {
			return k.Name, "auto: " + why, nil
		}
		whys = append(whys, k.Name+": "+why)
	}
	return "", "", fmt.Errorf("auto: no runtime can run here (%s)", strings.Join(whys, "; "))
}

// NetworkRuntime is a runtime that can partition its nodes: each node gets its own
// network namespace and address, and partitions are packet filters inside them.
type NetworkRuntime interface {
	Runtime
	// Addr is the node's own address (what its peers see as the packets' source).
	Addr(node string) netip.Addr
	// NetNS is the path of the node's network namespace (for nsenter --net), that of the
	// node's current incarnation.
	NetNS(node string) (string, error)
	// HostAddr is the harness's own address on the run's network, which every node can
	// reach (and where the link proxy listens); invalid when there is none.
	HostAddr() netip.Addr
}

// Markers every runtime puts on what it starts, so that `faultline clean` can tell a dead
// run's leftovers from a live run's nodes: RunEnv (in a node process's environment) names
// the run, HarnessEnv the pid of the harness that started it.
const (
	RunEnv     = "FAULTLINE_RUN"
	HarnessEnv = "FAULTLINE_HARNESS"
)

// StopGrace is how long Stop waits after SIGTERM before it SIGKILLs.
const StopGrace = 5 * time.Second

// Alive reports whether a process with this pid exists on this host.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
