package checker

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/faultline/faultline/history"
)

// Keyspace checks histories of the keyspace operations (history.OpCreate … OpCompact):
// etcd as Kubernetes drives it, where every answer carries revisions.
//
// It needs no search. etcd numbers its writes: each acknowledged write returns the
// revision it made, and every read says the revision it read at, so the order a
// linearizable system must have used is written in the history. The check replays the
// writes in revision order and holds every answer to that replay:
//
//   - an indeterminate write whose unique value a read saw happened at the mod revision
//     the read gave (an unseen one may have happened at a revision no known write holds);
//   - no two writes share a revision, and a revision never goes back in real time: an
//     operation that began after another ended answers at its revision or later (a
//     write, later only);
//   - a conditional write that happened found its condition true in the replay (a
//     create, the key absent; an update or delete, the key at the mod revision it
//     expected): otherwise an update was lost;
//   - a conflict found the key at a mod revision other than the one expected;
//   - a get or a list page at revision R returns exactly the replay's keys at R (the
//     value, the mod revision; a page, every key of its range in order up to its limit);
//   - a read at a revision below one compacted before it began fails as compacted, and
//     only such a read does.
//
// Each anomaly names the revision where the history stops making sense; FirstBad is the
// lowest of them.
//
// Why not Porcupine over a model of the keyspace: the revisions fix the order, so the
// search would only rediscover it, at a cost exponential in the concurrency where a
// key's revision is lost (etcd's robustness tests patch the history and cache states to
// keep that search tractable). The replay is near-linear and says which revision is
// wrong.
type KeyspaceResult struct {
	Verdict Verdict `json:"valid"`
	// Writes counts the acknowledged writes; Indeterminate the writes whose outcome is
	// unknown, of which Placed were seen by a read (and so happened, at a known
	// revision).
	Writes        int `json:"writes"`
	Indeterminate int `json:"indeterminate"`
	Placed        int `json:"placed"`
	// Reads counts the acknowledged gets and list pages; Compactions the acknowledged
	// compactions.
	Reads       int `json:"reads"`
	Compactions int `json:"compactions"`
	// NemesisCompactions counts the compactions the nemesis made or asked for
	// (history.NemesisCompact, NemesisCompactAsked): compactions all the same.
	NemesisCompactions int `json:"nemesis_compactions,omitempty"`
	// Revision is the highest revision written.
	Revision int64 `json:"revision"`
	revisionAnomalies
	// Ignored counts operations of another shape than the keyspace operations'.
	Ignored int `json:"ignored"`

	watch *WatchResult // where the watches' anomalies go
}

// The keyspace anomalies.
const (
	KSDuplicateRevision = "duplicate-revision" // two writes made one revision
	KSRevisionOrder     = "revision-order"     // a revision below one an operation finished before it began
	KSLostUpdate        = "lost-update"        // a conditional write happened though its condition was false
	KSFalseConflict     = "false-conflict"     // a conflict that found the revision it expected
	KSStaleRead         = "stale-read"         // a read that missed a write at or below its revision
	KSGarbageRead       = "garbage-read"       // a value no write wrote there, or at another revision
	KSAbortedRead       = "aborted-read"       // a value whose write failed
	KSIncompleteList    = "incomplete-list"    // a list page that left out, misordered or overran keys
	KSCompactedRead     = "compacted-read"     // data read at a revision compacted before the read began
	KSFalseCompaction   = "false-compaction"   // "compacted" for a revision no compaction had reached
	KSWatchOrder        = "watch-order"        // a watch's events went back in revision, or before its start
	KSWatchProgress     = "watch-progress"     // a progress notification out of step with the events (etcd#15220)
	KSWatchCompaction   = "watch-compaction"   // a watch cancelled for a compaction below an event it had delivered (etcd#15271)
	KSWatchDuplicate    = "watch-duplicate"    // a watch delivered one event twice
	KSWatchLost         = "watch-lost-event"   // a watch left out a write between its start and its last event
	KSWatchWrong        = "watch-wrong-event"  // a watch event that is not the write the replay has at its revision
	KSWatchPrevKV       = "watch-prev-kv"      // a watch event whose previous value is not the key's before it
)

// Line is the result in one line.
func (r *KeyspaceResult) Line() string {
	s := fmt.Sprintf("%d writes to revision %d, %d indeterminate (%d placed by reads and watches), %d reads, %d compactions",
		r.Writes, r.Revision, r.Indeterminate, r.Placed, r.Reads, r.Compactions)
	if r.NemesisCompactions > 0 {
		s += fmt.Sprintf(" (and %d by the nemesis)", r.NemesisCompactions)
	}
	return s + r.line()
}

// revisionAnomalies are the anomalies of a check that names revisions: counted by type,
// the first maxKeyspaceAnomalies described.
type revisionAnomalies struct {
	// FirstBad is the lowest revision an anomaly names (0: none).
	FirstBad     int64          `json:"first_bad_revision,omitempty"`
	AnomalyTypes map[string]int `json:"anomaly_types,omitempty"`
	Anomalies    []string       `json:"anomalies,omitempty"`
	// firstCall is the earliest invoke of an operation an anomaly blames (see
	// Result.FirstViolation); blamed says whether there is one.
	firstCall int64
	blamed    bool
}

// add records an anomaly of kind at revision rev, blaming o (nil: none), explained by text.
func (a *revisionAnomalies) add(kind string, rev int64, o *op, text string) {
	if o != nil && !o.untimed && (!a.blamed || o.call < a.firstCall) {
		a.firstCall, a.blamed = o.call, true
	}
	if a.AnomalyTypes == nil {
		a.AnomalyTypes = map[string]int{}
	}
	a.AnomalyTypes[kind]++
	if rev > 0 && (a.FirstBad == 0 || rev < a.FirstBad) {
		a.FirstBad = rev
	}
	if len(a.Anomalies) < maxKeyspaceAnomalies {
		a.Anomalies = append(a.Anomalies, fmt.Sprintf("%s at revision %d: %s", kind, rev, text))
	}
}

// line is the anomalies' part of a result's line ("" when none).
func (a *revisionAnomalies) line() string {
	if len(a.AnomalyTypes) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(a.AnomalyTypes)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, a.AnomalyTypes[k]))
	}
	return "; " + strings.Join(parts, ", ") + fmt.Sprintf("; first wrong at revision %d", a.FirstBad)
}

// WatchResult is the keyspace check's verdict on the history's watches (see
// checkWatches): a checker of its own in results.json ("watch"), set only when the
// history has watches.
type WatchResult struct {
	Verdict Verdict `json:"valid"`
	// Watches counts the watches checked, Resumed those that began from a revision a
	// write had already been acknowledged at (they replay history, as a watch resumed
	// after a list or a broken stream does), Cancelled those the server cancelled
	// because their revision was compacted, Events the events they delivered (progress
	// notifications left out).
	Watches   int `json:"watches"`
	Resumed   int `json:"resumed"`
	Cancelled int `json:"cancelled"`
	Events    int `json:"events"`
	revisionAnomalies
}

// Line is the result in one line.
func (r *WatchResult) Line() string {
	return fmt.Sprintf("%d watches (%d resumed from a past revision, %d cancelled by compaction) delivering %d events",
		r.Watches, r.Resumed, r.Cancelled, r.Events) + r.line()
}

// maxKeyspaceAnomalies bounds the anomalies described (all are counted).
const maxKeyspaceAnomalies = 50

// found records an anomaly of kind at revision rev, blaming o, explained by format.
func (r *KeyspaceResult) found(kind string, rev int64, o *op, format string, args ...any) {
	if strings.HasPrefix(kind, "watch-") && r.watch != nil {
		r.watch.add(kind, rev, o, fmt.Sprintf(format, args...))
		return
	}
	r.add(kind, rev, o, fmt.Sprintf(format, args...))
}

// kwrite is one create, update or delete.
type kwrite struct {
	o      *op
	key    string
	value  string // create, update
	expect int64  // the mod revision expected (a create's: 0, the key absent)
	found  int64  // a conflict: the mod revision found
	rev    int64  // the revision it made; 0 while unknown
	placed bool   // rev is a read's
}

func (w *kwrite) del() bool { return w.o.f == history.OpDelete }

// kv is a key as a read returned it.
type kv struct {
	key, value string
	mod        int64
}

// kread is one acknowledged get or list page.
type kread struct {
	o      *op
	at     int64 // the revision read
	header int64 // the store's revision when it answered
	latest bool  // at the latest revision (not one asked for)
	list   bool
	prefix string // a list's
	start  string
	limit  int64
	more   bool
	kvs    []kv // a get's: none when absent
}

// kcompact is one compaction asked, and its revision.
type kcompact struct {
	*op
	rev int64
}

// wevent is one event a watch delivered.
type wevent struct {
	rev                   int64
	typ, key, value, prev string
}

// kwatch is one watch the server answered: its events, to its end or its cancel.
type kwatch struct {
	o          *op
	prefix     string
	from       int64
	events     []wevent
	cancelled  bool  // by a compaction
	compactRev int64 // the compact revision its cancel gave (0: not given)
}

// keyspace is what checkKeyspace works on.
type keyspace struct {
	res      *KeyspaceResult
	writes   []*kwrite
	reads    []*kread
	watches  []*kwatch
	compacts []kcompact
	refused  []*kread // reads failed as compacted (at: the revision asked)
	byRev    map[int64]*kwrite
	revs     []int64              // the revisions of byRev, ascending
	versions map[string][]*kwrite // per key, the writes that happened, by revision
	unplaced map[string][]*kwrite // per key, indeterminate writes no read placed
	byValue  map[string]*kwrite   // create and update by value (nil: written twice)
	prefixes map[string][]string  // per list prefix, the keys written under it, sorted
}

func checkKeyspace(ops []op, nemesis []history.Event, bad *ignoredOps) (*KeyspaceResult, *WatchResult, []string) {
	ks := &keyspace{res: &KeyspaceResult{watch: &WatchResult{}}, byRev: map[int64]*kwrite{}, versions: map[string][]*kwrite{},
		unplaced: map[string][]*kwrite{}, byValue: map[string]*kwrite{}, prefixes: map[string][]string{}}
	var notes []string
	// The nemesis's compactions: noted once answered (or given up on), so asked no
	// later than then and no earlier than the fault's start (the nemesis invoke before
	// the note); both bounds are kept, each where it errs toward no false alarm: a
	// compaction excuses what it may have caused from the fault's start, and makes a
	// read below it wrong only from its answer on.
	fault := int64(0)
	for _, e := range nemesis {
		if e.Type == history.Invoke {
			fault = e.Time
		}
		if e.F != history.NemesisCompact && e.F != history.NemesisCompactAsked {
			continue
		}
		rev, ok := revOf(e.Value.S)
		if e.Value.Kind != history.Str || !ok {
			notes = append(notes, fmt.Sprintf("event %d: the nemesis's %s %v is not a revision; ignored", e.Index, e.F, e.Value))
			continue
		}
		status := history.Info // asked: it may have happened
		if e.F == history.NemesisCompact {
			status = history.OK
		}
		ks.compacts = append(ks.compacts, kcompact{&op{process: history.NemesisProcess, f: history.OpCompact, status: status,
			in: e.Value, call: min(fault, e.Time), ret: e.Time, done: e.Time, invIdx: e.Index, retIdx: e.Index}, rev})
		ks.res.NemesisCompactions++
	}
	for i := range ops {
		o := &ops[i]
		if o.guessed != "" {
			continue
		}
		if why := ks.add(o); why != "" {
			bad.add(o.key, whyShape)
			ks.res.Ignored++
			notes = append(notes, fmt.Sprintf("event %d: %s %v → %v: %s; ignored", o.invIdx, o.f, o.in, o.out, why))
		}
	}
	ks.place()
	ks.order()
	ks.placeByConflicts()
	ks.conditions()
	ks.checkReads()
	ks.checkWatches()
	ks.realtime()
	ks.compaction()
	res, wr := ks.res, ks.res.watch
	switch {
	case len(res.AnomalyTypes) > 0:
		res.Verdict = Invalid
	case res.Reads == 0 || res.Writes+res.Placed == 0:
		res.Verdict = Unknown
	default:
		res.Verdict = Valid
	}
	switch {
	case wr.Watches == 0:
		wr = nil // no watches: no watch checker
	case len(wr.AnomalyTypes) > 0:
		wr.Verdict = Invalid
	case wr.Events == 0:
		wr.Verdict = Unknown // watches that saw nothing are no evidence
	default:
		wr.Verdict = Valid
	}
	return res, wr, notes
}

func revOf(s string) (int64, bool) {
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}

// add takes in one operation; it returns why it cannot, or "".
func (ks *keyspace) add(o *op) string {
	switch o.f {
	case history.OpCreate, history.OpUpdate, history.OpDelete:
		w := &kwrite{o: o, key: o.key}
		switch {
		case o.f == history.OpCreate && o.in.Kind == history.Str:
			w.value = o.in.S
		case o.f == history.OpUpdate && o.in.Kind == history.List && len(o.in.L) == 2:
			e, ok := revOf(o.in.L[1])
			if !ok {
				return "an update's expected mod revision is not a revision"
			}
			w.value, w.expect = o.in.L[0], e
		case o.f == history.OpDelete && o.in.Kind == history.Str:
			e, ok := revOf(o.in.S)
			if !ok {
				return "a delete's expected mod revision is not a revision"
			}
			w.expect = e
		default:
			return "not a keyspace write's argument"
		}
		switch o.status {
		case history.OK:
			r, ok := revOf(o.out.S)
			if o.out.Kind != history.Str || !ok || r == 0 {
				return "an acknowledged write without the revision it made"
			}
			w.rev = r
			ks.res.Writes++
		case history.Fail:
			if o.err == history.Conflict {
				f, ok := revOf(o.out.S)
				if o.out.Kind != history.Str || !ok {
					return "a conflict without the mod revision it found"
				}
				w.found = f
			}
		default:
			ks.res.Indeterminate++
		}
		if o.f != history.OpDelete {
			if _, dup := ks.byValue[w.value]; dup {
				ks.byValue[w.value] = nil // ambiguous: no read can say which
			} else {
				ks.byValue[w.value] = w
			}
		}
		ks.writes = append(ks.writes, w)
	case history.OpGet, history.OpList:
		return ks.addRead(o)
	case history.OpWatch:
		return ks.addWatch(o)
	case history.OpCompact:
		rev, ok := revOf(o.in.S)
		if o.in.Kind != history.Str || !ok {
			return "a compaction's revision is not a revision"
		}
		if o.status == history.OK {
			ks.res.Compactions++
		}
		ks.compacts = append(ks.compacts, kcompact{o, rev})
	default:
		return "not a keyspace operation"
	}
	return ""
}

func (ks *keyspace) addRead(o *op) string {
	r := &kread{o: o, list: o.f == history.OpList, latest: true}
	if r.list {
		if o.in.Kind != history.List || len(o.in.L) != 3 {
			return "a list's argument is not [revision, start key, limit]"
		}
		at, ok1 := revOf(o.in.L[0])
		limit, ok2 := revOf(o.in.L[2])
		if !ok1 || !ok2 {
			return "a list's revision or limit is not a number"
		}
		r.prefix, r.at, r.start, r.limit, r.latest = o.key, at, o.in.L[1], limit, at == 0
	}
	switch {
	case o.status == history.Fail && o.err == history.Compacted:
		ks.refused = append(ks.refused, r)
		return ""
	case o.status != history.OK:
		return ""
	}
	l := o.out.L
	if o.out.Kind != history.List || len(l) < 2 {
		return "a read's answer is not [header revision, …]"
	}
	h, ok := revOf(l[0])
	if !ok {
		return "a read's header revision is not a revision"
	}
	r.header = h
	if r.latest {
		r.at = h
	}
	if r.list {
		if (len(l)-2)%3 != 0 || l[1] != "0" && l[1] != "1" {
			return "a list's answer is not [header revision, more, key, mod revision, value …]"
		}
		r.more = l[1] == "1"
		for i := 2; i < len(l); i += 3 {
			m, ok := revOf(l[i+1])
			if !ok || m == 0 {
				return "a listed key's mod revision is not a revision"
			}
			r.kvs = append(r.kvs, kv{key: l[i], mod: m, value: l[i+2]})
		}
	} else {
		m, ok := revOf(l[1])
		switch {
		case !ok || m == 0 && len(l) != 2 || m > 0 && len(l) != 3:
			return "a get's answer is not [header revision, mod revision, value] or [header revision, \"0\"]"
		case m > 0:
			r.kvs = []kv{{key: o.key, mod: m, value: l[2]}}
		}
	}
	ks.res.Reads++
	ks.reads = append(ks.reads, r)
	return ""
}

func (ks *keyspace) addWatch(o *op) string {
	from, ok := revOf(o.in.S)
	if o.in.Kind != history.Str || !ok {
		return "a watch's revision is not a revision"
	}
	w := &kwatch{o: o, prefix: o.key, from: from}
	switch {
	case o.status == history.Fail && o.err == history.Compacted:
		w.cancelled = true
	case o.status != history.OK:
		return "" // what it saw is not known to be all it was sent
	}
	l := o.out.L
	if o.out.Kind != history.List && !o.out.IsNone() || len(l)%5 != 0 {
		return "a watch's answer is not [revision, type, key, value, previous value …]"
	}
	for i := 0; i < len(l); i += 5 {
		r, ok := revOf(l[i])
		switch {
		case !ok || r == 0:
			return "a watch event's revision is not a revision"
		case l[i+1] != history.WatchPut && l[i+1] != history.WatchDelete && l[i+1] != history.WatchProgress && l[i+1] != history.WatchCompacted:
			return fmt.Sprintf("a watch event of type %q", l[i+1])
		}
		if l[i+1] == history.WatchCompacted {
			if !w.cancelled || i+5 != len(l) {
				return "a watch's cancel for compaction is not the last event of a watch cancelled for compaction"
			}
			w.compactRev = r
			break
		}
		w.events = append(w.events, wevent{rev: r, typ: l[i+1], key: l[i+2], value: l[i+3], prev: l[i+4]})
		if l[i+1] != history.WatchProgress {
			ks.res.watch.Events++
		}
	}
	ks.res.watch.Watches++
	if w.cancelled {
		ks.res.watch.Cancelled++
	}
	ks.watches = append(ks.watches, w)
	return ""
}

// place gives each indeterminate write a read or a watch saw the revision they gave,
// and checks that every value read was written, to its key, at its mod revision.
func (ks *keyspace) place() {
	for _, w := range ks.watches { // a watch's puts are reads at their revision
		r := &kread{o: w.o}
		for _, e := range w.events {
			if e.typ == history.WatchPut {
				r.kvs = append(r.kvs, kv{key: e.key, value: e.value, mod: e.rev})
			}
		}
		ks.placeSeen(r)
	}
	// and its deletes place the key's one indeterminate delete, at a revision no write
	// is known to have made
	made := map[int64]bool{}
	infoDeletes := map[string][]*kwrite{}
	for _, d := range ks.writes {
		if d.rev > 0 {
			made[d.rev] = true
		}
		if d.del() && d.o.status == history.Info {
			infoDeletes[d.key] = append(infoDeletes[d.key], d)
		}
	}
	for _, w := range ks.watches {
		for _, e := range w.events {
			if e.typ != history.WatchDelete || made[e.rev] {
				continue
			}
			var cand *kwrite
			n := 0
			for _, d := range infoDeletes[e.key] {
				if d.rev == 0 && d.o.call < w.o.done {
					cand, n = d, n+1
				}
			}
			if n == 1 {
				cand.rev, cand.placed = e.rev, true
				made[e.rev] = true
				ks.res.Placed++
			}
		}
	}
	for _, r := range ks.reads {
		ks.placeSeen(r)
	}
}

// placeSeen places the writes of what r saw, and checks it was written.
func (ks *keyspace) placeSeen(r *kread) {
	for _, x := range r.kvs {
		w, known := ks.byValue[x.value]
		switch {
		case !known || w != nil && w.key != x.key:
			ks.res.found(KSGarbageRead, x.mod, r.o, "%s read %s = %q (mod revision %d), a value no write gave that key",
				r.o.describe(), x.key, x.value, x.mod)
		case w == nil: // written twice: which write, no read can say
		case w.o.status == history.Fail:
			ks.res.found(KSAbortedRead, x.mod, r.o, "%s read %s = %q (mod revision %d), written by %s, which failed",
				r.o.describe(), x.key, x.value, x.mod, w.o.describe())
		case w.rev == 0:
			w.rev, w.placed = x.mod, true
			ks.res.Placed++
		case w.rev != x.mod:
			ks.res.found(KSGarbageRead, min(w.rev, x.mod), r.o, "%s read %s = %q with mod revision %d, but %s wrote it at revision %d",
				r.o.describe(), x.key, x.value, x.mod, w.o.describe(), w.rev)
		}
	}
}

// placeByConflicts places an indeterminate put no read saw at the mod revision a
// conflict found for its key, when no write that happened made that revision and the
// put is the key's only candidate.
func (ks *keyspace) placeByConflicts() {
	for _, c := range ks.writes {
		if c.o.status != history.Fail || c.o.err != history.Conflict || c.found == 0 {
			continue
		}
		if w, known := ks.byRev[c.found]; known && w.key == c.key {
			continue
		}
		var cand *kwrite
		n := 0
		for _, w := range ks.unplaced[c.key] {
			if !w.del() && w.o.call < c.o.done {
				cand, n = w, n+1
			}
		}
		if n != 1 || ks.byRev[c.found] != nil {
			continue
		}
		cand.rev, cand.placed = c.found, true
		ks.res.Placed++
		ks.byRev[c.found] = cand
		ks.versions[c.key] = append(ks.versions[c.key], cand)
		slices.SortFunc(ks.versions[c.key], func(a, b *kwrite) int { return cmp.Compare(a.rev, b.rev) })
		ks.unplaced[c.key] = slices.DeleteFunc(ks.unplaced[c.key], func(w *kwrite) bool { return w == cand })
		ks.res.Revision = max(ks.res.Revision, cand.rev)
	}
	ks.revs = slices.Sorted(maps.Keys(ks.byRev))
}

// order lays the writes that happened out by revision.
func (ks *keyspace) order() {
	for _, w := range ks.writes {
		if w.rev == 0 {
			if w.o.status != history.Fail {
				ks.unplaced[w.key] = append(ks.unplaced[w.key], w)
			}
			continue
		}
		if other, dup := ks.byRev[w.rev]; dup {
			ks.res.found(KSDuplicateRevision, w.rev, other.o, "%s and %s both made revision %d", other.o.describe(), w.o.describe(), w.rev)
			continue
		}
		ks.byRev[w.rev] = w
		ks.versions[w.key] = append(ks.versions[w.key], w)
		ks.res.Revision = max(ks.res.Revision, w.rev)
	}
	ks.revs = slices.Sorted(maps.Keys(ks.byRev))
	for k, vs := range ks.versions {
		slices.SortFunc(vs, func(a, b *kwrite) int { return cmp.Compare(a.rev, b.rev) })
		ks.versions[k] = vs
	}
	for _, r := range ks.reads {
		if r.list {
			if _, ok := ks.prefixes[r.prefix]; !ok {
				var keys []string
				for k := range ks.versions {
					if strings.HasPrefix(k, r.prefix) {
						keys = append(keys, k)
					}
				}
				slices.Sort(keys)
				ks.prefixes[r.prefix] = keys
			}
		}
	}
}

// at returns the last write to key at or below rev that happened (nil: none).
func (ks *keyspace) at(key string, rev int64) *kwrite {
	vs := ks.versions[key]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].rev > rev })
	if i == 0 {
		return nil
	}
	return vs[i-1]
}

// gapIn says whether some revision in (a, b) was made by no write that happened: an
// indeterminate write no read saw may have made it.
func (ks *keyspace) gapIn(a, b int64) bool {
	if b-a <= 1 {
		return false
	}
	i, _ := slices.BinarySearch(ks.revs, a+1)
	j, _ := slices.BinarySearch(ks.revs, b)
	return int64(j-i) < b-a-1
}

// unseenDelete says whether an indeterminate delete of key may have happened in
// (mod, by], the key at mod revision mod before: what explains its absence there. The
// delete expected mod, or a revision an indeterminate put of the key may have made in
// between.
func (ks *keyspace) unseenDelete(key string, mod, by int64) bool {
	if !ks.gapIn(mod, by+1) {
		return false
	}
	for _, w := range ks.unplaced[key] {
		if w.del() && (w.expect == mod || w.expect > mod && w.expect <= by && ks.unseenPut(key, w.expect)) {
			return true
		}
	}
	return false
}

// unseenPut says whether an indeterminate create or update of key that no read saw may
// have made revision rev.
func (ks *keyspace) unseenPut(key string, rev int64) bool {
	if _, known := ks.byRev[rev]; known || !ks.gapIn(rev-1, rev+1) {
		return false
	}
	for _, w := range ks.unplaced[key] {
		if !w.del() {
			return true
		}
	}
	return false
}

func describeVersion(w *kwrite) string {
	if w.del() {
		return fmt.Sprintf("deleted at revision %d by %s", w.rev, w.o.describe())
	}
	return fmt.Sprintf("%q at revision %d by %s", w.value, w.rev, w.o.describe())
}

// conditions checks that each conditional write that happened found its condition
// true, and that each conflict found it false.
func (ks *keyspace) conditions() {
	for _, w := range ks.writes {
		if w.o.status == history.Fail && w.o.err == history.Conflict {
			if w.found == w.expect {
				ks.res.found(KSFalseConflict, w.found, w.o, "%s of %s expecting mod revision %d was refused as a conflict, having found mod revision %d",
					w.o.describe(), w.key, w.expect, w.found)
			}
			continue
		}
		if w.rev == 0 {
			continue
		}
		// The condition is etcd's: the key's mod revision (0 when it is absent) is the
		// one expected.
		prev := ks.at(w.key, w.rev-1)
		mod := int64(0)
		if prev != nil && !prev.del() {
			mod = prev.rev
		}
		switch {
		case mod == w.expect:
		case w.expect == 0 && ks.unseenDelete(w.key, mod, w.rev-1):
		case mod < w.expect && w.expect < w.rev && ks.unseenPut(w.key, w.expect):
		case w.o.f == history.OpCreate:
			ks.res.found(KSLostUpdate, w.rev, w.o, "%s created %s at revision %d, but the key was there: %s",
				w.o.describe(), w.key, w.rev, describeVersion(prev))
		case prev == nil:
			ks.res.found(KSLostUpdate, w.rev, w.o, "%s of %s expecting mod revision %d happened at revision %d, but no write of the key came before",
				w.o.describe(), w.key, w.expect, w.rev)
		default:
			ks.res.found(KSLostUpdate, w.rev, w.o, "%s of %s expecting mod revision %d happened at revision %d, but the key was then %s",
				w.o.describe(), w.key, w.expect, w.rev, describeVersion(prev))
		}
	}
}

// checkReads holds every read to the replay at its revision.
func (ks *keyspace) checkReads() {
	for _, r := range ks.reads {
		if !r.list {
			var got *kv
			if len(r.kvs) > 0 {
				got = &r.kvs[0]
			}
			ks.checkKey(r, r.o.key, got)
			continue
		}
		ks.checkPage(r)
	}
}

// checkKey holds one key of read r to the replay: got is what r returned for it (nil:
// absent).
func (ks *keyspace) checkKey(r *kread, key string, got *kv) {
	want := ks.at(key, r.at)
	if got == nil {
		if want != nil && !want.del() && !ks.unseenDelete(key, want.rev, r.at) {
			ks.res.found(KSStaleRead, want.rev, r.o, "%s read %s at revision %d as absent, but it was %s",
				r.o.describe(), key, r.at, describeVersion(want))
		}
		return
	}
	switch {
	case got.mod > r.at:
		ks.res.found(KSGarbageRead, r.at, r.o, "%s read %s at revision %d with mod revision %d, from its future",
			r.o.describe(), key, r.at, got.mod)
	case want != nil && want.rev > got.mod:
		ks.res.found(KSStaleRead, got.mod, r.o, "%s read %s at revision %d as %q (mod revision %d), but it was %s",
			r.o.describe(), key, r.at, got.value, got.mod, describeVersion(want))
	}
}

// checkPage holds list page r to the replay: its keys in order, within its range and
// limit, each as the replay has it, and none of the range's keys left out before its
// last (before its end, when it says there are no more).
func (ks *keyspace) checkPage(r *kread) {
	for i, x := range r.kvs {
		switch {
		case !strings.HasPrefix(x.key, r.prefix) || x.key < r.start:
			ks.res.found(KSIncompleteList, r.at, r.o, "%s of %q from %q listed %s, outside its range", r.o.describe(), r.prefix, r.start, x.key)
		case i > 0 && x.key <= r.kvs[i-1].key:
			ks.res.found(KSIncompleteList, r.at, r.o, "%s listed %s after %s: out of order", r.o.describe(), x.key, r.kvs[i-1].key)
		}
		ks.checkKey(r, x.key, &r.kvs[i])
	}
	if r.limit > 0 && int64(len(r.kvs)) > r.limit {
		ks.res.found(KSIncompleteList, r.at, r.o, "%s listed %d keys, over its limit of %d", r.o.describe(), len(r.kvs), r.limit)
	}
	listed := map[string]bool{}
	for _, x := range r.kvs {
		listed[x.key] = true
	}
	keys := ks.prefixes[r.prefix]
	from, _ := slices.BinarySearch(keys, r.start)
	for _, k := range keys[from:] {
		if r.more && len(r.kvs) > 0 && k > r.kvs[len(r.kvs)-1].key || r.more && len(r.kvs) == 0 {
			break
		}
		if listed[k] {
			continue
		}
		if w := ks.at(k, r.at); w != nil && !w.del() && !ks.unseenDelete(k, w.rev, r.at) {
			ks.res.found(KSIncompleteList, w.rev, r.o, "%s of %q at revision %d left out %s, which was %s",
				r.o.describe(), r.prefix, r.at, k, describeVersion(w))
		}
	}
}

// realtime checks that revisions never go back in real time: an operation that began
// after another finished answers at the revision that one saw or later (a write, at a
// later one, since it makes a new revision).
func (ks *keyspace) realtime() {
	var pts []revPoint
	for _, w := range ks.writes {
		if w.rev > 0 && w.o.status == history.OK {
			pts = append(pts, revPoint{w.o, w.rev, true})
		}
	}
	for _, r := range ks.reads {
		pts = append(pts, revPoint{r.o, r.header, false})
	}
	revisionOrder(pts, func(p, seen revPoint) {
		ks.res.found(KSRevisionOrder, p.rev, p.o, "%s answered at revision %d, but it began after %s had answered at revision %d",
			p.o.describe(), p.rev, seen.o.describe(), seen.rev)
	})
}

// compactedBefore returns an acknowledged compaction past revision at that finished
// before o began, and its revision (nil: none).
func (ks *keyspace) compactedBefore(o *op, at int64) (*op, int64) {
	for _, c := range ks.compacts {
		if c.status == history.OK && c.done < o.call && at < c.rev {
			return c.op, c.rev
		}
	}
	return nil, 0
}

// compactedPast says whether a compaction past revision rev was asked before by.
func (ks *keyspace) compactedPast(rev, by int64) bool {
	for _, c := range ks.compacts {
		if c.rev > rev && c.call < by {
			return true
		}
	}
	return false
}

// compaction checks that reads below a revision compacted before they began fail, and
// that a read fails as compacted only below a compaction asked before it ended.
func (ks *keyspace) compaction() {
	for _, r := range ks.reads {
		if r.latest {
			continue
		}
		if c, rev := ks.compactedBefore(r.o, r.at); c != nil {
			ks.res.found(KSCompactedRead, r.at, r.o, "%s read revision %d, but %s had compacted to revision %d before it began",
				r.o.describe(), r.at, c.describe(), rev)
		}
	}
	for _, r := range ks.refused {
		if r.latest {
			continue // the latest revision is never compacted: unavailability, not a claim
		}
		asked := false
		for _, c := range ks.compacts {
			asked = asked || c.call < r.o.done && r.at < c.rev
		}
		if !asked {
			ks.res.found(KSFalseCompaction, r.at, r.o, "%s was refused revision %d as compacted, but no compaction past it had been asked",
				r.o.describe(), r.at)
		}
	}
}

// checkWatches holds every watch to the replay: its events in revision order, none
// twice, each the write the replay has at its revision under the watched prefix, with
// the key's previous value, and every such write from the watch's start to its last
// event or progress notification delivered.
//
// A watch from a revision compacted before it began need not be cancelled: etcd serves
// watches from the member's own state, not linearizably, and a member that has not
// applied the compaction yet still has the revisions. What such a watch delivers is
// held to the replay like any other.
func (ks *keyspace) checkWatches() {
	ks.countResumed()
	for _, w := range ks.watches {
		// lastEvent is the highest revision of an event delivered so far, progress the
		// highest a progress notification claimed: every event at or below it delivered
		lastEvent, progress := int64(0), int64(0)
		seen := map[[2]string]bool{}
		for i, e := range w.events {
			if e.typ == history.WatchProgress {
				if e.rev < lastEvent {
					ks.res.found(KSWatchProgress, e.rev, w.o, "%s from revision %d sent a progress notification at revision %d, behind revision %d it had delivered",
						w.o.describe(), w.from, e.rev, lastEvent)
				}
				progress = max(progress, e.rev)
				continue
			}
			switch {
			case e.rev < lastEvent:
				ks.res.found(KSWatchOrder, e.rev, w.o, "%s from revision %d delivered revision %d (%s %s) after revision %d: it went back in time",
					w.o.describe(), w.from, e.rev, e.typ, e.key, lastEvent)
			case e.rev < w.from:
				ks.res.found(KSWatchOrder, e.rev, w.o, "%s from revision %d delivered revision %d (%s %s), before its start",
					w.o.describe(), w.from, e.rev, e.typ, e.key)
			case e.rev <= progress:
				ks.res.found(KSWatchProgress, e.rev, w.o, "%s from revision %d delivered revision %d (%s %s) after a progress notification at revision %d had said every event up to it was delivered",
					w.o.describe(), w.from, e.rev, e.typ, e.key, progress)
			}
			lastEvent = max(lastEvent, e.rev)
			id := [2]string{strconv.FormatInt(e.rev, 10), e.key}
			if seen[id] {
				ks.res.found(KSWatchDuplicate, e.rev, w.o, "%s delivered %s %s at revision %d twice (event %d)", w.o.describe(), e.typ, e.key, e.rev, i+1)
				continue
			}
			seen[id] = true
			ks.checkEvent(w, e)
		}
		// a cancel for compaction says the watch's next revision was compacted: etcd
		// cancels a watch whose next revision is below the compact revision, and a
		// watch goes on from its last event's revision + 1 (a progress notification
		// does not move it, in the client or the server), so a cancel at or below the
		// last event means the member took the watch back to a revision it had passed
		// (and the compaction was asked before the watch ended)
		switch {
		case w.compactRev > 0 && lastEvent >= w.compactRev:
			ks.res.found(KSWatchCompaction, w.compactRev, w.o, "%s from revision %d was cancelled as compacted at revision %d after it had delivered revision %d: its member took it back to a revision before that",
				w.o.describe(), w.from, w.compactRev, lastEvent)
		case w.compactRev > 0 && !ks.compactedPast(w.compactRev-1, w.o.done):
			ks.res.found(KSWatchCompaction, w.compactRev, w.o, "%s from revision %d was cancelled as compacted at revision %d, but no compaction to it had been asked",
				w.o.describe(), w.from, w.compactRev)
		}
		// every write of the prefix in [from, last] delivered, where last is the last
		// event's revision or the highest progress notification's; but a compaction
		// asked before the watch began, at or above its start, removed the deletes at
		// or below it (etcd drops tombstones when it compacts: a watch from the
		// compacted revision itself is allowed and cannot see them)
		tombstonesGone := int64(0)
		for _, c := range ks.compacts {
			if c.call < w.o.call && c.rev >= w.from {
				tombstonesGone = max(tombstonesGone, c.rev)
			}
		}
		lo, _ := slices.BinarySearch(ks.revs, w.from)
		for _, rev := range ks.revs[lo:] {
			if rev > max(lastEvent, progress) {
				break
			}
			x := ks.byRev[rev]
			if !strings.HasPrefix(x.key, w.prefix) || seen[[2]string{strconv.FormatInt(rev, 10), x.key}] || x.del() && rev <= tombstonesGone {
				continue
			}
			if rev > lastEvent {
				ks.res.found(KSWatchProgress, rev, w.o, "%s from revision %d: a progress notification at revision %d claimed %s %s, which it never delivered",
					w.o.describe(), w.from, progress, x.key, describeVersion(x))
				continue
			}
			ks.res.found(KSWatchLost, rev, w.o, "%s from revision %d, which got to revision %d, never delivered %s %s",
				w.o.describe(), w.from, lastEvent, x.key, describeVersion(x))
		}
	}
}

// countResumed counts the watches that began from a revision at or below one a write
// had been acknowledged at before they began.
func (ks *keyspace) countResumed() {
	var acked []*kwrite
	for _, x := range ks.byRev {
		if x.o.status == history.OK {
			acked = append(acked, x)
		}
	}
	slices.SortFunc(acked, func(a, b *kwrite) int { return cmp.Compare(a.o.done, b.o.done) })
	highest := make([]int64, len(acked)) // highest[i]: the highest revision of acked[:i+1]
	for i, x := range acked {
		highest[i] = x.rev
		if i > 0 {
			highest[i] = max(highest[i], highest[i-1])
		}
	}
	for _, w := range ks.watches {
		n, _ := slices.BinarySearchFunc(acked, w.o.call, func(x *kwrite, call int64) int {
			if x.o.done < call {
				return -1
			}
			return 1
		})
		if n > 0 && w.from <= highest[n-1] {
			ks.res.watch.Resumed++
		}
	}
}

// checkEvent holds one event of w to the write the replay has at its revision.
func (ks *keyspace) checkEvent(w *kwatch, e wevent) {
	x, known := ks.byRev[e.rev]
	switch {
	case !known:
		if len(ks.unplaced[e.key]) == 0 {
			ks.res.found(KSWatchWrong, e.rev, w.o, "%s delivered %s %s at revision %d, which no write of that key made", w.o.describe(), e.typ, e.key, e.rev)
		}
		return
	case !strings.HasPrefix(e.key, w.prefix):
		ks.res.found(KSWatchWrong, e.rev, w.o, "%s of %q delivered %s, outside its prefix", w.o.describe(), w.prefix, e.key)
		return
	case x.key != e.key || x.del() != (e.typ == history.WatchDelete) || !x.del() && x.value != e.value:
		ks.res.found(KSWatchWrong, e.rev, w.o, "%s delivered %s %s = %q at revision %d, but the write there was %s %s",
			w.o.describe(), e.typ, e.key, e.value, e.rev, x.key, describeVersion(x))
		return
	}
	before := ks.at(e.key, e.rev-1)
	want, mod := "", int64(0)
	if before != nil && !before.del() {
		want, mod = before.value, before.rev
	}
	switch {
	case e.prev == want:
	case len(ks.unplaced[e.key]) > 0 && ks.gapIn(mod, e.rev): // an unseen write may have come between
	case e.prev == "" && ks.compactedPast(mod, w.o.done):
		// etcd sends no previous value once its revision is compacted away
	default:
		ks.res.found(KSWatchPrevKV, e.rev, w.o, "%s delivered %s %s at revision %d with previous value %q, but it was %q",
			w.o.describe(), e.typ, e.key, e.rev, e.prev, want)
	}
}
