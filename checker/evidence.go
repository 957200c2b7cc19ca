package checker

import (
	"fmt"
	"strings"

	"github.com/faultline/faultline/history"
)

// DefaultMinEvidence is the evidence floor when Options.MinEvidence is not set: one
// acknowledged update and one acknowledged read.
const DefaultMinEvidence = 1

// The evidence a history holds, by workload. An update is an operation that may have
// changed a key: for register, a write or a cas; for append, an append; for set, an add.
// It is acknowledged when it ended ok. A read is acknowledged when it ended ok with a
// value the model can check; for register, a cas that succeeded is a read too (the
// checker holds it to the value it expected). Only what the checker checks counts: a
// fail never took effect, and a cas that failed with history.Mismatch is left out of
// the model as Jepsen's checkers leave every fail out, so it is no evidence either.
//
// The floor (Options.MinEvidence) is over the whole history: fewer acknowledged
// updates or fewer acknowledged reads than it, and the verdict is unknown (never valid:
// a cluster that never served passes nothing). Per key, there is no count to reach —
// many keys of a real run rightly get only a few operations — but a key with updates
// (acknowledged or indeterminate) and no acknowledged read proves nothing about that
// key, and makes the verdict unknown too (see LinResult.UnreadKeys and
// SetResult.NoFinalRead). faultline's harness reads every key it touched after healing,
// so a run meets this unless its cluster stopped serving.
type evidence struct {
	updates, reads int // acknowledged, and of a shape the model checks
	ops            opCounts
}

// opCounts counts the client operations of a history by how they ended.
type opCounts struct{ total, ok, fail, info int }

// modelOf names the inner model (or checker) that judges a model's keys.
func modelOf(m Model) string {
	switch m {
	case Append:
		return "list"
	case Register, Set, Lease, Txn, Keyspace:
		return string(m)
	}
	return ""
}

// isUpdate reports whether o may have changed its key (o is not a fail), in a form the
// model reads.
func isUpdate(model string, o *op) bool {
	switch model {
	case "register":
		return o.f == history.OpWrite && o.in.Kind == history.Str || o.f == history.OpCAS && o.in.Kind == history.List && len(o.in.L) == 2
	case "list":
		return o.f == history.OpAppend && o.in.Kind == history.Str
	case "set":
		return o.f == history.OpAdd && o.in.Kind == history.Str
	case "lease":
		return o.f == history.OpPut && o.in.Kind == history.List && len(o.in.L) == 2
	case "txn":
		return o.f == history.OpTxn && o.in.Kind == history.Txn && hasMop(o.in.T, history.MopAppend)
	case "keyspace":
		return o.f == history.OpCreate || o.f == history.OpUpdate || o.f == history.OpDelete
	}
	return false
}

// isAckedRead reports whether o is an acknowledged read whose value the model checks.
func isAckedRead(model string, o *op) bool {
	if o.status != history.OK {
		return false
	}
	switch model {
	case "register":
		return o.f == history.OpRead && o.out.Kind != history.List || o.f == history.OpCAS && o.in.Kind == history.List && len(o.in.L) == 2
	case "list", "set":
		return o.f == history.OpRead && o.out.Kind != history.Str
	case "lease":
		return o.f == history.OpRead && o.out.Kind != history.List
	case "txn":
		return o.f == history.OpTxn && o.out.Kind == history.Txn && hasMop(o.out.T, history.MopRead)
	case "keyspace":
		return (o.f == history.OpGet || o.f == history.OpList) && o.out.Kind == history.List
	}
	return false
}

// keyEvidence counts one key's acknowledged updates and reads, and every update that
// may have taken effect. ops are the key's operations that are not fails.
func keyEvidence(model string, ops []*op) (ackedUpdates, ackedReads, updates int) {
	for _, o := range ops {
		if o.guessed != "" {
			continue
		}
		if isUpdate(model, o) {
			updates++
			if o.status == history.OK {
				ackedUpdates++
			}
		}
		if isAckedRead(model, o) {
			ackedReads++
		}
	}
	return ackedUpdates, ackedReads, updates
}

// gatherEvidence counts the evidence of the whole history for the workload's model.
func gatherEvidence(model string, ops []op) evidence {
	var ev evidence
	for i := range ops {
		o := &ops[i]
		ev.ops.total++
		switch o.status {
		case history.OK:
			ev.ops.ok++
		case history.Fail:
			ev.ops.fail++
			continue
		default:
			ev.ops.info++
		}
		u, r, _ := keyEvidence(model, []*op{o})
		ev.updates += u
		ev.reads += r
	}
	return ev
}

// shortfall says how the evidence falls short of the floor, or "" when it does not.
func (ev evidence) shortfall(model string, floor int) string {
	if ev.ops.total == 0 {
		return "no client operations in the history"
	}
	update := map[string]string{"register": history.OpWrite, "list": history.OpAppend, "set": history.OpAdd, "lease": history.OpPut, "txn": "transaction with an append", "keyspace": "write"}[model]
	if update == "" {
		update = "update"
	}
	var parts []string
	for _, c := range []struct {
		n    int
		noun string
	}{{ev.updates, update}, {ev.reads, history.OpRead}} {
		switch {
		case c.n >= floor:
		case c.n == 0:
			parts = append(parts, "no acknowledged "+c.noun)
		default:
			parts = append(parts, fmt.Sprintf("only %d acknowledged %s, want at least %d", c.n, plural(c.n, c.noun, c.noun+"s"), floor))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	var how []string
	if ev.ops.fail > 0 {
		how = append(how, fmt.Sprintf("%d failed", ev.ops.fail))
	}
	if ev.ops.info > 0 {
		how = append(how, fmt.Sprintf("%d indeterminate", ev.ops.info))
	}
	s := fmt.Sprintf("%s: %d of %d ops were acknowledged", strings.Join(parts, " and "), ev.ops.ok, ev.ops.total)
	if len(how) > 0 && ev.ops.ok < ev.ops.total {
		s += " (" + strings.Join(how, ", ") + ")"
	}
	return s
}

// unreadReason names the keys that were written and never read.
func unreadReason(keys []string) Reason {
	return Reason{Code: ReasonUnreadKeys, Detail: fmt.Sprintf("%d %s written but never read (%s): nothing is known of %s",
		len(keys), plural(len(keys), "key was", "keys were"), abbreviateKeys(keys, 5), plural(len(keys), "it", "them"))}
}

// abbreviateKeys lists the first n keys, quoted, and how many more there are.
func abbreviateKeys(keys []string, n int) string {
	q := make([]string, 0, min(n, len(keys)))
	for _, k := range keys[:min(n, len(keys))] {
		q = append(q, fmt.Sprintf("%q", k))
	}
	s := strings.Join(q, ", ")
	if len(keys) > n {
		s += fmt.Sprintf(" and %d more", len(keys)-n)
	}
	return s
}

// hasMop reports whether a transaction has a micro-operation f.
func hasMop(mops []history.Mop, f string) bool {
	for _, m := range mops {
		if m.F == f {
			return true
		}
	}
	return false
}
