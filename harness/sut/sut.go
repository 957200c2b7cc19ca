// Package sut (system under test) is the seam between faultline's runs and the systems
// they test, and the registry of targets. A target package registers a Factory: its
// name, its spec section (Options: its keys and flags, their validation, its known-unsafe
// settings, the capabilities it declares and the workloads its clients support), and how
// to make the Target of a run. The generic layers (spec, plan, report, campaign, bench,
// cmd) read the registry and name no target.
//
// A Target knows one system: how to start its node i (a runtime.NodeCmd written from the
// runtime's runtime.NodeEnv), when the cluster serves, who leads, and how the workloads'
// clients talk to it. It implements the nemesis capabilities its Options declare
// (nemesis.Clocker, Members, Upgrader, Maintainer, Snapshotter); optionally an
// end-of-run cross-member check (Consistency), io.Closer, and Failer.
//
// The targets are its sub-packages: raftnode (faultline's own node), etcd, and file (any
// system from a target file); builtin links them all. A target knows no runtime: it
// reaches its nodes through Env.
package sut

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Env is what a target knows of the cluster it is given: its nodes and how to reach
// them. It is fixed for the run; the functions may be called at any time, from any
// goroutine.
type Env struct {
	// Nodes are the node names (n1, n2, ...), in a stable order.
	Nodes []string
	// Reach is host:port at which the harness reaches node's port.
	Reach func(node string, port int) string
	// PeerReach is host:port at which the other nodes reach node's port: Reach, or the
	// run's link proxy in front of it when packet faults are on.
	PeerReach func(node string, port int) string
	// RunID is the run's id (for cluster tokens and the like); Dir the run's directory.
	RunID, Dir string
	// Logf writes a line to the run's log (never nil once given to a target).
	Logf func(format string, args ...any)
	// LogTail returns the last lines of a node's log, for an error that says why a node
	// never became ready (nil: none).
	LogTail func(node string) string
	// OpTimeout is the workloads' op timeout (0: workload.DefaultOpTimeout).
	OpTimeout time.Duration
}

// Target is a system under test, made for one run by its Options.
type Target interface {
	// Name is the target's name, as --target gives it (raftnode, etcd), or the system's
	// in a target file.
	Name() string
	// Ports are the ports every node listens on, in its own namespace.
	Ports() []int
	// Peers says how nodes talk to each other, for the link proxy.
	Peers() Peers
	// Node returns the command that starts node now (its first start, a restart after a
	// kill, the start of a re-added member), where the runtime places it.
	Node(env runtime.NodeEnv) runtime.NodeCmd
	// Ready returns nil when the cluster serves: every node answers, they agree on a
	// leader, and a write through it is acknowledged. It tries once; the caller polls.
	Ready(ctx context.Context) error
	// Leader returns the node most of the nodes that answer follow ("" if none), and an
	// error only when no node answered.
	Leader(ctx context.Context) (string, error)
	// Opener returns the workloads' client opener; each operation is bounded by opTimeout.
	Opener(opTimeout time.Duration) workload.Opener
	// Describe is what test.json records of the target.
	Describe() results.TargetInfo
}

// Peers is how a target's nodes talk to each other, for the link proxy.
type Peers struct {
	// Port is the port peers connect to.
	Port int
	// Messages says that peers send each other one-way HTTP POSTs whose answers carry
	// nothing (raftnode): the proxy may then delay, drop, duplicate and reorder messages.
	// Otherwise (etcd's long-lived streams) the proxy works on TCP streams: delay, limited
	// throughput, blackholes.
	Messages bool
}

// Consistency is a target with an end-of-run check across members (e.g. etcd's HashKV
// at one revision on every member), run after the final reads on the healed cluster.
type Consistency interface {
	Consistent(ctx context.Context) ConsistencyResult
}

// ConsistencyResult is what a Consistency check found. Valid nil means it could not
// tell (some member did not answer): never a pass.
type ConsistencyResult struct {
	Name   string `json:"name"`
	Valid  *bool  `json:"valid"`
	Detail string `json:"detail"`
}

// ReadyBudget is a target that says how long its cluster's first readiness may take
// (a target file's ready.timeout): the harness waits that long (and a little more, so
// that the target's own account of what was not ready comes first) instead of its
// default. 0: the default.
type ReadyBudget interface {
	ReadyTimeout() time.Duration
}

// Failer is a target that can fail for good while the run goes on (a target file's
// client shim that died or answered garbage): Failed is closed then, and Failure says
// why. The run stops and reports the failure.
type Failer interface {
	Failed() <-chan struct{}
	Failure() error
}

// Factory is one kind of target, registered by its package (Register).
type Factory struct {
	Name, Doc string
	// Options returns a fresh spec section with its defaults.
	Options func() Options
	// Default marks the target --target takes when none is named.
	Default bool
}

// Options is a target's section of a spec: a pointer to a struct whose fields carry
// yaml and json tags, its keys under the target's name in a spec file
// ("etcd: {version: v3.7.3}") and in test.json. Its flags keep the names users know
// (--etcd-version), and a spec file may give them as top-level keys too
// (etcd-version: v3.7.3).
type Options interface {
	// Flags binds the section's flags to it.
	Flags(fs *flag.FlagSet)
	// Given reports whether the section says anything its defaults do not: a section
	// given for a target that does not run is a usage error, and a section given alone
	// picks its target when --target names none.
	Given() bool
	// Resolve checks the section for a run of c and fills in what follows from it. An
	// error is a usage error: it names the key.
	Resolve(c Common) error
	// Label is the test's default name: the target's name, or the system's in a file.
	Label() string
	// KnownUnsafe names the settings known to break the system's guarantees ("" for
	// none): a campaign expects such a run to be caught.
	KnownUnsafe() string
	// Args are the flags that give the section again (a replay's command line).
	Args() []string
	// Caps declares what a target made of the section can do for the nemesis, and for
	// what it cannot, why: capabilities it has, the target implements.
	Caps() nemesis.Caps
	// Workloads are the workloads the target's clients support.
	Workloads() []workload.Kind
	// Prepare gets what the target needs before any node or run directory exists (a
	// binary to build), printing progress; a bad option found only then (a release that
	// does not exist) is a *results.UsageError.
	Prepare(ctx context.Context, progress func(string)) error
	// New makes the target of a run's nodes, after Prepare.
	New(env Env) (Target, error)
}

// Common is what a target's Options may check against: the rest of the spec.
type Common struct {
	Nodes    int
	Workload workload.Kind
}

var factories []Factory

// Register adds a target; its package calls it in an init function.
func Register(f Factory) {
	if _, ok := Lookup(f.Name); ok {
		panic("target " + f.Name + " registered twice")
	}
	if f.Default && slices.ContainsFunc(factories, func(g Factory) bool { return g.Default }) {
		panic("two default targets")
	}
	factories = append(factories, f)
}

// Lookup returns the target named name.
func Lookup(name string) (Factory, bool) {
	i := slices.IndexFunc(factories, func(f Factory) bool { return f.Name == name })
	if i < 0 {
		return Factory{}, false
	}
	return factories[i], true
}

// Factories lists the registered targets, in the order they registered.
func Factories() []Factory { return slices.Clone(factories) }

// Names lists the registered targets' names.
func Names() []string {
	out := make([]string, len(factories))
	for i, f := range factories {
		out[i] = f.Name
	}
	return out
}

// Default is the name of the target --target takes when none is named ("" when no
// registered target is the default).
func Default() string {
	for _, f := range factories {
		if f.Default {
			return f.Name
		}
	}
	return ""
}

// Supports says why a target whose Options are o cannot run workload w ("" when it can).
func Supports(o Options, w workload.Kind) string {
	ws := o.Workloads()
	if slices.Contains(ws, w) {
		return ""
	}
	names := make([]string, len(ws))
	for i, k := range ws {
		names[i] = string(k)
	}
	why := fmt.Sprintf("its clients support %s", strings.Join(names, ", "))
	var can []string
	for _, f := range factories {
		fo := f.Options()
		switch m, ok := fo.(Maybe); {
		case slices.Contains(fo.Workloads(), w):
			can = append(can, "--target "+f.Name)
		case ok && m.MayRun(w) != "":
			can = append(can, m.MayRun(w))
		}
	}
	if len(can) > 0 {
		why += fmt.Sprintf("; %s runs on %s", w, strings.Join(can, ", "))
	}
	return why
}

// Maybe is a target's Options whose workloads depend on what it is given (a target
// file's client protocol): MayRun says on what terms it runs workload w ("" never).
type Maybe interface {
	MayRun(w workload.Kind) string
}

var programs = map[string]func(args []string) int{}

// RegisterProgram makes faultline's binary run main when it is called by name (argv[0]):
// one static binary carries the harness and the node programs of targets that are
// faultline's own, for the runtimes to start.
func RegisterProgram(name string, main func(args []string) int) { programs[name] = main }

// ProgramNames lists the registered programs.
func ProgramNames() []string { return slices.Sorted(maps.Keys(programs)) }

// Program returns the main of the program named name, if a target registered one.
func Program(name string) (func(args []string) int, bool) {
	m, ok := programs[name]
	return m, ok
}

// Poll calls f every interval until it returns nil or ctx ends; then it returns f's last
// error joined with ctx's.
func Poll(ctx context.Context, interval time.Duration, f func(context.Context) error) error {
	for {
		err := f(ctx)
		if err == nil {
			return nil
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// MostNamed returns the id named most often among ids, ignoring 0 (none), the lowest on
// a tie; 0 when none is named: who most nodes say leads.
func MostNamed(ids []uint64) uint64 {
	votes := map[uint64]int{}
	for _, id := range ids {
		if id != 0 {
			votes[id]++
		}
	}
	best, bestVotes := uint64(0), 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	return best
}

// Files is a target that names its nodes' data files, by kind, as globs relative to a
// node's data directory (etcd's log is "member/wal/*.wal"). Its Options declare
// nemesis.FileKind.Cap for the kinds it names; the corrupt fault damages them.
type Files interface {
	FileGlobs(kind nemesis.FileKind) []string
}
