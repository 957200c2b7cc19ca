package harness

import (
	"context"
	"net/netip"
)

// NodeCmd is how a target's node is started: its program and arguments. The runtime
// decides where (a process in a namespace, a container) and collects its output.
type NodeCmd struct {
	Args []string
}

// Runtime runs the nodes of one test. The process and docker runtimes implement it, and
// the same target and nemesis code drive both.
//
// A runtime owns everything it creates for a run (processes, containers, namespaces,
// bridges, rules) and removes all of it in Close, which must be safe to call at any
// point, more than once, and with a cancelled context's parent (it uses its own).
type Runtime interface {
	// Name is "process" or "docker".
	Name() string
	// Prepare creates the run's network for these nodes. Nothing is started yet.
	Prepare(ctx context.Context, nodes []string) error
	// HostPort is the address at which node's port can be reached, both from the harness
	// and from the other nodes.
	HostPort(node string, port int) string
	// Launch starts the node's program (again, after a kill: same data dir).
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
	// Unavailable names the fault kinds this runtime cannot inject, with the reason.
	Unavailable() map[string]string
	// Close stops every node and removes everything the run created.
	Close(ctx context.Context) error
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
