package results

import (
	"fmt"
	"image/color"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
)

// Bounds on what a plot draws, so that the report of a long run stays small and fast:
// a series has at most maxPlotPoints points; beyond that its operations are binned.
const (
	maxPlotPoints = 2000
	latencyBins   = maxPlotPoints / 2 // per bin: the highest latency, and for ok the median
	rateBins      = 200
	maxPlotLabel  = 40 // characters of a fault's label on a plot
	minRateBin    = 50 * time.Millisecond
)

// The plots' size in pixels (26 cm by 8 cm at 96 dpi): wide enough for a long run's fault
// windows, with a strip on the right for the legend.
const (
	plotWidth   = 983
	plotHeight  = 302
	legendWidth = 136
)

// span is the stretch of time a report's plots and lanes cover: from the history's
// first event to its last, in the history's nanoseconds.
type span struct{ t0, t1 int64 }

func (s span) secs(t int64) float64 { return float64(t) / 1e9 }

// pct places t on a lane or a timeline, as a percentage of the span.
func (s span) pct(t int64) float64 {
	if s.t1 <= s.t0 {
		return 0
	}
	return math.Max(0, math.Min(100, 100*float64(t-s.t0)/float64(s.t1-s.t0)))
}

// faultView is one fault window as the page shows it: numbered, with its kind and the
// nodes it touched.
type faultView struct {
	ID          string // F1, F2, … in order of start
	Kind, Nodes string
	Value       string
	Start, End  int64
}

// Label is the fault's label on the plots: its number, its kind and the nodes it
// touched — for a partition, its shape and sides, which say more.
func (f faultView) Label() string {
	what := f.Nodes
	if v := f.Value; v != "" && (f.Kind == string(nemesis.Partition) || what == "") {
		what = v
	}
	return strings.TrimSpace(f.ID + " " + f.Kind + " " + what)
}

// leaderMark is a leader change the history records.
type leaderMark struct {
	At   int64
	Node string
}

// series colors, by outcome: the page's CSS uses the same.
var (
	colorOK   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	colorFail = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	colorInfo = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	colorLead = color.RGBA{R: 0x6a, G: 0x3d, B: 0x9a, A: 0xff}
)

// faultGrey shades a fault the registry does not name (a Jepsen nemesis's).
const faultGrey = "#dddddd"

// faultColor is the CSS color of the shading of a fault of this kind: its family's,
// from nemesis's registry (a combination takes its first kind's). Each family has its
// own color, so that a reader of the SVG (or the browser test) can find the windows by
// it.
func faultColor(kind string) string {
	first, _, _ := strings.Cut(kind, nemesis.ComboSep)
	first, _, _ = strings.Cut(first, nemesis.VariantSep)
	if d, ok := nemesis.Lookup(nemesis.Kind(first)); ok {
		return d.Color
	}
	return faultGrey
}

// faultColors are every color a fault's shading may have.
func faultColors() []color.RGBA {
	out := []color.RGBA{rgba(faultGrey)}
	for _, d := range nemesis.Kinds() {
		if c := rgba(d.Color); !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// rgba reads a "#rrggbb" color.
func rgba(hex string) color.RGBA {
	var c color.RGBA
	if _, err := fmt.Sscanf(hex, "#%02x%02x%02x", &c.R, &c.G, &c.B); err != nil {
		return color.RGBA{R: 0xdd, G: 0xdd, B: 0xdd, A: 0xff}
	}
	c.A = 0xff
	return c
}

// bands are the fault windows, shaded over the whole height of the data area and
// labelled at its top, and the leader changes, dashed. The shading is drawn first,
// under the data. Labels that would overlap others are left out (unlabelled counts
// them): the page's table of faults lists every window by its number.
type bands struct {
	span       span
	faults     []faultView
	leaders    []leaderMark
	unlabelled int
}

// Colors and sizes of what a chart draws besides its series.
var (
	colorText  = color.RGBA{A: 0xff}
	colorLabel = color.RGBA{R: 0x30, G: 0x30, B: 0x30, A: 0xff}
	colorGrid  = color.RGBA{R: 0xe4, G: 0xe4, B: 0xe4, A: 0xff}
	colorWhite = color.RGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
)

const (
	labelRows = 4   // rows of fault labels at the top of the data area
	tickLen   = 4   // pixels
	markSize  = 3.2 // a scatter series' squares, in pixels
)

// fill shades the fault windows over the data area.
func (b *bands) fill(c canvas, f frame) {
	for _, w := range b.faults {
		x0, x1 := f.px(b.span.secs(w.Start)), f.px(b.span.secs(w.End))
		x0, x1 = max(x0, f.left), min(max(x1, x0+1), f.right) // at least a pixel wide
		c.Rect(x0, f.top, x1, f.bottom, rgba(faultColor(w.Kind)))
	}
}

// label is a fault's label as placed at the top of the data area.
type label struct {
	text string
	x    float64 // where it starts
	row  int     // 0 is the top row
}

// place lays the fault windows' labels out in labelRows rows at the top of the data
// area, each at its window's start (a window at the right edge: its label ends there),
// in the first row where it overlaps none before it; a label longer than maxPlotLabel
// characters is shortened. It returns the labels placed and how many were not.
func (b *bands) place(f frame) (placed []label, unlabelled int) {
	var rowEnd [labelRows]float64
	for i := range rowEnd {
		rowEnd[i] = f.left - 1
	}
	for _, w := range b.faults {
		text := w.Label()
		if r := []rune(text); len(r) > maxPlotLabel { // the table of faults has it whole
			text = string(r[:maxPlotLabel-1]) + "…"
		}
		width := textWidth(text)
		x0 := max(f.left, min(f.px(b.span.secs(w.Start)), f.right-width-2))
		row := slices.IndexFunc(rowEnd[:], func(end float64) bool { return x0 > end })
		if row < 0 || x0+width > f.right {
			unlabelled++
			continue
		}
		rowEnd[row] = x0 + width + 4
		placed = append(placed, label{text, x0, row})
	}
	return placed, unlabelled
}

// draw writes the labels and the leader changes, over the data.
func (b *bands) draw(c canvas, f frame) {
	var placed []label
	placed, b.unlabelled = b.place(f)
	st := textStyle{size: 10, color: colorLabel}
	for _, l := range placed {
		c.Text(l.x+1.5, f.top+1+float64(l.row)*lineHeight+textAscent, l.text, st)
	}
	st.color = colorLead
	for _, l := range b.leaders {
		x := f.px(b.span.secs(l.At))
		if x < f.left || x > f.right {
			continue
		}
		c.Dashed(xy{x, f.top}, xy{x, f.bottom}, 1.3, colorLead)
		c.Text(x+2, f.bottom-4, "leader "+l.Node, st)
	}
}

// plotView is one rendered plot.
type plotView struct {
	ID, Title string
	SVG       []byte // the plot as SVG, for the page
	PNG       []byte // the same, for the file beside it
	Note      string // how it was binned, what it left out
}

// chart is a plot described once, to be drawn as SVG and as PNG: the span on its x
// axis, the fault windows under its series, a legend naming each series on the right.
type chart struct {
	x, y   axis
	ylabel string
	bands  *bands
	series []series
}

// axis is the range of an axis, in data units.
type axis struct {
	min, max float64
	log      bool // a log scale (min > 0)
}

// series is a plotted series: a square at each point, or a line through each run of
// points (broken between runs, where it has no data).
type series struct {
	name  string
	color color.RGBA
	line  float64 // the line's width; 0 for squares
	runs  [][]xy
}

func newChart(s span, b *bands, ylabel string) *chart {
	x := axis{min: s.secs(s.t0), max: s.secs(s.t1)}
	if !(x.max > x.min) { // a history all at one time
		x.min, x.max = x.min-0.5, x.max+0.5
	}
	return &chart{x: x, ylabel: ylabel, bands: b}
}

// add adds a series that has points; one without is left out, and out of the legend.
func (ch *chart) add(sr series) {
	for _, r := range sr.runs {
		if len(r) > 0 {
			ch.series = append(ch.series, sr)
			return
		}
	}
}

// yRange is the least and the greatest y of the series' points (+Inf, -Inf without any).
func (ch *chart) yRange() (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, sr := range ch.series {
		for _, r := range sr.runs {
			for _, p := range r {
				lo, hi = min(lo, p.Y), max(hi, p.Y)
			}
		}
	}
	return lo, hi
}

// frame is where a chart's data area lies on the canvas, and how data maps onto it.
type frame struct {
	left, top, right, bottom float64 // the data area, in pixels
	x, y                     axis
}

// px is where x falls across the canvas.
func (f frame) px(x float64) float64 {
	return f.left + (x-f.x.min)/(f.x.max-f.x.min)*(f.right-f.left)
}

// py is where y falls down the canvas.
func (f frame) py(y float64) float64 {
	lo, hi := f.y.min, f.y.max
	if f.y.log {
		lo, hi, y = math.Log10(lo), math.Log10(hi), math.Log10(y)
	}
	return f.bottom - (y-lo)/(hi-lo)*(f.bottom-f.top)
}

// tick is a mark on an axis: labelled (a major tick, with a grid line) or not.
type tick struct {
	v     float64
	label string
}

// linearTicks are ticks at round numbers between a.min and a.max, every one labelled:
// the least step of 1, 2 or 5 times a power of ten that makes at most 1.25·n steps.
func linearTicks(a axis, n int) []tick {
	step := math.Pow10(int(math.Floor(math.Log10((a.max - a.min) / float64(n)))))
	for _, m := range []float64{1, 2, 5, 10} {
		if (a.max-a.min)/(m*step) <= 1.25*float64(n) {
			step *= m
			break
		}
	}
	unit := math.Pow10(max(0, -int(math.Floor(math.Log10(step)+1e-9)))) // the step's last decimal: a whole unit
	var out []tick
	for k := math.Ceil(a.min/step - 1e-9); k*step <= a.max+step*1e-9; k++ {
		v := math.Round(k*step*unit)/unit + 0 // 0.3, not 0.30000000000000004; 0, not -0
		out = append(out, tick{v, strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return out
}

// logTicks are the ticks of a log scale: at 1 to 9 times each power of ten between a.min
// and a.max, the powers of ten labelled; where that labels fewer than two, the 2s and
// 5s too, and where that does not either, every one.
func logTicks(a axis) []tick {
	var out []tick
	for e := int(math.Floor(math.Log10(a.min))); e <= int(math.Ceil(math.Log10(a.max))); e++ {
		for m := 1.0; m <= 9; m++ {
			v := m * math.Pow10(e)
			if e < 0 {
				v = m / math.Pow10(-e) // 0.3, not 0.30000000000000004
			}
			if v >= a.min*(1-1e-9) && v <= a.max*(1+1e-9) {
				out = append(out, tick{v: v})
			}
		}
	}
	for _, mantissas := range [][]float64{{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		n := 0
		for i, t := range out {
			if m := t.v / math.Pow10(int(math.Floor(math.Log10(t.v)+1e-9))); slices.Contains(mantissas, math.Round(m)) {
				out[i].label = strconv.FormatFloat(t.v, 'f', -1, 64)
				n++
			}
		}
		if n >= 2 {
			break
		}
	}
	return out
}

// ticks are the chart's ticks on its x and its y axis.
func (ch *chart) ticks() (xt, yt []tick) {
	if ch.y.log {
		return linearTicks(ch.x, 10), logTicks(ch.y)
	}
	return linearTicks(ch.x, 10), linearTicks(ch.y, 5)
}

// layout places the data area: room on the left for the y axis's title and its
// widest tick label, below for the x axis's, on the right for the legend.
func (ch *chart) layout(yt []tick) frame {
	widest := 0.0
	for _, t := range yt {
		widest = max(widest, textWidth(t.label))
	}
	return frame{
		left:   3 + lineHeight + 5 + widest + 3 + tickLen,
		top:    8,
		right:  plotWidth - legendWidth - 14,
		bottom: plotHeight - (tickLen + 3 + lineHeight + 4 + lineHeight + 2),
		x:      ch.x, y: ch.y,
	}
}

// draw draws the chart: the fault windows' shading, the grid, the series, the fault
// labels and the leader changes over them, the axes, and the legend. It sets
// ch.bands.unlabelled.
func (ch *chart) draw(c canvas) {
	xt, yt := ch.ticks()
	f := ch.layout(yt)
	c.Rect(0, 0, plotWidth, plotHeight, colorWhite)
	ch.bands.fill(c, f)
	grid := func(a, b xy) { c.Polyline([]xy{a, b}, 1, colorGrid) }
	for _, t := range xt {
		if x := crisp(f.px(t.v)); t.label != "" && x >= f.left && x <= f.right {
			grid(xy{x, f.top}, xy{x, f.bottom})
		}
	}
	for _, t := range yt {
		if y := crisp(f.py(t.v)); t.label != "" && y >= f.top && y <= f.bottom {
			grid(xy{f.left, y}, xy{f.right, y})
		}
	}
	var buf []xy // one buffer for every run's pixels
	for _, sr := range ch.series {
		for _, r := range sr.runs {
			buf = buf[:0]
			for _, p := range r {
				buf = append(buf, xy{f.px(p.X), f.py(p.Y)})
			}
			switch {
			case sr.line == 0:
				c.Marks(buf, markSize, sr.color)
			case len(buf) == 1: // a run of one point: a dash, to be seen
				c.Polyline([]xy{{buf[0].X - 2, buf[0].Y}, {buf[0].X + 2, buf[0].Y}}, sr.line, sr.color)
			default:
				c.Polyline(buf, sr.line, sr.color)
			}
		}
	}
	ch.bands.draw(c, f)
	ch.axes(c, f, xt, yt)
	ch.legend(c, f)
}

// crisp puts a line 1 pixel wide on a pixel's middle, so that the PNG draws it sharp.
func crisp(v float64) float64 { return math.Floor(v) + 0.5 }

// axes draws the axes at the left and the bottom of the data area, their ticks
// outwards, the labels, and the titles.
func (ch *chart) axes(c canvas, f frame, xt, yt []tick) {
	left, bottom := crisp(f.left-1), crisp(f.bottom+1)
	c.Polyline([]xy{{left, f.top}, {left, bottom}, {f.right, bottom}}, 1, colorText)
	tickStyle := textStyle{size: 11, color: colorText, anchor: anchorMiddle}
	for _, t := range xt {
		x := crisp(f.px(t.v))
		if x < f.left-1 || x > f.right+1 {
			continue
		}
		c.Polyline([]xy{{x, bottom}, {x, bottom + tickLen}}, 1, colorText)
		w := textWidth(t.label) // the label inside the canvas, left of the legend
		c.Text(max(w/2+1, min(x, plotWidth-legendWidth-w/2)), bottom+tickLen+3+textAscent, t.label, tickStyle)
	}
	tickStyle.anchor = anchorEnd
	for _, t := range yt {
		y := crisp(f.py(t.v))
		if y < f.top-1 || y > f.bottom+1 {
			continue
		}
		n := float64(tickLen) / 2 // an unlabelled tick is half as long
		if t.label != "" {
			n = tickLen
			c.Text(left-tickLen-3, y+4, t.label, tickStyle)
		}
		c.Polyline([]xy{{left - n, y}, {left, y}}, 1, colorText)
	}
	title := textStyle{size: 12, color: colorText, anchor: anchorMiddle}
	c.Text((f.left+f.right)/2, plotHeight-4, "time since the run began (s)", title)
	title.up = true
	c.Text(3+textAscent, (f.top+f.bottom)/2, ch.ylabel, title)
}

// legend names each series in the strip on the right, with a sample of its marks; a
// name too long for the strip goes on over more lines.
func (ch *chart) legend(c canvas, f frame) {
	x := float64(plotWidth - legendWidth + 8)
	st := textStyle{size: 11, color: colorText}
	y := f.top + 4 // the middle of the entry's first line
	for _, sr := range ch.series {
		if sr.line == 0 {
			c.Marks([]xy{{x + 9, y}}, 5, sr.color)
		} else {
			c.Polyline([]xy{{x, y}, {x + 18, y}}, sr.line, sr.color)
		}
		for _, line := range wrap(sr.name, plotWidth-(x+24)-2) {
			c.Text(x+24, y+4, line, st)
			y += lineHeight
		}
		y += 3
	}
}

// wrap breaks s at spaces into lines at most width wide (a word wider stays whole).
func wrap(s string, width float64) []string {
	var lines []string
	for _, w := range strings.Fields(s) {
		if n := len(lines); n > 0 && textWidth(lines[n-1]+" "+w) <= width {
			lines[n-1] += " " + w
		} else {
			lines = append(lines, w)
		}
	}
	return lines
}

// latencyPlot draws each completed operation's latency against its invoke time, by
// outcome, on a log scale. A series of more than maxPlotPoints operations is binned by
// time: each bin shows its highest latency, and for ok its median too.
func latencyPlot(s span, ops iter.Seq[checker.Operation], b *bands) (plotView, error) {
	ch := newChart(s, b, "latency (ms, log scale)")
	var ok, fail, info []latencyPoint // no map: a million operations looked theirs up by a string each
	for o := range ops {
		if o.Done >= 0 {
			ms := math.Max(float64(o.Done-o.Call)/1e6, 0.01) // a log scale has no zero
			switch o.Status {
			case history.OK:
				ok = append(ok, latencyPoint{o.Call, ms})
			case history.Fail:
				fail = append(fail, latencyPoint{o.Call, ms})
			case history.Info:
				info = append(info, latencyPoint{o.Call, ms})
			}
		}
	}
	binned := 0
	for _, st := range []struct {
		t    history.Type
		pts  []latencyPoint
		name string
		c    color.RGBA
	}{{history.OK, ok, "ok", colorOK}, {history.Fail, fail, "fail", colorFail}, {history.Info, info, "info (gave up)", colorInfo}} {
		if len(st.pts) <= maxPlotPoints {
			xys := make([]xy, len(st.pts))
			for i, q := range st.pts {
				xys[i] = xy{s.secs(q.at), q.ms}
			}
			ch.add(series{name: st.name, color: st.c, runs: [][]xy{xys}})
			continue
		}
		binned += len(st.pts)
		maxes, medians := binLatencies(s, st.pts)
		ch.add(series{name: st.name + " max/bin", color: st.c, runs: [][]xy{maxes}})
		if st.t == history.OK {
			ch.add(series{name: "ok median/bin", color: colorText, line: 1.33, runs: medians})
		}
	}
	lo, hi := ch.yRange()
	if math.IsInf(lo, 1) {
		lo, hi = 0.1, 1000
	}
	ch.y = axis{min: lo / 1.5, max: hi * 1.5, log: true}
	v := plotView{ID: "latency", Title: "Latency over time"}
	if binned > 0 {
		v.Note = fmt.Sprintf("%d operations binned into %d bins of %s: each bin shows its highest latency (and ok's median), not every operation",
			binned, latencyBins, binWidth(s, latencyBins))
	}
	return v, v.render(ch)
}

type latencyPoint struct {
	at int64
	ms float64
}

// binWidth is the width of one of n bins over s, rounded for a label.
func binWidth(s span, n int) time.Duration {
	d := time.Duration(max(1, (s.t1-s.t0)/int64(n)))
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 10*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d
}

func binOf(s span, t int64, n int) int {
	if s.t1 <= s.t0 {
		return 0
	}
	return min(n-1, max(0, int(float64(t-s.t0)/float64(s.t1-s.t0)*float64(n))))
}

// binLatencies returns, per non-empty bin, its highest latency and its median, placed
// at the bin's middle; the medians in runs of consecutive non-empty bins.
func binLatencies(s span, pts []latencyPoint) (maxes []xy, medians [][]xy) {
	bins := make([][]float64, latencyBins)
	for _, q := range pts {
		i := binOf(s, q.at, latencyBins)
		bins[i] = append(bins[i], q.ms)
	}
	w := float64(s.t1-s.t0) / latencyBins
	var run []xy
	for i, b := range bins {
		if len(b) == 0 {
			if len(run) > 0 {
				medians, run = append(medians, run), nil
			}
			continue
		}
		slices.Sort(b)
		x := s.secs(s.t0) + (float64(i)+0.5)*w/1e9
		maxes = append(maxes, xy{x, b[len(b)-1]})
		run = append(run, xy{x, b[len(b)/2]})
	}
	if len(run) > 0 {
		medians = append(medians, run)
	}
	return maxes, medians
}

// ratePlot draws throughput: completions per second, by outcome, in bins of at least
// minRateBin (rateBins of them over a long run).
func ratePlot(s span, ops iter.Seq[checker.Operation], b *bands) (plotView, error) {
	n := int(min(int64(rateBins), max(1, (s.t1-s.t0)/int64(minRateBin))))
	width := float64(s.t1-s.t0) / float64(n) / 1e9
	if width <= 0 {
		width = 1
	}
	ch := newChart(s, b, fmt.Sprintf("completions per second (%s bins)", binWidth(s, n)))
	counts := map[history.Type][]float64{history.OK: make([]float64, n), history.Fail: make([]float64, n), history.Info: make([]float64, n)}
	for o := range ops {
		if o.Done >= 0 {
			counts[o.Status][binOf(s, o.Done, n)]++
		}
	}
	for _, st := range []struct {
		t    history.Type
		name string
		c    color.RGBA
	}{{history.OK, "ok", colorOK}, {history.Fail, "fail", colorFail}, {history.Info, "info", colorInfo}} {
		xys := make([]xy, n)
		any := false
		for i, c := range counts[st.t] {
			xys[i] = xy{s.secs(s.t0) + (float64(i)+0.5)*width, c / width}
			any = any || c > 0
		}
		if !any {
			continue
		}
		ch.add(series{name: st.name, color: st.c, line: 1.6, runs: [][]xy{xys}})
	}
	_, hi := ch.yRange()
	ch.y = axis{min: 0, max: max(hi, 1) * 1.1}
	v := plotView{ID: "rate", Title: "Throughput over time"}
	return v, v.render(ch)
}

// render draws the chart as SVG and as PNG, and notes the fault windows it could not label.
func (v *plotView) render(ch *chart) error {
	svg := newSVGCanvas(plotWidth, plotHeight)
	ch.draw(svg)
	v.SVG = svg.bytes()
	img := newPNGCanvas(plotWidth, plotHeight)
	ch.draw(img)
	var err error
	if v.PNG, err = img.encode(); err != nil {
		return fmt.Errorf("render %s plot: %w", v.ID, err)
	}
	if b := ch.bands; b.unlabelled > 0 {
		if v.Note != "" {
			v.Note += "; "
		}
		v.Note += fmt.Sprintf("%d fault %s too narrow or too crowded to label on the plot (every one is in the table of faults)",
			b.unlabelled, plural(b.unlabelled, "window", "windows"))
	}
	return nil
}
