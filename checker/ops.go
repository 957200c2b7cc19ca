package checker

import (
	"fmt"
	"math"
	"sort"

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
	untimed bool // the history's times are only its order: describe by events
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
	// untimed is set when every event's time is its index, as the Jepsen readers give
	// histories without clock readings: times then order events but measure nothing.
	untimed bool
}

// pairOps pairs invokes with their completions per process. An invoke followed by
// another invoke on the same process, or never completed, is indeterminate; a
// completion without an invoke is noted and ignored.
func pairOps(events []history.Event) pairing {
	p := pairing{ops: make([]op, 0, len(events)/2+1)}
	var pending pendingOps
	p.untimed = len(events) > 0
	for _, e := range events {
		p.untimed = p.untimed && e.Time == e.Index
		if e.IsNemesis() {
			p.nemesis = append(p.nemesis, e)
			continue
		}
		if e.Type == history.Invoke {
			if i, ok := pending.take(e.Process); ok {
				p.notes = append(p.notes, fmt.Sprintf("event %d: process %d invoked again before event %d completed; taken as indeterminate", e.Index, e.Process, p.ops[i].invIdx))
			}
			pending.put(e.Process, len(p.ops))
			p.ops = append(p.ops, op{process: e.Process, f: e.F, key: e.Key, status: history.Info,
				in: e.Value, call: e.Time, ret: openEnd, done: -1, invIdx: e.Index, retIdx: -1, node: e.Node})
			continue
		}
		i, ok := pending.take(e.Process)
		if !ok {
			p.notes = append(p.notes, fmt.Sprintf("event %d: %s of %s by process %d has no invoke; ignored", e.Index, e.Type, e.F, e.Process))
			continue
		}
		o := &p.ops[i]
		o.status, o.out, o.done, o.retIdx, o.err = e.Type, e.Value, e.Time, e.Index, e.Error
		if e.Node != "" {
			o.node = e.Node
		}
		if e.Time < o.call {
			p.notes = append(p.notes, fmt.Sprintf("event %d: completes event %d but is timed before it; taken as completing at its invoke", e.Index, o.invIdx))
			o.done = o.call
		}
		if e.Type == history.OK {
			o.ret = o.done
		} else {
			o.ret = openEnd
		}
	}
	for i := range p.ops {
		p.ops[i].untimed = p.untimed
	}
	return p
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
	m := map[string][]*op{}
	for i := range ops {
		if ops[i].status != history.Fail {
			m[ops[i].key] = append(m[ops[i].key], &ops[i])
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
