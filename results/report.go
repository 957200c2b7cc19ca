package results

import (
	"bytes"
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"iter"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
)

// Names of the files WriteReport writes in a run directory.
const (
	ReportFile      = "report.html"
	LatencyPlotFile = "latency.png"
	RatePlotFile    = "rate.png"
	// The plots as SVG too, for a viewer that zooms.
	LatencySVGFile = "latency.svg"
	RateSVGFile    = "rate.svg"
)

// LeaderEvent is the f of a nemesis info event that records a leader change: its node
// is the new leader. Reports mark each on the plots and on the leader's lane.
const LeaderEvent = history.LeaderChange

//go:embed report.tmpl
var reportTmplText string

// reportTmpl is parsed at its first use, not at start-up: most processes of the
// binary (a node, a test until its end) never render a report.
var reportTmpl = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Funcs(template.FuncMap{
		"inc": func(n int) int { return n + 1 },
		"pct": func(x float64) string {
			if x < 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.1f%%", 100*x)
		},
	}).Parse(reportTmplText))
})

// ReportOptions says where a report's facts come from.
type ReportOptions struct {
	// RunDir is the run directory whose test.json describes the run; "" is the
	// report's own directory. A history checked on its own has none.
	RunDir string
	// History is the file the history was read from, named on the page.
	History string
}

// WriteReport writes report.html into dir, with latency.png and rate.png (and .svg) beside it,
// for a result of checking events, and returns the report's path. The page stands
// alone: it loads nothing (no script, no stylesheet, no font from anywhere; the plots
// are inline SVG), so it opens from disk, from an archived CI artifact, or from
// faultline serve alike. It shows the verdict and why, the run's spec (from
// test.json, when there is one), operation counts and availability, latency and
// throughput with every fault window shaded, a lane per node of what the nemesis did
// to it, and for a violation the explanations and a timeline of each failing key's
// operations around it. Every value taken from the history, the spec or the result is
// escaped as text. A long history's plots are binned and its timelines cut to a window;
// the page says what it left out.
//
// WriteReport shows what the checker decided and decides nothing itself. Each file is
// written through a temporary file and a rename.
func WriteReport(dir string, res checker.Result, h *checker.History, opts ReportOptions) (string, error) {
	page, plots, err := buildReport(dir, res, h, opts)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := reportTmpl().Execute(&buf, page); err != nil {
		return "", fmt.Errorf("render %s: %w", ReportFile, err)
	}
	for name, b := range plots {
		if err := writeAtomic(dir, name, b); err != nil {
			return "", err
		}
	}
	if err := writeAtomic(dir, ReportFile, buf.Bytes()); err != nil {
		return "", err
	}
	return filepath.Join(dir, ReportFile), nil
}

// writeAtomic writes b to dir/name through a temporary file and a rename, so that a
// reader never sees half a file.
func writeAtomic(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", name, err)
	}
	return nil
}

// reportPage is everything report.tmpl shows.
type reportPage struct {
	Title, Verdict string
	Why            []checker.Reason
	Warnings       []checker.Reason
	// Explanations are shown first, MoreExplanations folded; Anomalies counts them all.
	Explanations, MoreExplanations []string
	Anomalies                      int
	Facts, Spec                    []fact
	Replay                         string
	Checkers                       []checkerRow
	Counts                         []countRow
	Stats                          checker.Stats
	Plots                          []plotSection
	Faults                         []faultRow
	Axis                           []axisTick
	Lanes                          []laneView
	Timelines                      []anomalyView
	Cycles                         []cycleView
	Visualization                  string // linearizability.html, when it is there
	Notes                          []string
	Omitted                        []string
	Files                          []fileLink
	Generated                      string
}

type fact struct{ Name, Value string }

type checkerRow struct{ Name, Verdict, Detail string }

type countRow struct {
	F                     string
	OK, Fail, Info, Total int
}

type plotSection struct {
	ID, Title, File, SVGFile, Note string
	SVG                            template.HTML // checked by inlineSVG: svgCanvas's drawing, its text escaped
}

type faultRow struct {
	faultView
	From, To, Color string
}

type fileLink struct {
	Name, Size string
	Dir        bool
}

func buildReport(dir string, res checker.Result, h *checker.History, opts ReportOptions) (reportPage, map[string][]byte, error) {
	page := reportPage{Verdict: string(res.Verdict), Why: res.UnknownBecause, Warnings: res.Warnings, Stats: res.Stats,
		Generated: time.Now().UTC().Format(time.RFC3339)}
	if err := page.addFacts(dir, res, h, opts); err != nil {
		return page, nil, err
	}
	ops := h.Operations
	failures := earliestFirst(res, ops)
	page.addExplanations(res, failures)
	if res.Txn != nil {
		page.Cycles = cycleViews(res.Txn.Cycles)
	}
	page.Checkers = checkerRows(res)
	page.Counts = countRows(res.Stats)
	s, fmtT := spanOf(h, res.Stats.Untimed)
	faults, leaders := faultViews(h)
	for _, f := range faults {
		page.Faults = append(page.Faults, faultRow{faultView: f, From: fmtT(f.Start), To: fmtT(f.End), Color: faultColor(f.Kind)})
	}
	plotFiles := map[string][]byte{}
	if res.Stats.Untimed {
		page.Omitted = append(page.Omitted, "latency and throughput plots: the history has no clock readings (its times are only its order)")
	} else if err := page.addPlots(s, ops, faults, leaders, plotFiles); err != nil {
		return page, nil, err
	}
	page.Axis = ticks(s, 10, fmtT)
	var left int
	page.Lanes, left = nodeLanes(s, h.Nemesis(), faults, leaders, fmtT)
	if left > 0 {
		page.Omitted = append(page.Omitted, fmt.Sprintf("%d events on the node lanes beyond %d a lane", left, maxLaneItems))
	}
	page.Timelines, left = anomalies(failures, ops, faults, fmtT)
	if left > 0 {
		page.Omitted = append(page.Omitted, fmt.Sprintf("the timelines of %d more failing keys (only the first %d are drawn)", left, maxTimelineKeys))
	}
	if res.CanVisualize() {
		page.Visualization = VisualizationFile
	}
	page.Notes = res.Notes
	if n := len(page.Notes); n > maxShownNotes {
		page.Notes = page.Notes[:maxShownNotes]
		page.Omitted = append(page.Omitted, fmt.Sprintf("%d more checker notes (in results.json)", n-maxShownNotes))
	}
	page.Files = listFiles(dir, append(slices.Collect(maps.Keys(plotFiles)), ReportFile))
	return page, plotFiles, nil
}

// earliestFirst returns the linearizability failures in the order of the invokes of
// the operations they blame, the earliest first (those that blame none last): the first
// anomaly in time is where an investigation starts.
func earliestFirst(res checker.Result, ops iter.Seq[checker.Operation]) []checker.KeyFailure {
	if res.Linearizability == nil || len(res.Linearizability.Failures) == 0 {
		return nil
	}
	out := slices.Clone(res.Linearizability.Failures)
	at := map[int64]int64{}
	for _, f := range out {
		at[f.Op] = math.MaxInt64
	}
	for o := range ops {
		if _, ok := at[o.Invoke]; ok {
			at[o.Invoke] = o.Call
		}
	}
	slices.SortStableFunc(out, func(a, b checker.KeyFailure) int { return cmp.Compare(at[a.Op], at[b.Op]) })
	return out
}

// addExplanations shows the linearizability failures earliest first, then the other
// checkers' anomalies; a few in full, the rest folded, at most maxExplanations.
func (page *reportPage) addExplanations(res checker.Result, failures []checker.KeyFailure) {
	var all []string
	seen := map[string]bool{}
	for _, f := range failures {
		all, seen[f.Explanation] = append(all, f.Explanation), true
	}
	for _, e := range res.Explanations() {
		if !seen[e] {
			all = append(all, e)
		}
	}
	page.Anomalies = len(all)
	if len(all) > maxExplanations {
		page.Omitted = append(page.Omitted, fmt.Sprintf("%d more explanations (all are in results.json)", len(all)-maxExplanations))
		all = all[:maxExplanations]
	}
	n := min(len(all), shownExplanations)
	page.Explanations, page.MoreExplanations = all[:n], all[n:]
}

// addPlots draws the latency and the throughput plot, side by side (each its own plot,
// reading the same operations): drawing is most of the time `faultline check` takes on
// a short history.
func (page *reportPage) addPlots(s span, ops iter.Seq[checker.Operation], faults []faultView, leaders []leaderMark, plotFiles map[string][]byte) error {
	kinds := []struct {
		png, svg string
		draw     func(span, iter.Seq[checker.Operation], *bands) (plotView, error)
	}{{LatencyPlotFile, LatencySVGFile, latencyPlot}, {RatePlotFile, RateSVGFile, ratePlot}}
	views := make([]plotView, len(kinds))
	errs := make([]error, len(kinds))
	var wg sync.WaitGroup
	for i, mk := range kinds {
		wg.Go(func() { views[i], errs[i] = mk.draw(s, ops, &bands{span: s, faults: faults, leaders: leaders}) })
	}
	wg.Wait()
	for i, mk := range kinds {
		v, err := views[i], errs[i]
		if err != nil {
			return err
		}
		svg, err := inlineSVG(v.SVG, v.Title)
		if err != nil {
			return fmt.Errorf("%s plot: %w", v.ID, err)
		}
		plotFiles[mk.png], plotFiles[mk.svg] = v.PNG, v.SVG
		page.Plots = append(page.Plots, plotSection{ID: v.ID, Title: v.Title, File: mk.png, SVGFile: mk.svg, Note: v.Note, SVG: svg})
	}
	if len(leaders) == 0 {
		page.Omitted = append(page.Omitted, "leader changes: the history records none (no nemesis \""+LeaderEvent+"\" events)")
	}
	return nil
}

// spanOf returns the stretch of the history and how to show a time in it: seconds
// since the run began, or event numbers for a history without clock readings.
func spanOf(h *checker.History, untimed bool) (span, func(int64) string) {
	var s span
	s.t0, s.t1 = h.Span()
	// The span starts at the first event — where the run's cluster was ready (its
	// nemesis starts then) — not at the run's base time, which comes before the nodes'
	// start; times are labelled since the base time all the same, as the explanations
	// give them.
	if untimed {
		return s, func(t int64) string { return fmt.Sprintf("event %d", t) }
	}
	return s, func(t int64) string { return fmt.Sprintf("%.3f s", float64(t)/1e9) }
}

// faultViews numbers the history's fault windows and collects its leader changes.
func faultViews(h *checker.History) ([]faultView, []leaderMark) {
	var faults []faultView
	for i, w := range h.FaultWindows() {
		kind := strings.TrimPrefix(w.Fault, "start-") // a combination's, or a Jepsen nemesis's
		if d, start, ok := nemesis.ByEvent(w.Fault); ok && start {
			kind = string(d.Kind)
		} else if kind == "start" {
			kind = "fault" // Jepsen's nemesis names its one fault :start
		}
		value := strings.TrimSuffix(strings.TrimPrefix(w.Value, "["), "]") // a list, or
		value = strings.TrimSuffix(strings.TrimPrefix(value, `"`), `"`)    // a string, rendered
		faults = append(faults, faultView{ID: fmt.Sprintf("F%d", i+1), Kind: kind, Nodes: w.Nodes, Value: value, Start: w.Start, End: w.End})
	}
	var leaders []leaderMark
	for _, e := range h.Nemesis() {
		if e.F == LeaderEvent && e.Node != "" {
			leaders = append(leaders, leaderMark{At: e.Time, Node: e.Node})
		}
	}
	return faults, leaders
}

func countRows(st checker.Stats) []countRow {
	var out []countRow
	for f, by := range st.Counts {
		r := countRow{F: f, OK: by[history.OK], Fail: by[history.Fail], Info: by[history.Info]}
		r.Total = r.OK + r.Fail + r.Info
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b countRow) int { return strings.Compare(a.F, b.F) })
	if len(out) > 1 {
		t := countRow{F: "all"}
		for _, r := range out {
			t.OK, t.Fail, t.Info, t.Total = t.OK+r.OK, t.Fail+r.Fail, t.Info+r.Info, t.Total+r.Total
		}
		out = append(out, t)
	}
	return out
}

func checkerRows(res checker.Result) []checkerRow {
	var out []checkerRow
	if l := res.Linearizability; l != nil {
		out = append(out, checkerRow{"linearizability", string(l.Verdict), fmt.Sprintf(
			"%s model: %d keys, %d operations checked, %d indeterminate left out, %d failing keys, %d undecided, %d never read, %d malformed",
			l.Model, l.Keys, l.Ops, l.Dropped, len(l.Failures), len(l.UnknownKeys), len(l.UnreadKeys), l.Ignored)})
	}
	if s := res.Set; s != nil {
		out = append(out, checkerRow{"set", string(s.Verdict), fmt.Sprintf("%d ok, %d lost, %d unexpected, %d stale, %d recovered, %d never read",
			s.OK, len(s.Lost), len(s.Unexpected), s.Stale, len(s.Recovered), len(s.NeverRead))})
	}
	if a := res.Append; a != nil {
		out = append(out, checkerRow{"append", string(a.Verdict), fmt.Sprintf("%d lost, %d duplicated, %d reordered, %d unexpected",
			len(a.Lost), len(a.Duplicated), len(a.Reordered), len(a.Unexpected))})
	}
	if l := res.Lease; l != nil {
		out = append(out, checkerRow{"lease", string(l.Verdict), l.Line()})
	}
	if x := res.Txn; x != nil {
		out = append(out, checkerRow{"txn", string(x.Verdict), x.Line()})
	}
	if x := res.Keyspace; x != nil {
		out = append(out, checkerRow{"keyspace", string(x.Verdict), x.Line()})
	}
	if x := res.Watch; x != nil {
		out = append(out, checkerRow{"watch", string(x.Verdict), x.Line()})
	}
	if x := res.Revision; x != nil {
		out = append(out, checkerRow{"revision", string(x.Verdict), x.Line()})
	}
	for _, e := range res.External {
		out = append(out, checkerRow{e.Name, string(e.Verdict), e.Detail})
	}
	return out
}

// listFiles lists dir's files and directories for the page's links, hidden and
// temporary files left out, and the files about to be written in it.
func listFiles(dir string, coming []string) []fileLink {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []fileLink
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		l := fileLink{Name: e.Name(), Dir: e.IsDir()}
		if fi, err := e.Info(); err == nil && !e.IsDir() {
			l.Size = byteSize(fi.Size())
		}
		out = append(out, l)
	}
	for _, name := range coming {
		if !slices.ContainsFunc(out, func(l fileLink) bool { return l.Name == name }) {
			out = append(out, fileLink{Name: name})
		}
	}
	slices.SortFunc(out, func(a, b fileLink) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// cycleView is a dependency cycle drawn as a table: each transaction, then the edge to
// the next; the last edge closes the cycle.
type cycleView struct {
	Anomaly string
	Rows    []cycleRow
}

type cycleRow struct {
	Txn    *checker.CycleTxn
	Edge   string
	Closes bool
}

func cycleViews(cs []checker.TxnCycle) []cycleView {
	out := make([]cycleView, len(cs))
	for i, c := range cs {
		v := cycleView{Anomaly: c.Anomaly}
		for j := range c.Txns {
			v.Rows = append(v.Rows, cycleRow{Txn: &c.Txns[j]})
			if j < len(c.Edges) {
				v.Rows = append(v.Rows, cycleRow{Edge: c.Edges[j].Why, Closes: c.Edges[j].To == c.Txns[0].Name})
			}
		}
		out[i] = v
	}
	return out
}
