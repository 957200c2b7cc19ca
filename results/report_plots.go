package results

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"io"
	"iter"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

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

// The plots' size: wide enough for a long run's fault windows, with a strip on the
// right for the legend.
const (
	plotWidth   = 26 * vg.Centimeter
	plotHeight  = 8 * vg.Centimeter
	legendWidth = 3.6 * vg.Centimeter
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

// bands draws the fault windows, shaded over the whole height of the data area and
// labelled at its top, and the leader changes as dashed lines. It is drawn first, under
// the data. Labels that would overlap others are left out (unlabelled counts them): the
// page's table of faults lists every window by its number.
type bands struct {
	span       span
	faults     []faultView
	leaders    []leaderMark
	unlabelled int
}

func (b *bands) Plot(c draw.Canvas, p *plot.Plot) {
	x, _ := p.Transforms(&c)
	sty := text.Style{Color: color.Gray{Y: 0x30}, Font: sans(7), Handler: p.TextHandler,
		XAlign: draw.XLeft, YAlign: draw.YTop}
	lineH := sty.Rectangle("M").Size().Y * 1.15
	const rows = 4
	var rowEnd [rows]vg.Length
	for i := range rowEnd {
		rowEnd[i] = c.Min.X - 1
	}
	b.unlabelled = 0
	for _, f := range b.faults {
		x0, x1 := x(b.span.secs(f.Start)), x(b.span.secs(f.End))
		x0, x1 = max(x0, c.Min.X), min(max(x1, x0+1), c.Max.X) // at least a point wide
		c.FillPolygon(rgba(faultColor(f.Kind)), []vg.Point{
			{X: x0, Y: c.Min.Y}, {X: x1, Y: c.Min.Y}, {X: x1, Y: c.Max.Y}, {X: x0, Y: c.Max.Y}})
	}
	for _, f := range b.faults { // labels after every shading, so that none covers one
		x0 := max(x(b.span.secs(f.Start)), c.Min.X)
		label := f.Label()
		if r := []rune(label); len(r) > maxPlotLabel { // the table of faults has it whole
			label = string(r[:maxPlotLabel-1]) + "…"
		}
		w := sty.Width(label)
		x0 = max(c.Min.X, min(x0, c.Max.X-w-2)) // a window at the right edge: its label ends there
		row := slices.IndexFunc(rowEnd[:], func(end vg.Length) bool { return x0 > end })
		if row < 0 || x0+w > c.Max.X {
			b.unlabelled++
			continue
		}
		rowEnd[row] = x0 + w + 4
		c.FillText(sty, vg.Point{X: x0 + 1.5, Y: c.Max.Y - 1 - vg.Length(row)*lineH}, label)
	}
	line := draw.LineStyle{Color: colorLead, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}
	lsty := sty
	lsty.Color, lsty.YAlign = colorLead, draw.YBottom
	for _, l := range b.leaders {
		lx := x(b.span.secs(l.At))
		if lx < c.Min.X || lx > c.Max.X {
			continue
		}
		c.StrokeLine2(line, lx, c.Min.Y, lx, c.Max.Y)
		c.FillText(lsty, vg.Point{X: lx + 1.5, Y: c.Min.Y + 1}, "leader "+l.Node)
	}
}

// plotView is one rendered plot.
type plotView struct {
	ID, Title string
	SVG       []byte // the plot as SVG, for the page
	PNG       []byte // the same, for the file beside it
	Note      string // how it was binned, what it left out
}

// sans is the plots' font: gonum's own Liberation Sans, so that nothing is looked up.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

// newPlot makes a plot with the span on its x axis and the fault windows under it.
func newPlot(s span, b *bands, ylabel string) *plot.Plot {
	p := plot.New()
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font, a.Tick.Label.Font = sans(10), sans(8.5)
	}
	p.Legend.TextStyle.Font = sans(9)
	p.X.Label.Text = "time since the run began (s)"
	p.Y.Label.Text = ylabel
	p.X.Min, p.X.Max = s.secs(s.t0), s.secs(s.t1)
	p.Y.Min, p.Y.Max = 0, 1
	p.Add(b, plotter.NewGrid())
	return p
}

func addSeries(p *plot.Plot, name string, c color.Color, pts plotter.XYs, line bool) error {
	if len(pts) == 0 {
		return nil
	}
	if line {
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color, l.Width = c, vg.Points(1.2)
		p.Add(l)
		p.Legend.Add(name, l)
		return nil
	}
	s, err := plotter.NewScatter(pts)
	if err != nil {
		return fmt.Errorf("plot %s: %w", name, err)
	}
	s.Color, s.Shape, s.Radius = c, draw.BoxGlyph{}, vg.Points(1.2)
	p.Add(s)
	p.Legend.Add(name, s)
	return nil
}

// addSegments draws a line broken where it has no data (a stretch in which no operation
// completed), under one legend entry.
func addSegments(p *plot.Plot, name string, c color.Color, segments []plotter.XYs) error {
	for i, seg := range segments {
		l, err := plotter.NewLine(seg)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color, l.Width = c, vg.Points(1)
		p.Add(l)
		if i == 0 {
			p.Legend.Add(name, l)
		}
	}
	return nil
}

// latencyPlot draws each completed operation's latency against its invoke time, by
// outcome, on a log scale. A series of more than maxPlotPoints operations is binned by
// time: each bin shows its highest latency, and for ok its median too.
func latencyPlot(s span, ops iter.Seq[checker.Operation], b *bands) (plotView, error) {
	p := newPlot(s, b, "latency (ms, log scale)")
	p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = math.Inf(1), math.Inf(-1)
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
	byStatus := map[history.Type][]latencyPoint{history.OK: ok, history.Fail: fail, history.Info: info}
	binned := 0
	for _, st := range []struct {
		t    history.Type
		name string
		c    color.Color
	}{{history.OK, "ok", colorOK}, {history.Fail, "fail", colorFail}, {history.Info, "info (gave up)", colorInfo}} {
		pts := byStatus[st.t]
		if len(pts) <= maxPlotPoints {
			xy := make(plotter.XYs, len(pts))
			for i, q := range pts {
				xy[i] = plotter.XY{X: s.secs(q.at), Y: q.ms}
			}
			if err := addSeries(p, st.name, st.c, xy, false); err != nil {
				return plotView{}, err
			}
			continue
		}
		binned += len(pts)
		maxes, medians := binLatencies(s, pts)
		if err := addSeries(p, st.name+" max/bin", st.c, maxes, false); err != nil {
			return plotView{}, err
		}
		if st.t == history.OK {
			if err := addSegments(p, "ok median/bin", color.Black, medians); err != nil {
				return plotView{}, err
			}
		}
	}
	if math.IsInf(p.Y.Min, 1) {
		p.Y.Min, p.Y.Max = 0.1, 1000
	}
	p.Y.Min, p.Y.Max = p.Y.Min/1.5, p.Y.Max*1.5
	v := plotView{ID: "latency", Title: "Latency over time"}
	if binned > 0 {
		v.Note = fmt.Sprintf("%d operations binned into %d bins of %s: each bin shows its highest latency (and ok's median), not every operation",
			binned, latencyBins, binWidth(s, latencyBins))
	}
	return v, v.render(p, b)
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
func binLatencies(s span, pts []latencyPoint) (maxes plotter.XYs, medians []plotter.XYs) {
	bins := make([][]float64, latencyBins)
	for _, q := range pts {
		i := binOf(s, q.at, latencyBins)
		bins[i] = append(bins[i], q.ms)
	}
	w := float64(s.t1-s.t0) / latencyBins
	var run plotter.XYs
	for i, b := range bins {
		if len(b) == 0 {
			if len(run) > 0 {
				medians, run = append(medians, run), nil
			}
			continue
		}
		slices.Sort(b)
		x := s.secs(s.t0) + (float64(i)+0.5)*w/1e9
		maxes = append(maxes, plotter.XY{X: x, Y: b[len(b)-1]})
		run = append(run, plotter.XY{X: x, Y: b[len(b)/2]})
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
	p := newPlot(s, b, fmt.Sprintf("completions per second (%s bins)", binWidth(s, n)))
	counts := map[history.Type][]float64{history.OK: make([]float64, n), history.Fail: make([]float64, n), history.Info: make([]float64, n)}
	for o := range ops {
		if o.Done >= 0 {
			counts[o.Status][binOf(s, o.Done, n)]++
		}
	}
	for _, st := range []struct {
		t    history.Type
		name string
		c    color.Color
	}{{history.OK, "ok", colorOK}, {history.Fail, "fail", colorFail}, {history.Info, "info", colorInfo}} {
		xy := make(plotter.XYs, n)
		any := false
		for i, c := range counts[st.t] {
			xy[i] = plotter.XY{X: s.secs(s.t0) + (float64(i)+0.5)*width, Y: c / width}
			any = any || c > 0
		}
		if !any {
			continue
		}
		if err := addSeries(p, st.name, st.c, xy, true); err != nil {
			return plotView{}, err
		}
	}
	p.Y.Min, p.Y.Max = 0, p.Y.Max*1.1
	v := plotView{ID: "rate", Title: "Throughput over time"}
	return v, v.render(p, b)
}

// render draws the plot as SVG and as PNG, with its legend in a strip on the right.
// fastPNG is a PNG canvas that compresses for speed: on a plot (mostly background)
// the file is as small as at the default level, and encoding is a third faster.
type fastPNG struct{ *vgimg.Canvas }

func (c fastPNG) WriteTo(w io.Writer) (int64, error) {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, c.Image()); err != nil {
		return 0, err
	}
	return buf.WriteTo(w)
}

func (v *plotView) render(p *plot.Plot, b *bands) error {
	legend := p.Legend
	legend.Top, legend.Left, legend.Padding = true, true, vg.Points(3)
	p.Legend = plot.NewLegend()
	draw1 := func(c vg.CanvasWriterTo) ([]byte, error) {
		dc := draw.New(c)
		p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
		legend.Draw(draw.Crop(dc, plotWidth-legendWidth+vg.Millimeter*2, 0, 0, -vg.Millimeter*4))
		var buf bytes.Buffer
		if _, err := c.WriteTo(&buf); err != nil {
			return nil, fmt.Errorf("render %s plot: %w", v.ID, err)
		}
		return buf.Bytes(), nil
	}
	var err error
	if v.SVG, err = draw1(vgsvg.New(plotWidth, plotHeight)); err != nil {
		return err
	}
	if v.PNG, err = draw1(fastPNG{vgimg.New(plotWidth, plotHeight)}); err != nil {
		return err
	}
	if b.unlabelled > 0 {
		if v.Note != "" {
			v.Note += "; "
		}
		v.Note += fmt.Sprintf("%d fault %s too narrow or too crowded to label on the plot (every one is in the table of faults)",
			b.unlabelled, plural(b.unlabelled, "window", "windows"))
	}
	return nil
}
