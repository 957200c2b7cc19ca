package workload

import (
	"slices"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// Kind is a workload, as --workload names it.
type Kind string

// The workloads, each defined in registry.
const (
	Register Kind = "register"
	Set      Kind = "set"
	Append   Kind = "append"
	Lease    Kind = "lease"
	Txn      Kind = "txn"
	// Kubernetes is etcd's keyspace as the Kubernetes API server drives it.
	Kubernetes Kind = "kubernetes"
)

// Def defines a workload: one row of the registry. The generator, the final reads, the
// spec's choices and the check a run's history gets all read it.
type Def struct {
	Kind Kind
	Doc  string
	// Model is the check its histories get.
	Model checker.Model
	// Mix is the share of each operation, by weight.
	Mix []Weighted
	// Prefix names its keys: r0, r1, … for registers.
	Prefix string
	// Rotate says that a key is retired after Config.OpsPerKey operations and a fresh
	// one takes its slot.
	Rotate bool
	// List says that its reads return a list (or a set) rather than a register's value.
	List bool

	// source, if set, makes the workload's operations in place of the keyed mix.
	source func(*Def, Config) source
	// final, if set, is the final read of a key in place of a read.
	final func(key string) op
}

// Weighted is one operation of a mix and its weight.
type Weighted struct {
	F      string
	Weight int
}

// Ops lists the operations the workload issues.
func (d *Def) Ops() []string {
	out := make([]string, len(d.Mix))
	for i, w := range d.Mix {
		out[i] = w.F
	}
	return out
}

var registry = []*Def{
	{Kind: Register, Doc: "single-key registers: read, write, compare-and-set; checked for linearizability",
		Model: checker.Register, Prefix: "r", Rotate: true,
		Mix: []Weighted{{history.OpRead, 50}, {history.OpWrite, 30}, {history.OpCAS, 20}}},
	{Kind: Set, Doc: "single-key sets: add, read; lost, unexpected and stale elements",
		// Set reads return the whole set, which only grows: keep them rare during the
		// run; the final reads are what the set checker relies on.
		Model: checker.Set, Prefix: "s", List: true,
		Mix: []Weighted{{history.OpRead, 1}, {history.OpAdd, 99}}},
	{Kind: Append, Doc: "single-key lists: append, read; linearizability and lost, duplicated or reordered appends",
		Model: checker.Append, Prefix: "a", Rotate: true, List: true,
		Mix: []Weighted{{history.OpRead, 50}, {history.OpAppend, 50}}},
	{Kind: Lease, Doc: "keys attached to leases: grant, put, keepalive, revoke, read; keys deleted before their lease's TTL allows",
		// Each key gets a lease of its own: a grant, then one put; the mix is what
		// follows, while the lease lives (see leaseSource).
		Model: checker.Lease, Prefix: "l", source: newLeaseSource,
		Mix: []Weighted{{history.OpRead, 50}, {history.OpKeepAlive, 40}, {history.OpRevoke, 6}, {opLapse, 2}}},
	{Kind: Txn, Doc: "list-append transactions of 1-4 reads and appends over a rotating keyspace; checked Elle-style for isolation anomalies",
		// A micro-operation's mix: half reads, half appends (see txnSource).
		Model: checker.Txn, Prefix: "t", Rotate: true, List: true, source: newTxnSource,
		Mix: []Weighted{{history.OpRead, 50}, {history.OpAppend, 50}}, final: finalTxnRead},
	{Kind: Kubernetes, Doc: "etcd's keyspace as Kubernetes uses it: creates, updates and deletes conditional on mod revision, gets, paginated lists at a revision, compaction; checked by replaying the writes in revision order",
		// Keys live under two resource prefixes (see kubernetesSource); about ten each.
		Model: checker.Keyspace, Prefix: "/registry/", source: newKubernetesSource, final: finalGet,
		// A compaction one operation in a thousand: every few seconds, at a few hundred a second.
		// A watch watches for half a second: a few in a hundred keep several open.
		Mix: []Weighted{{history.OpCreate, 80}, {history.OpUpdate, 450}, {history.OpDelete, 50}, {history.OpGet, 140}, {history.OpList, 249}, {history.OpWatch, 30}, {history.OpCompact, 1}}},
}

// Kinds returns every workload's definition.
func Kinds() []*Def { return slices.Clone(registry) }

// Names lists the workloads' names.
func Names() []string {
	out := make([]string, len(registry))
	for i, d := range registry {
		out[i] = string(d.Kind)
	}
	return out
}

// Lookup returns the workload named k.
func Lookup(k Kind) (*Def, bool) {
	i := slices.IndexFunc(registry, func(d *Def) bool { return d.Kind == k })
	if i < 0 {
		return nil, false
	}
	return registry[i], true
}
