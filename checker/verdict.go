package checker

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// Verdict is a checker's three-valued answer. Unknown (the checker timed out, or had too
// little to go on) is never a pass.
type Verdict string

// The verdicts.
const (
	Valid   Verdict = "valid"
	Invalid Verdict = "invalid"
	Unknown Verdict = "unknown"
)

// Compose combines verdicts: invalid beats unknown beats valid. No verdicts at all is
// unknown: nothing was checked.
func Compose(vs ...Verdict) Verdict {
	if len(vs) == 0 {
		return Unknown
	}
	out := Valid
	for _, v := range vs {
		switch v {
		case Invalid:
			return Invalid
		case Valid:
		default:
			out = Unknown
		}
	}
	return out
}

// MarshalJSON encodes valid as true, invalid as false and anything else as "unknown",
// the form of results.json's "valid" fields.
func (v Verdict) MarshalJSON() ([]byte, error) {
	switch v {
	case Valid:
		return []byte("true"), nil
	case Invalid:
		return []byte("false"), nil
	}
	return []byte(`"unknown"`), nil
}

// UnmarshalJSON reads back what MarshalJSON writes (and the verdict names).
func (v *Verdict) UnmarshalJSON(b []byte) error {
	switch strings.TrimSpace(string(b)) {
	case "true", `"valid"`:
		*v = Valid
	case "false", `"invalid"`:
		*v = Invalid
	case `"unknown"`, "null":
		*v = Unknown
	default:
		return fmt.Errorf("verdict %s is not true, false or \"unknown\"", b)
	}
	return nil
}

// Result is what Check found. Its JSON form is results.json.
type Result struct {
	Verdict Verdict
	Model   Model
	// Linearizability is set for register and append histories.
	Linearizability *LinResult
	Set             *SetResult
	Append          *AppendResult
	Lease           *LeaseResult
	Txn             *TxnResult
	Keyspace        *KeyspaceResult
	Watch           *WatchResult // the keyspace check's watches, when the history has some
	// Revision is the revision check, when a register, set or append history's
	// operations carry the store's revisions (see RevisionResult).
	Revision *RevisionResult
	Stats    Stats
	// Notes are what the checker had to forgive in the history (unpaired events, values
	// of an unexpected shape); they never make a verdict valid: a history with any is
	// judged invalid or unknown.
	Notes []string
	// UnknownBecause says why the verdict is unknown, the most fundamental reason first;
	// it is empty unless the verdict is unknown. results.json carries it as
	// "unknown_because": [{"code": "no_evidence", "detail": "..."}].
	UnknownBecause []Reason
	// Warnings are what makes a verdict weaker than it reads, without changing it (a
	// pass that saw little: WarnLowAvailability). results.json carries them as
	// "warnings": [{"code": "low_availability", "detail": "..."}].
	Warnings []Reason
	// External are checks made outside the history (e.g. etcd's HashKV agreement across
	// members at the end of a run), joined with AddExternal.
	External []External
	Elapsed  time.Duration

	viz *vizData // the failing keys, for Visualize; nil unless invalid
}

// Reason is why a verdict is unknown: a stable, machine-readable Code (one of the
// Reason* constants) and a Detail in plain words, with the numbers.
type Reason struct {
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

// The codes of Reason, from the most fundamental.
const (
	// ReasonNoEvidence: fewer acknowledged updates or reads than Options.MinEvidence.
	ReasonNoEvidence = "no_evidence"
	// ReasonMalformedOps: operations the checker could not interpret were left out (or
	// their outcome guessed); any of them may be the violation.
	ReasonMalformedOps = "malformed_ops"
	// ReasonUnreadKeys: keys with updates and no acknowledged read.
	ReasonUnreadKeys = "unread_keys"
	// ReasonUndecidedKeys: the linearizability search of some keys ran out of time, or
	// the check was cancelled.
	ReasonUndecidedKeys = "undecided_keys"
	// ReasonUnknownWorkload: Options.Model names no model the checker knows.
	ReasonUnknownWorkload = "unknown_workload"
	// ReasonInterrupted: the caller cut the check or the run short (see MakeUnknown).
	ReasonInterrupted = "interrupted"
	// ReasonRunError: the run that recorded the history ended in a harness or
	// infrastructure error: what the history holds may not be what it should.
	ReasonRunError = "run_error"
	// ReasonUnexplained: a checker answered unknown without saying why (a bug).
	ReasonUnexplained = "unexplained"
)

var reasonRank = map[string]int{ReasonNoEvidence: 0, ReasonMalformedOps: 1, ReasonUnreadKeys: 2,
	ReasonUndecidedKeys: 3, ReasonUnknownWorkload: 4, ReasonInterrupted: 5, ReasonRunError: 6, ReasonExternalUnknown: 7}

// AnomalyKinds lists, sorted, the kinds of anomaly the checks found: the named kinds of
// the txn, keyspace and watch checks (G1c, lost-update, watch-order, …), and for a
// check without kinds its name (linearizability, set, append, lease) when it found the
// history invalid. A campaign scenario that expects one (its anomaly) counts a run as
// caught only when it is here.
func (r Result) AnomalyKinds() []string {
	var out []string
	if r.Txn != nil {
		out = appendKinds(out, r.Txn.AnomalyTypes)
	}
	if r.Keyspace != nil {
		out = appendKinds(out, r.Keyspace.AnomalyTypes)
	}
	if r.Watch != nil {
		out = appendKinds(out, r.Watch.AnomalyTypes)
	}
	if r.Revision != nil {
		out = appendKinds(out, r.Revision.AnomalyTypes)
	}
	for _, c := range []struct {
		name string
		bad  bool
	}{
		{"linearizability", r.Linearizability != nil && r.Linearizability.Verdict == Invalid},
		{"set", r.Set != nil && r.Set.Verdict == Invalid},
		{"append", r.Append != nil && r.Append.Verdict == Invalid},
		{"lease", r.Lease != nil && r.Lease.Verdict == Invalid},
	} {
		if c.bad {
			out = append(out, c.name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// AnomalyKindNames lists every kind AnomalyKinds can return, sorted: what a campaign
// scenario's anomaly may name.
func AnomalyKindNames() []string {
	out := []string{"linearizability", "set", "append", "lease",
		AnomalyG1a, AnomalyG1b, AnomalyGarbage, AnomalyDuplicate, AnomalyIncompatible, AnomalyInternal,
		KSDuplicateRevision, KSRevisionOrder, KSLostUpdate, KSFalseConflict, KSStaleRead, KSGarbageRead, KSAbortedRead,
		KSIncompleteList, KSCompactedRead, KSFalseCompaction,
		KSWatchOrder, KSWatchProgress, KSWatchCompaction, KSWatchDuplicate, KSWatchLost, KSWatchWrong, KSWatchPrevKV}
	for _, cycle := range []string{AnomalyG0, AnomalyG1c, AnomalyGSingle, AnomalyG2} {
		out = append(out, cycle, cycle+realtimeSuffix)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func (r Result) keyspaceAnomalies() *revisionAnomalies {
	if r.Keyspace == nil {
		return nil
	}
	return &r.Keyspace.revisionAnomalies
}

func (r Result) watchAnomalies() *revisionAnomalies {
	if r.Watch == nil {
		return nil
	}
	return &r.Watch.revisionAnomalies
}

func (r Result) revisionCheckAnomalies() *revisionAnomalies {
	if r.Revision == nil {
		return nil
	}
	return &r.Revision.revisionAnomalies
}

func appendKinds(out []string, types map[string]int) []string {
	for k, n := range types {
		if n > 0 {
			out = append(out, k)
		}
	}
	return out
}

// Why renders UnknownBecause in one line ("" when the verdict is not unknown).
func (r Result) Why() string {
	ds := make([]string, len(r.UnknownBecause))
	for i, u := range r.UnknownBecause {
		ds[i] = u.Detail
	}
	return strings.Join(ds, "; ")
}

// External is a check made outside the history, by the harness, with its own verdict.
type External struct {
	Name    string  `json:"-"`
	Verdict Verdict `json:"valid"`
	Detail  string  `json:"detail"`
}

// WarnLowAvailability: the system answered less than Options.MinAvailability of the
// operations that completed; whatever the verdict, it rests on little.
const WarnLowAvailability = "low_availability"

// ReasonExternalUnknown: a check made outside the history could not tell.
const ReasonExternalUnknown = "external_unknown"

// AddExternal joins a check made outside the history: it appears in results.json under
// checkers.<name>, and its verdict composes with the history's (invalid wins; an unknown
// one makes a valid verdict unknown, with its detail as the reason).
func (r *Result) AddExternal(e External) {
	r.External = append(r.External, e)
	switch e.Verdict {
	case Invalid:
		r.Verdict = Invalid
		r.UnknownBecause = nil
	case Valid:
	default:
		r.MakeUnknown(ReasonExternalUnknown, e.Name+": "+e.Detail)
	}
}

// MakeUnknown makes a valid verdict unknown for the reason given, as a caller does when
// the check or the run was cut short. An invalid verdict stays invalid (a violation
// found is real); an unknown one keeps its reasons and gets this one too.
func (r *Result) MakeUnknown(code, detail string) {
	if r.Verdict == Invalid {
		return
	}
	r.Verdict = Unknown
	r.UnknownBecause = append(r.UnknownBecause, Reason{Code: code, Detail: detail})
}

type resultJSON struct {
	Valid          Verdict        `json:"valid"`
	UnknownBecause []Reason       `json:"unknown_because,omitempty"`
	Warnings       []Reason       `json:"warnings,omitempty"`
	Model          Model          `json:"model"`
	Checkers       map[string]any `json:"checkers"`
	Stats          Stats          `json:"stats"`
	Notes          []string       `json:"notes,omitempty"`
	ElapsedMS      float64        `json:"check_ms"`
}

// MarshalJSON encodes the result as results.json:
// {"valid": true|false|"unknown", "checkers": {...}, "stats": {...}}.
func (r Result) MarshalJSON() ([]byte, error) {
	c := map[string]any{}
	if r.Linearizability != nil {
		c["linearizability"] = r.Linearizability
	}
	if r.Set != nil {
		c["set"] = r.Set
	}
	if r.Append != nil {
		c["append"] = r.Append
	}
	if r.Lease != nil {
		c["lease"] = r.Lease
	}
	if r.Txn != nil {
		c["txn"] = r.Txn
	}
	if r.Keyspace != nil {
		c["keyspace"] = r.Keyspace
	}
	if r.Watch != nil {
		c["watch"] = r.Watch
	}
	if r.Revision != nil {
		c["revision"] = r.Revision
	}
	for _, e := range r.External {
		c[e.Name] = e
	}
	return json.Marshal(resultJSON{Valid: r.Verdict, UnknownBecause: r.UnknownBecause, Warnings: r.Warnings, Model: r.Model,
		Checkers: c, Stats: r.Stats, Notes: r.Notes, ElapsedMS: ms(r.Elapsed)})
}

// Explanations returns the plain-words explanation of every failure found, one a line.
func (r Result) Explanations() []string {
	var out []string
	if r.Linearizability != nil {
		for _, f := range r.Linearizability.Failures {
			out = append(out, f.Explanation)
		}
	}
	if r.Set != nil {
		out = append(out, r.Set.Anomalies...)
	}
	if r.Append != nil {
		out = append(out, r.Append.Anomalies...)
	}
	if r.Lease != nil {
		out = append(out, r.Lease.Anomalies...)
	}
	if r.Txn != nil {
		out = append(out, r.Txn.Anomalies...)
	}
	if r.Keyspace != nil {
		out = append(out, r.Keyspace.Anomalies...)
	}
	if r.Watch != nil {
		out = append(out, r.Watch.Anomalies...)
	}
	if r.Revision != nil {
		out = append(out, r.Revision.Anomalies...)
	}
	for _, e := range r.External {
		if e.Verdict == Invalid {
			out = append(out, e.Name+": "+e.Detail)
		}
	}
	return out
}

// Summary renders the result in a few lines for a terminal. An unknown verdict's first
// line is "unknown: " and why (Why).
func (r Result) Summary() string {
	var b strings.Builder
	if r.Verdict == Unknown && len(r.UnknownBecause) > 0 {
		b.WriteString("unknown: " + r.Why() + "\n")
	}
	if l := r.Linearizability; l != nil {
		fmt.Fprintf(&b, "linearizability (%s model): %s — %d keys, %d ops checked, %d indeterminate dropped",
			l.Model, l.Verdict, l.Keys, l.Ops, l.Dropped)
		if l.Ignored > 0 {
			fmt.Fprintf(&b, ", %d malformed ignored", l.Ignored)
		}
		if len(l.UnknownKeys) > 0 {
			fmt.Fprintf(&b, ", %d keys undecided", len(l.UnknownKeys))
		}
		if len(l.UnreadKeys) > 0 {
			fmt.Fprintf(&b, ", %d keys never read", len(l.UnreadKeys))
		}
		b.WriteString("\n")
	}
	if s := r.Set; s != nil {
		fmt.Fprintf(&b, "set: %s — %d ok, %d lost, %d unexpected, %d stale, %d recovered, %d never read",
			s.Verdict, s.OK, len(s.Lost), len(s.Unexpected), s.Stale, len(s.Recovered), len(s.NeverRead))
		if s.Ignored > 0 {
			fmt.Fprintf(&b, ", %d malformed ignored", s.Ignored)
		}
		if len(s.NoFinalRead) > 0 {
			fmt.Fprintf(&b, ", %d keys without a read", len(s.NoFinalRead))
		}
		b.WriteString("\n")
	}
	if a := r.Append; a != nil {
		fmt.Fprintf(&b, "append: %s — %d lost, %d duplicated, %d reordered, %d unexpected\n",
			a.Verdict, len(a.Lost), len(a.Duplicated), len(a.Reordered), len(a.Unexpected))
	}
	if l := r.Lease; l != nil {
		fmt.Fprintf(&b, "lease: %s — %s\n", l.Verdict, l.Line())
	}
	if x := r.Txn; x != nil {
		fmt.Fprintf(&b, "txn: %s — %s\n", x.Verdict, x.Line())
	}
	if x := r.Keyspace; x != nil {
		fmt.Fprintf(&b, "keyspace: %s — %s\n", x.Verdict, x.Line())
	}
	if x := r.Watch; x != nil {
		fmt.Fprintf(&b, "watch: %s — %s\n", x.Verdict, x.Line())
	}
	if x := r.Revision; x != nil {
		fmt.Fprintf(&b, "revision: %s — %s\n", x.Verdict, x.Line())
	}
	for _, e := range r.External {
		fmt.Fprintf(&b, "%s: %s — %s\n", e.Name, e.Verdict, e.Detail)
	}
	st := r.Stats
	pct := func(x float64) string { // a ratio of nothing is -1
		if x < 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.1f%%", 100*x)
	}
	if st.Untimed {
		fmt.Fprintf(&b, "stats: availability %s (the history has no times)", pct(st.Availability))
	} else {
		fmt.Fprintf(&b, "stats: availability %s", pct(st.Availability))
		if st.Faults > 0 {
			fmt.Fprintf(&b, " (%s during faults, %s outside)", pct(st.AvailabilityDuringFaults), pct(st.AvailabilityOutsideFaults))
		}
		fmt.Fprintf(&b, ", latency p50 %.1fms p99 %.1fms max %.1fms, %.1f ops/s",
			st.Latency.P50, st.Latency.P99, st.Latency.Max, st.OpsPerSec)
	}
	for _, w := range r.Warnings {
		fmt.Fprintf(&b, "\nwarning: %s", w.Detail)
	}
	for i, e := range r.Explanations() {
		if i == 3 {
			fmt.Fprintf(&b, "\n  … and %d more (see results.json)", len(r.Explanations())-3)
			break
		}
		b.WriteString("\n  " + e)
	}
	return b.String()
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// FirstViolation returns when the earliest operation blamed for a violation (of
// linearizability, or of the keyspace, watch or revision checks) was invoked, as a time
// since the run's base time (events is the history that was checked); ok is false when
// no violation names an operation.
func (r Result) FirstViolation(events []history.Event) (at time.Duration, ok bool) {
	for _, a := range []*revisionAnomalies{r.keyspaceAnomalies(), r.watchAnomalies(), r.revisionCheckAnomalies()} {
		if a != nil && a.blamed && (!ok || time.Duration(a.firstCall) < at) {
			at, ok = time.Duration(a.firstCall), true
		}
	}
	if r.Linearizability == nil {
		return at, ok
	}
	for _, f := range r.Linearizability.Failures {
		i := int(f.Op)
		if i < 0 || i >= len(events) || events[i].Index != f.Op { // not numbered by position
			i = slices.IndexFunc(events, func(e history.Event) bool { return e.Index == f.Op })
		}
		if i < 0 {
			continue
		}
		if t := time.Duration(events[i].Time); !ok || t < at {
			at, ok = t, true
		}
	}
	return at, ok
}
