package results

import (
	"cmp"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
)

// Bounds on the HTML timelines, so that a long run's page stays small.
const (
	maxLaneItems      = 1000 // per node lane
	maxTimelineOps    = 80   // per failing key: a window of operations around the anomaly
	maxTimelineKeys   = 5    // failing keys drawn
	maxExplanations   = 50
	shownExplanations = 5 // the rest folded
	maxShownNotes     = 20
	minBarWidthPct    = 0.25
	timelineOpenShare = 0.04 // how far past the window's end an open operation's bar reaches
)

// laneItem is one bar or mark on a lane or a timeline, placed in percent of its width.
type laneItem struct {
	Left, Width string
	Label       string
	Title       string // the whole story, shown on hover
	Color       string // fault shading ("" for operations)
	Class       string // ok, fail, info, blamed, mark, leader
}

type axisTick struct{ Left, Label string }

// laneView is what happened to one node (or to the cluster as a whole).
type laneView struct {
	Name  string
	Items []laneItem
}

func pctString(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }

// place returns the left and width of [a, b] on s, at least minBarWidthPct wide.
func place(s span, a, b int64) (string, string) {
	l, r := s.pct(a), s.pct(b)
	return pctString(l), pctString(math.Max(r-l, minBarWidthPct))
}

// laneVerb says what a fault of this kind did to a node: the kind's verb (nemesis's
// registry), or the kind itself for one the registry does not name (a combination, a
// Jepsen nemesis's fault).
func laneVerb(kind string) string {
	if d, ok := nemesis.Lookup(nemesis.Kind(kind)); ok {
		return d.Verb
	}
	return kind
}

// laneHeal says what the end of a fault of this kind did to a node.
func laneHeal(kind string) string {
	if d, ok := nemesis.Lookup(nemesis.Kind(kind)); ok {
		return d.Healed
	}
	return "ended"
}

// nodeLanes returns a lane per node of what the nemesis did to it: its fault windows
// (partitioned, killed until restarted, paused, …), the steps of long faults the
// nemesis noted on it (a member replaced, upgraded, defragmented), and when it became
// leader. Faults that name no node go on a lane of the cluster. Each lane holds at most
// maxLaneItems items; what is left out is counted in omitted.
func nodeLanes(s span, nemesis []history.Event, faults []faultView, leaders []leaderMark, fmtT func(int64) string) (lanes []laneView, omitted int) {
	byNode := map[string][]laneItem{}
	add := func(node string, it laneItem) {
		if len(byNode[node]) >= maxLaneItems {
			omitted++
			return
		}
		byNode[node] = append(byNode[node], it)
	}
	for _, f := range faults {
		nodes := splitNodes(f.Nodes)
		if len(nodes) == 0 {
			nodes = []string{clusterLane}
		}
		l, w := place(s, f.Start, f.End)
		title := fmt.Sprintf("%s: %s at %s, %s at %s", f.ID, laneVerb(f.Kind), fmtT(f.Start), laneHeal(f.Kind), fmtT(f.End))
		if f.Value != "" {
			title += " — " + f.Value
		}
		for _, n := range nodes {
			add(n, laneItem{Left: l, Width: w, Label: laneVerb(f.Kind), Title: title, Color: faultColor(f.Kind)})
		}
	}
	for _, e := range nemesis {
		if e.Type != history.Info || e.F == LeaderEvent || !isNote(e.F) {
			continue
		}
		node := cmp.Or(e.Node, clusterLane)
		label := e.F
		if !e.Value.IsNone() {
			label += " " + strings.Trim(e.Value.String(), `"`)
		}
		add(node, laneItem{Left: pctString(s.pct(e.Time)), Label: label, Title: label + " at " + fmtT(e.Time), Class: "mark"})
	}
	for _, m := range leaders {
		add(m.Node, laneItem{Left: pctString(s.pct(m.At)), Label: "leader", Title: m.Node + " became leader at " + fmtT(m.At), Class: "leader"})
	}
	names := make([]string, 0, len(byNode))
	for n := range byNode {
		names = append(names, n)
	}
	slices.SortFunc(names, compareNodes)
	for _, n := range names {
		lanes = append(lanes, laneView{Name: n, Items: byNode[n]})
	}
	return lanes, omitted
}

// clusterLane is the lane of what happened to no node in particular.
const clusterLane = "cluster"

// isNote reports whether a nemesis info event is a step the nemesis noted, rather than
// a half of a fault (Jepsen's nemesis records both halves of a fault as info).
func isNote(f string) bool {
	return f != "start" && f != "stop" && !strings.HasPrefix(f, "start-") && !strings.HasPrefix(f, "stop-")
}

func splitNodes(s string) []string {
	var out []string
	for n := range strings.SplitSeq(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// compareNodes orders node names naturally (n2 before n10), the cluster lane last.
func compareNodes(a, b string) int {
	if (a == clusterLane) != (b == clusterLane) {
		if a == clusterLane {
			return 1
		}
		return -1
	}
	ta, na := splitNumber(a)
	tb, nb := splitNumber(b)
	return cmp.Or(cmp.Compare(ta, tb), cmp.Compare(na, nb), cmp.Compare(a, b))
}

func splitNumber(s string) (string, int) {
	i := len(s)
	for i > 0 && s[i-1] >= '0' && s[i-1] <= '9' {
		i--
	}
	n, _ := strconv.Atoi(s[i:])
	return s[:i], n
}

// ticks returns about n ticks over s, at round steps.
func ticks(s span, n int, fmtT func(int64) string) []axisTick {
	d := s.t1 - s.t0
	if d <= 0 {
		return nil
	}
	raw := float64(d) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	var out []axisTick
	for t := math.Ceil(float64(s.t0)/step) * step; t <= float64(s.t1); t += step {
		out = append(out, axisTick{Left: pctString(s.pct(int64(t))), Label: trimZeros(fmtT(int64(t)))})
	}
	return out
}

// trimZeros drops the trailing zeros of a tick's number: "10.000 s" is "10 s".
func trimZeros(label string) string {
	num, unit, ok := strings.Cut(label, " ")
	if !ok || !strings.Contains(num, ".") {
		return label
	}
	return strings.TrimSuffix(strings.TrimRight(num, "0"), ".") + " " + unit
}

// anomalyView is the timeline of one failing key around its anomaly.
type anomalyView struct {
	Key, Explanation string
	Range            string
	Axis             []axisTick
	Faults           []laneItem
	Rows             []laneView // one a process
	Note             string     // what was left out
}

// anomalies draws, for each failing key (the first maxTimelineKeys of failures), its
// operations in a window of maxTimelineOps around the operation blamed, one row a
// process, with the faults in force over them.
func anomalies(failures []checker.KeyFailure, ops iter.Seq[checker.Operation], faults []faultView, fmtT func(int64) string) (out []anomalyView, omitted int) {
	if len(failures) == 0 {
		return nil, 0
	}
	byKey := map[string][]*checker.Operation{} // the failing keys' only
	for _, f := range failures[:min(len(failures), maxTimelineKeys)] {
		byKey[f.Key] = nil
	}
	for o := range ops {
		if kops, ok := byKey[o.Key]; ok && o.Status != history.Fail {
			byKey[o.Key] = append(kops, &o)
		}
	}
	for i, f := range failures {
		if i == maxTimelineKeys {
			omitted = len(failures) - i
			break
		}
		out = append(out, keyTimeline(f, byKey[f.Key], faults, fmtT))
	}
	return out, omitted
}

// keyTimeline draws one failing key's window of operations (in invoke order).
func keyTimeline(f checker.KeyFailure, kops []*checker.Operation, faults []faultView, fmtT func(int64) string) anomalyView {
	v := anomalyView{Key: f.Key, Explanation: f.Explanation}
	if len(kops) == 0 {
		v.Note = "the history holds no operation of this key that took effect"
		return v
	}
	blamed := slices.IndexFunc(kops, func(o *checker.Operation) bool { return o.Invoke == f.Op })
	lo, hi := 0, len(kops)
	if len(kops) > maxTimelineOps {
		mid := blamed
		if blamed < 0 {
			mid = len(kops) - 1 // nothing blamed: the end, where a final read tells
		}
		lo = max(0, min(mid-maxTimelineOps*2/3, len(kops)-maxTimelineOps))
		hi = lo + maxTimelineOps
		v.Note = fmt.Sprintf("showing %d of the key's %d operations (numbers %d–%d in invoke order), around the one blamed; the rest are in history.jsonl and linearizability.html",
			hi-lo, len(kops), lo+1, hi)
	}
	win := kops[lo:hi]
	s := span{t0: win[0].Call, t1: win[0].Call + 1}
	for _, o := range win {
		s.t1 = max(s.t1, o.Call, o.Done)
	}
	openEnd := s.t1 + int64(float64(s.t1-s.t0)*timelineOpenShare)
	s.t1 = openEnd
	v.Range = fmtT(s.t0) + " – " + fmtT(s.t1)
	v.Axis = ticks(s, 8, fmtT)
	for _, w := range faults {
		if w.End >= s.t0 && w.Start <= s.t1 {
			l, wd := place(s, max(w.Start, s.t0), min(w.End, s.t1))
			v.Faults = append(v.Faults, laneItem{Left: l, Width: wd, Label: w.Label(), Color: faultColor(w.Kind),
				Title: fmt.Sprintf("%s in force %s – %s %s", w.Label(), fmtT(w.Start), fmtT(w.End), w.Value)})
		}
	}
	rows := map[int][]laneItem{}
	for i, o := range win {
		end, class := o.Done, string(o.Status)
		if o.Status != history.OK {
			end = openEnd // indeterminate: it may take effect at any time after its invoke
		}
		if lo+i == blamed {
			class += " blamed"
		}
		l, w := place(s, o.Call, end)
		rows[o.Process] = append(rows[o.Process], laneItem{Left: l, Width: w, Label: opLabel(o), Title: opTitle(o, fmtT), Class: class})
	}
	procs := make([]int, 0, len(rows))
	for p := range rows {
		procs = append(procs, p)
	}
	slices.Sort(procs)
	for _, p := range procs {
		v.Rows = append(v.Rows, laneView{Name: fmt.Sprintf("process %d", p), Items: rows[p]})
	}
	return v
}

// opLabel is an operation in a few characters: "w a", "r a", "cas a→b", "app x".
func opLabel(o *checker.Operation) string {
	val := func(v history.Value) string {
		switch v.Kind {
		case history.Str:
			return v.S
		case history.List:
			if len(v.L) > 4 {
				return fmt.Sprintf("[…%d: %s]", len(v.L), v.L[len(v.L)-1])
			}
			return "[" + strings.Join(v.L, " ") + "]"
		}
		return "nil"
	}
	switch o.F {
	case history.OpWrite:
		return "w " + val(o.In)
	case history.OpRead:
		if o.Status != history.OK {
			return "r ?"
		}
		return "r " + val(o.Out)
	case history.OpCAS:
		if o.In.Kind == history.List && len(o.In.L) == 2 {
			return "cas " + o.In.L[0] + "→" + o.In.L[1]
		}
	case history.OpAppend:
		return "app " + val(o.In)
	case history.OpAdd:
		return "add " + val(o.In)
	}
	return o.F + " " + val(o.In)
}

func opTitle(o *checker.Operation, fmtT func(int64) string) string {
	s := fmt.Sprintf("process %d", o.Process)
	if o.Node != "" {
		s += " on " + o.Node
	}
	s += fmt.Sprintf(": %s %s", o.F, o.In)
	if o.Status == history.OK && o.F == history.OpRead {
		s += " → " + o.Out.String()
	}
	s += fmt.Sprintf(", %s; invoked %s (event %d)", o.Status, fmtT(o.Call), o.Invoke)
	if o.Done >= 0 {
		s += fmt.Sprintf(", completed %s (event %d)", fmtT(o.Done), o.Complete)
	}
	if o.Error != "" {
		s += ", error " + o.Error
	}
	return s
}
