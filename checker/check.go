package checker

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/faultline/faultline/history"
)

// Model names the check a history gets: what each key is judged as. A workload names
// the model of its histories (workload's registry).
type Model string

// The models Check knows.
const (
	// Register: each key a register (read, write, cas), checked for linearizability.
	Register Model = "register"
	// Append: each key a list (read, append), checked for linearizability and for lost,
	// duplicated and reordered appends.
	Append Model = "append"
	// Set: each key a set (add, read), checked for lost, unexpected and stale elements.
	Set Model = "set"
	// Lease: each key attached to a lease (grant, put, keepalive, revoke, read), checked
	// for keys deleted and leases ended before their TTL allows (LeaseResult).
	Lease Model = "lease"
	// Txn: list-append transactions (txn), checked Elle-style for dependency cycles and
	// the anomalies that need none (TxnResult).
	Txn Model = "txn"
	// Keyspace: etcd's keyspace as Kubernetes uses it (conditional create, update and
	// delete, get, paginated list at a revision, compaction), checked by replaying the
	// writes in revision order (KeyspaceResult).
	Keyspace Model = "keyspace"
)

// Models lists the models Check knows.
func Models() []Model { return []Model{Register, Append, Set, Lease, Txn, Keyspace} }

// Options says how to check a history.
type Options struct {
	// Model is the check; empty guesses it from the operations.
	Model Model
	// Timeout bounds the linearizability search (zero: no bound but ctx). Keys not
	// decided in time make the verdict unknown.
	Timeout time.Duration
	// MinEvidence is the evidence floor: the history must hold at least this many
	// acknowledged updates (writes or successful cas; appends; adds) and as many
	// acknowledged reads, or its verdict is unknown, never valid (see evidence for what
	// counts). Below 1 (the zero value) it is DefaultMinEvidence: no evidence is never a
	// pass. The floor is over the whole history; per key, a key with updates and no
	// acknowledged read makes the verdict unknown as well, whatever the floor.
	MinEvidence int
	// MinAvailability is the share of completed operations the system must have
	// answered for the verdict to rest on enough (below it: a warning,
	// WarnLowAvailability, whatever the verdict). 0: DefaultMinAvailability; negative:
	// none.
	MinAvailability float64
}

// DefaultMinAvailability is Options.MinAvailability's default: half.
const DefaultMinAvailability = 0.5

// maxNotes bounds Result.Notes; a history malformed throughout says so soon enough.
const maxNotes = 100

// Check judges a history. It never fails: what it cannot judge makes the verdict
// unknown, with the reasons in Result.UnknownBecause, and what it had to forgive is in
// Result.Notes. A verdict is valid only if every checker found the history valid, the
// history holds the evidence Options.MinEvidence asks for, every key with updates was
// read, and no operation had to be left out as uninterpretable. An invalid verdict is
// never made unknown: a violation found is real.
func Check(ctx context.Context, events []history.Event, opts Options) Result {
	return CheckHistory(ctx, Pair(events), opts)
}

// CheckHistory is Check of a paired history. It does not change h.
func CheckHistory(ctx context.Context, h *History, opts Options) (res Result) {
	start := time.Now()
	p := h.p
	res = Result{Model: opts.Model, Notes: p.notes}
	if res.Model == "" {
		res.Model = guessModel(p.ops)
	}
	stats := make(chan Stats, 1) // the stats are independent of the checks: overlap them
	go func() { stats <- computeStats(p) }()
	defer func() {
		res.Stats = <-stats
		if w, ok := lowAvailability(res.Stats, opts.MinAvailability); ok {
			res.Warnings = append(res.Warnings, w)
		}
	}()
	var verdicts []Verdict
	var reasons []Reason
	bad := ignoredOps{}
	bad.merge(p.ignored)
	switch res.Model {
	case Register, Append:
		model := "register"
		if res.Model == Append {
			model = "list"
			res.Append = checkAppend(p.ops)
			verdicts = append(verdicts, res.Append.Verdict)
		}
		keys := keyHistories(model, p.ops, p.ignored.keys)
		lin, viz := linearizable(ctx, linJob{model: model, keys: keys, timeout: opts.Timeout, faults: faultWindows(p.nemesis)})
		for _, k := range keys {
			res.Notes = append(res.Notes, k.notes...)
			bad.merge(k.bad)
		}
		res.Linearizability = lin
		verdicts = append(verdicts, lin.Verdict)
		reasons = append(reasons, lin.reasons...)
		if viz != nil {
			viz.info.AddAnnotations(annotations(p.nemesis))
			res.viz = viz
		}
	case Set:
		var notes []string
		res.Set, notes = checkSet(p.ops, &bad)
		res.Notes = append(res.Notes, notes...)
		verdicts = append(verdicts, res.Set.Verdict)
		if len(res.Set.NoFinalRead) > 0 {
			reasons = append(reasons, unreadReason(res.Set.NoFinalRead))
		}
	case Lease:
		var notes []string
		res.Lease, notes = checkLease(p.ops, p.nemesis, p.untimed, &bad)
		res.Notes = append(res.Notes, notes...)
		verdicts = append(verdicts, res.Lease.Verdict)
		if res.Lease.Verdict == Unknown && res.Lease.Ignored == 0 {
			reasons = append(reasons, Reason{Code: ReasonNoEvidence, Detail: leaseUnknown(p.untimed)})
		}
	case Txn:
		var notes []string
		res.Txn, notes = checkTxn(p.ops, &bad)
		res.Notes = append(res.Notes, notes...)
		verdicts = append(verdicts, res.Txn.Verdict)
	case Keyspace:
		var notes []string
		res.Keyspace, res.Watch, notes = checkKeyspace(p.ops, p.nemesis, &bad)
		res.Notes = append(res.Notes, notes...)
		verdicts = append(verdicts, res.Keyspace.Verdict)
		if res.Watch != nil {
			verdicts = append(verdicts, res.Watch.Verdict)
			if res.Watch.Verdict == Unknown {
				reasons = append(reasons, Reason{Code: ReasonNoEvidence, Detail: "the watches delivered no event"})
			}
		}
	default:
		res.Notes = append(res.Notes, fmt.Sprintf("unknown model %q: nothing checked", res.Model))
		reasons = append(reasons, Reason{Code: ReasonUnknownWorkload, Detail: fmt.Sprintf("unknown model %q: nothing checked", res.Model)})
		verdicts = append(verdicts, Unknown)
	}
	switch res.Model {
	case Register, Append, Set: // revisions order every key: the one check across keys
		if rr := checkRevisions(p.ops); rr != nil {
			res.Revision = rr
			verdicts = append(verdicts, rr.Verdict)
		}
	}
	if len(p.ops) == 0 {
		res.Notes = append(res.Notes, "no client operations in the history")
	}
	floor := max(opts.MinEvidence, DefaultMinEvidence)
	short := ""
	if model := modelOf(res.Model); model != "" || len(p.ops) == 0 { // an unknown workload has no evidence to weigh
		short = gatherEvidence(model, p.ops).shortfall(model, floor)
	}
	if short != "" {
		reasons = append(reasons, Reason{Code: ReasonNoEvidence, Detail: short})
		verdicts = append(verdicts, Unknown)
	}
	if bad.n > 0 {
		reasons = append(reasons, Reason{Code: ReasonMalformedOps, Detail: bad.String()})
		verdicts = append(verdicts, Unknown)
	}
	if len(res.Notes) > maxNotes {
		res.Notes = append(res.Notes[:maxNotes], fmt.Sprintf("… and %d more notes like these", len(res.Notes)-maxNotes))
	}
	res.Verdict = Compose(verdicts...)
	if res.Verdict == Unknown {
		if len(reasons) == 0 {
			reasons = append(reasons, Reason{Code: ReasonUnexplained, Detail: "a checker could not decide, and did not say why"})
		}
		sort.SliceStable(reasons, func(a, b int) bool { return rank(reasons[a].Code) < rank(reasons[b].Code) })
		res.UnknownBecause = reasons
	}
	res.Elapsed = time.Since(start)
	return res
}

// lowAvailability is the warning for stats whose availability is below min (0: the
// default; negative: never).
func lowAvailability(st Stats, min float64) (Reason, bool) {
	if min == 0 {
		min = DefaultMinAvailability
	}
	if st.Availability < 0 || st.Availability >= min {
		return Reason{}, false
	}
	return Reason{Code: WarnLowAvailability, Detail: fmt.Sprintf(
		"low availability: the system answered %.1f%% of the operations that completed, below %.0f%%; "+
			"the verdict rests on little (faults closer together than the system recovers? try a longer --nemesis-interval)",
		100*st.Availability, 100*min)}, true
}

func rank(code string) int {
	if r, ok := reasonRank[code]; ok {
		return r
	}
	return len(reasonRank)
}

// guessModel names the model whose operations the history holds.
func guessModel(ops []op) Model {
	for _, o := range ops {
		switch o.f {
		case history.OpAdd:
			return Set
		case history.OpAppend:
			return Append
		case history.OpGrant:
			return Lease
		case history.OpTxn:
			return Txn
		case history.OpCreate, history.OpUpdate, history.OpList:
			return Keyspace
		}
	}
	return Register
}

// keyHistories groups the operations by key, for the model; each key's porcupine
// history is built by prepare, in checkKeys's workers.
// pairIgnored counts, by key, the operations the pairing could not interpret.
func keyHistories(model string, ops []op, pairIgnored map[string]int) []keyHistory {
	keys, m := byKey(ops)
	out := make([]keyHistory, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyHistory{key: k, model: model, raw: m[k], pairIgnored: pairIgnored[k]})
	}
	return out
}

// prepare builds the key's history for its search: the register search's operations
// (in buf's memory, see registerOps) or Porcupine's.
func (kh *keyHistory) prepare(buf *regBuf) {
	if kh.model == "list" {
		order, ordered, contradiction := listOrder(kh.raw)
		kh.pops, kh.ops, kh.dropped, kh.notes = listOps(kh.raw, order, ordered, &kh.bad)
		kh.contradiction = contradiction
		kh.n = len(kh.pops)
	} else {
		kh.reg, kh.ops, kh.dropped, kh.notes = registerOps(kh.raw, &kh.bad, buf)
		kh.n = len(kh.reg)
	}
	kh.ignored = kh.pairIgnored + kh.bad.n
	_, reads, updates := keyEvidence(kh.model, kh.raw)
	kh.unread = updates > 0 && reads == 0
}
