package checker

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/history"
)

// vizData is what Visualize draws: the failing keys' verbose check.
type vizData struct {
	model porcupine.Model
	info  porcupine.LinearizationInfo
}

// maxExplained bounds the failing keys checked again verbosely and drawn; the others
// are explained only by the simple stories.
const maxExplained = 10

// maxContradictionDrawn bounds the keys whose reads contradict each other that are
// drawn: porcupine's search of them, with the naive list model, grows exponentially.
const maxContradictionDrawn = 40

// maxDrawnOps bounds the operations of a key that is checked again verbosely and drawn:
// porcupine's view of a key of 125k operations is 30 MB, takes a browser a minute and a
// half to open and its verbose search minutes to make. Such a key is explained by the
// simple stories (and the report's timeline), and the explanation says it is not drawn.
const maxDrawnOps = 20000

// explainGrace is how far past the check's deadline the explanation of keys proved
// illegal may run.
const explainGrace = 500 * time.Millisecond

// explainFailures fills res.Failures with an explanation per failing key and returns the
// data for the visualization: the verbose search of the keys drawn, drawing's when
// confirm made it for the same keys, else made here.
func explainFailures(ctx context.Context, job linJob, model porcupine.Model, failed []keyHistory, res *LinResult, drawing *verbosePass) *vizData {
	drawnIdx, why := drawSelect(failed)
	var drawn []keyHistory
	for i, k := range failed {
		if why[i] == "" {
			drawn = append(drawn, k)
			continue
		}
		text, blamed := explainKey(model, job.model, k, nil, why[i])
		if strings.HasPrefix(why[i], "not drawn") {
			text += " (" + why[i] + ")"
		}
		res.Failures = append(res.Failures, KeyFailure{Key: k.key, Explanation: text + faultsDuring(job.faults, k.ops, blamed), Op: blamed, Ops: len(k.pops)})
	}
	if len(drawnIdx) == 0 {
		return nil
	}
	if drawing == nil || !drawing.of(drawn) {
		drawing = runVerbose(ctx, job, model, drawn)
	}
	partials := drawing.info.PartialLinearizationsOperations()
	for i, k := range drawn {
		var longest []porcupine.Operation
		if i < len(partials) {
			for _, p := range partials[i] {
				if len(p) > len(longest) {
					longest = p
				}
			}
		}
		text, blamed := explainKey(drawing.m, job.model, k, longest, "the search for an explanation was cut short")
		text += faultsDuring(job.faults, k.ops, blamed)
		res.Failures = append(res.Failures, KeyFailure{Key: k.key, Explanation: text, Op: blamed, Ops: len(k.pops)})
	}
	return &vizData{model: drawing.m, info: drawing.info}
}

// drawSelect says which failing keys are drawn (searched again verbosely): their
// indices, in order, and for every other key why it is not (why[i] is "" for a drawn
// key). It depends on the keys alone, so confirm and explainFailures agree on it.
func drawSelect(failed []keyHistory) (drawn []int, why []string) {
	why = make([]string, len(failed))
	for i, k := range failed {
		switch {
		case len(drawn) == maxExplained:
			why[i] = fmt.Sprintf("not drawn: only the first %d failing keys are", maxExplained)
		case k.contradiction && len(k.pops) > maxContradictionDrawn:
			why[i] = "its reads contradict each other; too many operations to draw"
		case len(k.pops) > maxDrawnOps:
			why[i] = fmt.Sprintf("not drawn: %d operations, more than the %d the linearizability view can show", len(k.pops), maxDrawnOps)
		default:
			drawn = append(drawn, i)
		}
	}
	return drawn, why
}

// verbosePass is Porcupine's verbose search of the keys drawn, one partition a key: the
// drawing and the explanations replay its partial linearizations, and confirm reads
// from it which keys Porcupine found an order for.
type verbosePass struct {
	keys []string // the keys searched, in order
	ops  []int    // their numbers of operations
	m    porcupine.Model
	info porcupine.LinearizationInfo
	// cut is set when the search did not finish: the deadline, or ctx. A key it found
	// no order for is then undecided.
	cut bool
}

// runVerbose searches the keys verbosely, in what is left of the check's time and
// explainGrace past it: a check never overruns its deadline by more to explain. A pass
// cut short still leaves its partial linearizations, and the explanation says less.
func runVerbose(ctx context.Context, job linJob, model porcupine.Model, keys []keyHistory) *verbosePass {
	v := &verbosePass{}
	var all []porcupine.Operation
	groups := make([][]porcupine.Operation, len(keys))
	rows := map[int]int{} // process -> dense row of the drawing
	for i, k := range keys {
		v.keys, v.ops = append(v.keys, k.key), append(v.ops, len(k.pops))
		for j, p := range k.pops {
			o := k.ops[j]
			if _, ok := rows[o.process]; !ok {
				rows[o.process] = len(rows)
			}
			p.Metadata, p.ClientId = o, rows[o.process]
			groups[i] = append(groups[i], p)
		}
		all = append(all, groups[i]...)
	}
	m := model
	m.Partition = func([]porcupine.Operation) [][]porcupine.Operation { return groups }
	m.DescribeOperationMetadata = func(md any) string {
		o, ok := md.(*op)
		if !ok {
			return ""
		}
		return fmt.Sprintf("process %d on %s, events %d–%d %s", o.process, orDash(o.node), o.invIdx, o.retIdx, o.err)
	}
	// The search stops when ctx ends; the model kept for the drawing and the
	// explanations must not, since they replay the partial linearizations later.
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	search := m
	search.Step = func(state, input, output any) (bool, any) {
		if stop.Load() {
			return false, state
		}
		return m.Step(state, input, output)
	}
	var timeout time.Duration
	if !job.deadline.IsZero() {
		timeout = max(time.Until(job.deadline), 0) + explainGrace
	}
	r, info := porcupine.CheckOperationsVerbose(search, all, timeout)
	v.m, v.info = m, info
	v.cut = r == porcupine.Unknown || stop.Load() || ctx.Err() != nil
	return v
}

// of reports whether the pass searched exactly these keys, in this order.
func (v *verbosePass) of(keys []keyHistory) bool {
	if len(keys) != len(v.keys) {
		return false
	}
	for i, k := range keys {
		if k.key != v.keys[i] || len(k.pops) != v.ops[i] {
			return false
		}
	}
	return true
}

// ordered reports whether the pass found an order of all of key i's operations: a
// partial linearization that covers them is a whole one, a proof (Porcupine records
// the whole linearization of a partition it finds legal).
func (v *verbosePass) ordered(i int) bool {
	partials := v.info.PartialLinearizations()
	if i >= len(partials) {
		return false
	}
	for _, p := range partials[i] {
		if len(p) == v.ops[i] {
			return true
		}
	}
	return false
}

// confirm settles the keys only the register search found illegal (unconfirmed), as
// Porcupine answers: its answer stands. The failing keys that are drawn are searched
// verbosely, once, and that search both confirms them and is returned for the drawing
// (an illegal key used to be searched three times: by the register search, by
// Porcupine, and by Porcupine again for the drawing). An unconfirmed key that is not
// drawn is searched plainly. A key Porcupine finds an order for becomes Ok, with a note;
// one its search could not finish, undecided. Either changes the drawing's keys, which
// are then searched again (rare: a fault of the register search's, or the deadline).
func confirm(ctx context.Context, job linJob, model porcupine.Model, keys []keyHistory, outcomes []porcupine.CheckResult) *verbosePass {
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	plain := model
	plain.Step = func(state, input, output any) (bool, any) {
		if stop.Load() {
			return false, state
		}
		return model.Step(state, input, output)
	}
	for {
		var failed []int
		var fk []keyHistory
		pending := false
		for i := range keys {
			if keys[i].ignored == 0 && outcomes[i] == porcupine.Illegal {
				failed, fk = append(failed, i), append(fk, keys[i])
				pending = pending || keys[i].unconfirmed
			}
		}
		if !pending {
			return nil
		}
		drawnIdx, why := drawSelect(fk)
		for j, i := range failed {
			if why[j] != "" && keys[i].unconfirmed {
				outcomes[i] = confirmOne(ctx, plain, &keys[i], job.deadline, &stop)
			}
		}
		var drawn []keyHistory
		pending = false
		for _, j := range drawnIdx {
			drawn = append(drawn, keys[failed[j]])
			pending = pending || keys[failed[j]].unconfirmed
		}
		if !pending {
			return nil // the drawing's keys were all confirmed already: explainFailures draws them
		}
		pass := runVerbose(ctx, job, model, drawn)
		changed := false
		for d, j := range drawnIdx {
			k := &keys[failed[j]]
			if !k.unconfirmed {
				continue
			}
			k.unconfirmed = false
			switch {
			case pass.ordered(d):
				outcomes[failed[j]], changed = porcupine.Ok, true
				k.notes = append(k.notes, searchDisagreed(k.key))
			case pass.cut:
				outcomes[failed[j]], changed = porcupine.Unknown, true
			}
		}
		if !changed {
			return pass
		}
	}
}

// faultsDuring names the faults in force while the blamed operation ran.
func faultsDuring(faults []window, ops []*op, blamed int64) string {
	var o *op
	for _, c := range ops {
		if c.invIdx == blamed {
			o = c
		}
	}
	if o == nil {
		return ""
	}
	var names []string
	for _, w := range faults {
		if w.start <= o.end() && w.end >= o.call {
			names = append(names, w.String())
		}
	}
	if len(names) == 0 {
		return " (no fault was in force during it)"
	}
	return " (faults in force during it: " + strings.Join(names, "; ") + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// explainKey tells why one key has no linearization: first by a simple story that is a
// proof on its own (a stale read, a value never written, a read of the future), then
// from porcupine's longest partial linearization.
func explainKey(m porcupine.Model, modelName string, k keyHistory, longest []porcupine.Operation, noDetail string) (string, int64) {
	prefix := fmt.Sprintf("key %q: ", k.key)
	byRet := make([]*op, 0, len(k.ops))
	for i := range k.ops {
		if !k.ops[i].open() {
			byRet = append(byRet, k.ops[i])
		}
	}
	sort.SliceStable(byRet, func(a, b int) bool { return byRet[a].ret < byRet[b].ret })
	for _, o := range byRet {
		var story string
		if modelName == "list" {
			story = listStory(o, k.ops)
		} else {
			story = registerStory(o, k.ops)
		}
		if story != "" {
			return prefix + story, o.invIdx
		}
	}
	if len(longest) == 0 {
		return fmt.Sprintf("%sno legal order of its %d operations exists (%s)", prefix, len(k.pops), noDetail), -1
	}
	story, idx := partialStory(m, k, longest)
	return prefix + story, idx
}

// writers returns the operations of ops that may have set the register to s.
func writers(ops []*op, s regState) []*op {
	var out []*op
	for i := range ops {
		o := ops[i]
		switch {
		case o.f == history.OpWrite && o.in.Kind == history.Str && o.in.S == s.v:
		case o.f == history.OpCAS && o.in.Kind == history.List && len(o.in.L) == 2 && o.in.L[1] == s.v:
		default:
			continue
		}
		out = append(out, o)
	}
	return out
}

// registerStory explains a read (or a successful cas) o that saw a value it cannot have
// seen, or returns "".
func registerStory(o *op, ops []*op) string {
	var saw regState
	var what string
	switch {
	case o.f == history.OpRead:
		s, err := regValue(o.out)
		if err != nil {
			return ""
		}
		saw, what = s, fmt.Sprintf("%s returned %s", o.describe(), s)
	case o.f == history.OpCAS && o.in.Kind == history.List && len(o.in.L) == 2:
		saw = regState{set: true, v: o.in.L[0]}
		what = fmt.Sprintf("%s succeeded expecting %s", o.describe(), saw)
	default:
		return ""
	}
	ws := writers(ops, saw)
	if saw.set {
		if len(ws) == 0 {
			return fmt.Sprintf("%s, but no write or cas on the key ever wrote %s", what, saw)
		}
		first := ws[0]
		for _, w := range ws {
			if w.call < first.call {
				first = w
			}
		}
		if first.call > o.ret {
			return fmt.Sprintf("%s, before any write of %s began (the first, %s)", what, saw, first.describe())
		}
	}
	return staleStory(o, ops, saw, ws, what)
}

// staleStory finds a write that overwrote every write of saw and completed before o
// began: o's view of saw was stale.
func staleStory(o *op, ops []*op, saw regState, ws []*op, what string) string {
	lastWrite := int64(-1 << 62)
	for _, w := range ws {
		lastWrite = max(lastWrite, w.end())
	}
	for i := range ops {
		w := ops[i]
		if w == o || w.open() || w.ret >= o.call || w.call <= lastWrite {
			continue
		}
		var wrote regState
		switch {
		case w.f == history.OpWrite && w.in.Kind == history.Str:
			wrote = regState{set: true, v: w.in.S}
		case w.f == history.OpCAS && w.in.Kind == history.List && len(w.in.L) == 2:
			wrote = regState{set: true, v: w.in.L[1]}
		default:
			continue
		}
		if wrote == saw {
			continue
		}
		restore := "and no later write restores " + saw.String()
		if !saw.set {
			restore = "and nothing deletes the key"
		}
		return fmt.Sprintf("%s, but %s wrote %s: it began after %s and completed before the read began, %s",
			what, w.describe(), wrote, wroteSaw(saw, ws), restore)
	}
	return ""
}

func wroteSaw(saw regState, ws []*op) string {
	if !saw.set {
		return "the key started missing"
	}
	if len(ws) == 1 && ws[0].untimed {
		return fmt.Sprintf("the write of %s completed (event %d)", saw, ws[0].retIdx)
	}
	if len(ws) == 1 {
		return "the write of " + saw.String() + " completed at " + secs(ws[0].ret)
	}
	return fmt.Sprintf("all %d writes of %s completed", len(ws), saw)
}

// listStory explains a list read o that cannot follow what came before it, or "".
func listStory(o *op, ops []*op) string {
	if o.f != history.OpRead || o.out.Kind == history.Str {
		return ""
	}
	got := o.out.L
	in := map[string]bool{}
	for _, e := range got {
		in[e] = true
	}
	what := fmt.Sprintf("%s returned %s", o.describe(), brief(got))
	if len(in) < len(got) {
		twice := map[string]bool{}
		for _, e := range got {
			if twice[e] {
				return fmt.Sprintf("%s, which holds %q twice", what, e)
			}
			twice[e] = true
		}
	}
	appended := map[string]bool{}
	for i := range ops {
		a := ops[i]
		if a.f == history.OpAppend && a.in.Kind == history.Str {
			appended[a.in.S] = true
		}
	}
	for _, e := range got {
		if !appended[e] {
			return fmt.Sprintf("%s, but %q was never appended", what, e)
		}
	}
	for i := range ops {
		a := ops[i]
		if a.f == history.OpAppend && !a.open() && a.ret < o.call && a.in.Kind == history.Str && !in[a.in.S] {
			return fmt.Sprintf("%s, without %q, whose %s completed before the read began", what, a.in.S, a.describe())
		}
		if a.f == history.OpRead && a != o && !a.open() && a.ret < o.call && !isPrefix(a.out.L, got) {
			return fmt.Sprintf("%s, but the earlier %s had returned %s, which is not a prefix of it", what, a.describe(), brief(a.out.L))
		}
	}
	return missedPredecessor(o, ops, in, what)
}

// missedPredecessor explains a read that holds an element x but not an element a whose
// acknowledged append completed before x's append began.
func missedPredecessor(o *op, ops []*op, in map[string]bool, what string) string {
	first := map[string]*op{}
	for _, a := range ops {
		if a.f == history.OpAppend && a.in.Kind == history.Str && (first[a.in.S] == nil || a.call < first[a.in.S].call) {
			first[a.in.S] = a
		}
	}
	for _, x := range o.out.L {
		ax := first[x]
		for _, a := range ops {
			if a.f == history.OpAppend && !a.open() && a.in.Kind == history.Str && !in[a.in.S] && ax != nil && a.ret < ax.call {
				return fmt.Sprintf("%s, which holds %q but not %q, although the %s completed before the append of %q (%s) began",
					what, x, a.in.S, a.describe(), x, ax.describe())
			}
		}
	}
	return ""
}

// brief renders a list for an explanation, eliding the middle of a long one.
func brief(l []string) string {
	if len(l) <= 12 {
		return "[" + strings.Join(l, " ") + "]"
	}
	return fmt.Sprintf("[%s … (%d more) … %s]", strings.Join(l[:3], " "), len(l)-6, strings.Join(l[len(l)-3:], " "))
}

func isPrefix(p, l []string) bool {
	if len(p) > len(l) {
		return false
	}
	for i := range p {
		if p[i] != l[i] {
			return false
		}
	}
	return true
}

// partialStory explains a failure from the longest partial linearization: the state it
// leaves, and the operation that must come next but cannot.
func partialStory(m porcupine.Model, k keyHistory, longest []porcupine.Operation) (string, int64) {
	state := m.Init()
	in := map[*op]bool{}
	for _, p := range longest {
		_, state = m.Step(state, p.Input, p.Output)
		if o, ok := p.Metadata.(*op); ok {
			in[o] = true
		}
	}
	var blamed *porcupine.Operation
	for i := range k.pops {
		p := &k.pops[i]
		o := k.ops[i]
		if in[o] {
			continue
		}
		if blamed == nil || p.Return < blamed.Return {
			blamed = p
		}
	}
	if blamed == nil {
		return fmt.Sprintf("no legal order of its %d operations was found", len(k.pops)), -1
	}
	o := k.ops[indexOf(k.pops, blamed)]
	return fmt.Sprintf("no legal order of its %d operations exists: the longest legal order covers %d of them and leaves the key at %s; then %s (%s) cannot be ordered, nor can anything that completed before it",
		len(k.pops), len(longest), m.DescribeState(state), o.describe(), m.DescribeOperation(blamed.Input, blamed.Output)), o.invIdx
}

func indexOf(pops []porcupine.Operation, p *porcupine.Operation) int {
	for i := range pops {
		if &pops[i] == p {
			return i
		}
	}
	return 0
}
