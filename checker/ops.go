package checker

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/faultline/faultline/history"
)

// openEnd is the return time of an operation that never completed for sure: it may
// take effect at any time after its invoke.
const openEnd = math.MaxInt64

// op is one client operation: an invoke paired with its completion.
type op struct {
	process int
	f, key  string
	status  history.Type // OK, Fail or Info (Info also for a missing completion); the models leave fails out
	in, out history.Value
	call    int64
	ret     int64 // completion time; openEnd for info when used by porcupine
	done    int64 // the completion event's time (for info: when the client gave up), -1 if none
	invIdx  int64
	retIdx  int64 // -1 when the invoke never completed
	node    string
	err     string
	rev     int64 // the store's revision the completion reports (history.Event.Rev); 0: none
	untimed bool  // the history's times are only its order: describe by events
	// guessed says why the pairing had to guess this operation's outcome or times (a
	// reused process, a completion of another operation, a completion timed before its
	// invoke); "" when it did not. Its key cannot be judged valid.
	guessed string
}

// open reports whether the operation's outcome is unknown.
func (o *op) open() bool { return o.status == history.Info }

// end is the time the operation's effect is known to be over: its return, or openEnd.
func (o *op) end() int64 {
	if o.open() {
		return openEnd
	}
	return o.ret
}

// pairing is the client operations of a history and what the pairing had to forgive.
type pairing struct {
	ops     []op // in invoke order; fails included (skip them: they never took effect)
	nemesis []history.Event
	notes   []string
	// ignored counts the events the pairing could not interpret (each also a note).
	ignored ignoredOps
	// untimed is set when every event's time is its index, as the Jepsen readers give
	// histories without clock readings: times then order events but measure nothing.
	untimed bool
}

// pairOps pairs invokes with their completions per process (see Pairer).
func pairOps(events []history.Event) pairing {
	pr := NewPairer(len(events))
	pr.Add(events)
	return pr.done()
}

// Pairer pairs a history's events into client operations as they are read, so that a
// history need not be held whole: what Check judges and the views of a run show. Add
// events in history order, a batch at a time; then History.
//
// It pairs invokes with their completions per process. An invoke followed by another
// invoke on the same process, or never completed, is indeterminate; a completion
// without an invoke is noted and ignored; a completion that names another operation (f
// or key) than its invoke leaves the invoke indeterminate. What the pairing could not
// interpret is noted and counted, by key (an operation never completed is not: a
// history cut short by a crash is still well formed).
type Pairer struct {
	p       pairing
	pf      *prefaulter
	pending pendingOps
	events  int
	t0, t1  int64
}

// NewPairer returns a Pairer; events, if known, is about how many events will come.
func NewPairer(events int) *Pairer {
	ops := make([]op, 0, events/2+1)
	return &Pairer{p: pairing{ops: ops, untimed: true}, pf: newPrefaulter(ops), t0: math.MaxInt64, t1: math.MinInt64}
}

// Add pairs the next events of the history. It keeps none of them but nemesis events;
// what it keeps of the others shares their strings and values.
func (pr *Pairer) Add(events []history.Event) {
	p := &pr.p
	for i := range events {
		e := &events[i]
		pr.events++
		pr.t0, pr.t1 = min(pr.t0, e.Time), max(pr.t1, e.Time)
		p.untimed = p.untimed && e.Time == e.Index
		if e.IsNemesis() {
			p.nemesis = append(p.nemesis, *e)
			continue
		}
		if e.Type == history.Invoke {
			if i, ok := pr.pending.take(e.Process); ok {
				p.notes = append(p.notes, fmt.Sprintf("event %d: process %d invoked again before event %d completed; taken as indeterminate", e.Index, e.Process, p.ops[i].invIdx))
				p.ops[i].guessed = whyReinvoked
				p.ignored.add(p.ops[i].key, whyReinvoked)
			}
			pr.pending.put(e.Process, len(p.ops))
			if len(p.ops)&1023 == 0 {
				pr.pf.at(len(p.ops))
			}
			p.ops = append(p.ops, op{process: e.Process, f: e.F, key: e.Key, status: history.Info,
				in: e.Value, call: e.Time, ret: openEnd, done: -1, invIdx: e.Index, retIdx: -1, node: e.Node})
			continue
		}
		i, ok := pr.pending.take(e.Process)
		if !ok {
			p.notes = append(p.notes, fmt.Sprintf("event %d: %s of %s by process %d has no invoke; ignored", e.Index, e.Type, e.F, e.Process))
			p.ignored.add(e.Key, whyNoInvoke)
			continue
		}
		o := &p.ops[i]
		if e.F != "" && e.F != o.f || e.Key != "" && e.Key != o.key {
			p.notes = append(p.notes, fmt.Sprintf("event %d: %s of %s on key %q completes event %d, a %s on key %q; the %s is taken as indeterminate",
				e.Index, e.Type, e.F, e.Key, o.invIdx, o.f, o.key, o.f))
			o.guessed = whyMispaired
			p.ignored.add(o.key, whyMispaired)
			continue // o stays open: info, never completed
		}
		o.status, o.out, o.done, o.retIdx, o.err, o.rev = e.Type, e.Value, e.Time, e.Index, e.Error, e.Rev
		if e.Node != "" {
			o.node = e.Node
		}
		if e.Time < o.call {
			p.notes = append(p.notes, fmt.Sprintf("event %d: completes event %d but is timed before it; taken as completing at its invoke", e.Index, o.invIdx))
			o.done = o.call
			o.guessed = whyTimedBefore
			p.ignored.add(o.key, whyTimedBefore)
		}
		if e.Type == history.OK {
			o.ret = o.done
		} else {
			o.ret = openEnd
		}
	}
}

// done ends the pairing.
func (pr *Pairer) done() pairing {
	pr.pf.stop()
	pr.pf = nil
	p := pr.p
	p.untimed = p.untimed && pr.events > 0
	for i := range p.ops {
		p.ops[i].untimed = p.untimed
	}
	pr.p = pairing{}
	return p
}

// History ends the pairing and returns the paired history. The Pairer is then spent.
func (pr *Pairer) History() *History {
	h := &History{p: pr.done(), events: pr.events, t0: pr.t0, t1: pr.t1}
	if h.events == 0 {
		h.t0, h.t1 = 0, 0
	}
	return h
}

// History is a history paired into client operations (see Pairer), with its nemesis
// events: all that Check and the views of a run need of it.
type History struct {
	p      pairing
	events int
	t0, t1 int64
}

// Pair pairs a whole history.
func Pair(events []history.Event) *History {
	pr := NewPairer(len(events))
	pr.Add(events)
	return pr.History()
}

// SmallHistory is the number of events up to which a history's check and report are
// left to the collector's own pacing: a forced collection between them (to start the
// report's heap target from what is live) saves memory only on large histories, and on
// a small one was a fifth of a whole check's CPU (the Jepsen corpus's 170-event logs).
const SmallHistory = 100_000

// Events is the number of events the history had.
func (h *History) Events() int { return h.events }

// Span is the time of its earliest event and of its latest (0, 0 when it had none).
func (h *History) Span() (first, last int64) { return h.t0, h.t1 }

// Untimed reports whether every event's time is its index: the history has no clock
// readings, only an order (the Jepsen readers give such histories).
func (h *History) Untimed() bool { return h.p.untimed }

// Nemesis returns its nemesis events, in order.
func (h *History) Nemesis() []history.Event { return h.p.nemesis }

// Len is the number of client operations.
func (h *History) Len() int { return len(h.p.ops) }

// Operations yields the client operations in invoke order.
func (h *History) Operations(yield func(Operation) bool) {
	for i := range h.p.ops {
		if !yield(h.p.ops[i].view()) {
			return
		}
	}
}

// Why operations are left out as malformed (or their outcome guessed): each a phrase
// that follows a count.
const (
	whyNoInvoke    = "completion without an invoke (ignored)"
	whyReinvoked   = "invoke whose process invoked again before it completed (taken as indeterminate)"
	whyMispaired   = "completion naming another operation than its invoke (taken as indeterminate)"
	whyTimedBefore = "completion timed before its invoke (its times guessed)"
	whyShape       = "operation with a value of an unexpected shape (ignored)"
	whyForeign     = "operation the workload has no model for (ignored)"
)

// ignoredOps counts the operations the checker could not interpret — malformed, or
// paired only by a guess — by why and by key. They are not what the checker leaves out
// soundly (fails, which never took effect; indeterminate operations that cannot
// matter; nemesis events): any of them may be the violation, so a history with one is
// never valid.
type ignoredOps struct {
	n    int
	why  map[string]int
	keys map[string]int
}

func (g *ignoredOps) add(key, why string) {
	if g.why == nil {
		g.why, g.keys = map[string]int{}, map[string]int{}
	}
	g.n++
	g.why[why]++
	g.keys[key]++
}

func (g *ignoredOps) merge(o ignoredOps) {
	for w, n := range o.why {
		if g.why == nil {
			g.why, g.keys = map[string]int{}, map[string]int{}
		}
		g.why[w] += n
		g.n += n
	}
	for k, n := range o.keys {
		g.keys[k] += n
	}
}

// String says how many operations were ignored and why, largest cause first.
func (g ignoredOps) String() string {
	whys := make([]string, 0, len(g.why))
	for w := range g.why {
		whys = append(whys, w)
	}
	sort.Slice(whys, func(a, b int) bool {
		return g.why[whys[a]] > g.why[whys[b]] || g.why[whys[a]] == g.why[whys[b]] && whys[a] < whys[b]
	})
	parts := make([]string, len(whys))
	for i, w := range whys {
		parts[i] = fmt.Sprintf("%d × %s", g.why[w], w)
	}
	return fmt.Sprintf("%d %s could not be interpreted: %s (see notes)", g.n, plural(g.n, "operation", "operations"), strings.Join(parts, ", "))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// pendingOps maps a process to its operation in flight: a slice for the small,
// dense process ids clients use, a map beyond.
type pendingOps struct {
	dense  []int32 // index+1; 0 for none
	sparse map[int]int
}

const maxDenseProcess = 1 << 16

func (p *pendingOps) put(process, i int) {
	if process >= maxDenseProcess {
		if p.sparse == nil {
			p.sparse = map[int]int{}
		}
		p.sparse[process] = i
		return
	}
	if process >= len(p.dense) {
		p.dense = append(p.dense, make([]int32, process+1-len(p.dense)+len(p.dense))...)
	}
	p.dense[process] = int32(i + 1)
}

// take returns and forgets the process's operation in flight.
func (p *pendingOps) take(process int) (int, bool) {
	if process >= maxDenseProcess {
		i, ok := p.sparse[process]
		delete(p.sparse, process)
		return i, ok
	}
	if process >= len(p.dense) || p.dense[process] == 0 {
		return 0, false
	}
	i := int(p.dense[process]) - 1
	p.dense[process] = 0
	return i, true
}

// byKey groups the operations that may have taken effect (not the fails) by key,
// keeping their order; keys are returned sorted.
func byKey(ops []op) ([]string, map[string][]*op) {
	n := map[string]int{} // a first pass sizes every key's slice: one array for them all
	for i := range ops {
		if ops[i].status != history.Fail {
			n[ops[i].key]++
		}
	}
	all := make([]*op, 0, len(ops))
	m := make(map[string][]*op, len(n))
	for i := range ops {
		if ops[i].status != history.Fail {
			k := ops[i].key
			s, ok := m[k]
			if !ok {
				s = all[len(all) : len(all) : len(all)+n[k]]
				all = all[:len(all)+n[k]]
			}
			m[k] = append(s, &ops[i])
		}
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, m
}

// secs renders a history time (ns) for humans.
func secs(t int64) string {
	if t == openEnd {
		return "∞"
	}
	return fmt.Sprintf("%.3fs", float64(t)/1e9)
}

// describe renders an operation for humans: "read by process 7 at 12.400s–12.600s on
// n2"; in a history without times, "read by process 7 (events 12–15)".
func (o *op) describe() string {
	var s string
	switch {
	case o.untimed && o.open():
		s = fmt.Sprintf("%s by process %d (event %d, indeterminate)", o.f, o.process, o.invIdx)
	case o.untimed:
		s = fmt.Sprintf("%s by process %d (events %d–%d)", o.f, o.process, o.invIdx, o.retIdx)
	case o.open():
		s = fmt.Sprintf("%s by process %d invoked at %s (indeterminate)", o.f, o.process, secs(o.call))
	default:
		s = fmt.Sprintf("%s by process %d at %s–%s", o.f, o.process, secs(o.call), secs(o.end()))
	}
	if o.node != "" {
		s += " on " + o.node
	}
	return s
}
