package results

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func labels(ts []tick) []string {
	var out []string
	for _, t := range ts {
		if t.label != "" {
			out = append(out, t.label)
		}
	}
	return out
}

func TestLogTicks(t *testing.T) {
	ts := logTicks(axis{min: 0.05, max: 2000, log: true})
	assert.Equal(t, []string{"0.1", "1", "10", "100", "1000"}, labels(ts), "the powers of ten, labelled")
	assert.Len(t, ts, 5+4*9+2, "and 2 to 9 times each, unlabelled: 0.05 to 0.09, …, 1000 and 2000")
	for _, tk := range ts {
		assert.True(t, tk.v >= 0.05 && tk.v <= 2000, "%v within the axis", tk.v)
	}
	assert.Equal(t, []string{"0.3"}, labels(logTicks(axis{min: 0.25, max: 0.35, log: true})), "0.3, not 0.30000000000000004")

	assert.Equal(t, []string{"5", "10", "20"}, labels(logTicks(axis{min: 3.3, max: 33, log: true})),
		"within a decade's power of ten, the 2s and 5s labelled too")
	assert.Equal(t, []string{"20", "30", "40"}, labels(logTicks(axis{min: 15, max: 45, log: true})),
		"and where that is not two labels, every tick")
}

func TestLinearTicks(t *testing.T) {
	assert.Equal(t, []string{"0", "10", "20", "30", "40", "50", "60"}, labels(linearTicks(axis{min: -1e-12, max: 68.5}, 10)),
		"round numbers, and never -0")
	assert.Equal(t, []string{"0.01", "0.02", "0.03", "0.04", "0.05", "0.06"}, labels(linearTicks(axis{min: 0.0091, max: 0.061}, 5)))
	assert.Equal(t, []string{"0.01", "0.015", "0.02"}, labels(linearTicks(axis{min: 0.0091, max: 0.021}, 3)))
	assert.Equal(t, []string{"0", "200", "400", "600", "800", "1000"}, labels(linearTicks(axis{min: 0, max: 1067}, 5)))
	assert.Equal(t, []string{"0", "0.2", "0.4", "0.6", "0.8", "1"}, labels(linearTicks(axis{min: 0, max: 1.1}, 5)))
}

// testChart is a chart of a ten-second span with one fault window from 2 s to 5 s.
func testChart(log bool) *chart {
	s := span{0, 10e9}
	b := &bands{span: s, faults: []faultView{{ID: "F1", Kind: "partition", Nodes: "n1", Start: 2e9, End: 5e9}}}
	ch := newChart(s, b, "y")
	ch.y = axis{min: 0, max: 100}
	if log {
		ch.y = axis{min: 0.1, max: 1000, log: true}
	}
	return ch
}

func TestFrameMapsDataIntoTheDataArea(t *testing.T) {
	for _, log := range []bool{false, true} {
		ch := testChart(log)
		_, yt := ch.ticks()
		f := ch.layout(yt)
		require.Less(t, f.left, f.right)
		require.Less(t, f.top, f.bottom)
		assert.Greater(t, f.left, textWidth("1000"), "room for the y ticks' labels")
		assert.LessOrEqual(t, f.right, float64(plotWidth-legendWidth), "the legend's strip is left free")
		assert.InDelta(t, f.left, f.px(0), 1e-9)
		assert.InDelta(t, f.right, f.px(10), 1e-9)
		assert.InDelta(t, f.bottom, f.py(ch.y.min), 1e-9)
		assert.InDelta(t, f.top, f.py(ch.y.max), 1e-9)
		for _, p := range []xy{{0.5, 1}, {9.99, 99}, {5, 50}} {
			x, y := f.px(p.X), f.py(p.Y)
			assert.True(t, x > f.left && x < f.right && y > f.top && y < f.bottom, "%v at (%v, %v): inside the data area", p, x, y)
		}
		if log {
			assert.InDelta(t, (f.top+f.bottom)/2, f.py(10), 1e-9, "10 halfway between 0.1 and 1000 on a log scale")
		} else {
			assert.InDelta(t, (f.top+f.bottom)/2, f.py(50), 1e-9)
		}
	}
}

func TestFaultLabelsAreLaidOutInRows(t *testing.T) {
	s := span{0, 100e9}
	b := &bands{span: s}
	for i := range 6 { // six windows starting a second apart: their labels overlap
		b.faults = append(b.faults, faultView{ID: "F" + string(rune('1'+i)), Kind: "kill", Nodes: "n1", Start: int64(i) * 1e9, End: int64(i+1) * 1e9})
	}
	long := strings.Repeat("n", 60)
	b.faults = append(b.faults, faultView{ID: "F7", Kind: "partition", Value: long, Start: 50e9, End: 51e9},
		faultView{ID: "F8", Kind: "kill", Nodes: "n2", Start: 99.9e9, End: 100e9})
	ch := newChart(s, b, "y")
	ch.y = axis{min: 0, max: 1}
	f := ch.layout(nil)
	placed, unlabelled := b.place(f)
	require.Len(t, placed, 6)
	assert.Equal(t, 2, unlabelled, "two of the overlapping six have no row left")
	for i, l := range placed[:4] {
		assert.Equal(t, i, l.row, "each in the first row free where it starts")
		assert.Equal(t, b.faults[i].Label(), l.text)
	}
	assert.Equal(t, 0, placed[4].row, "a label clear of the others: the top row")
	assert.Equal(t, maxPlotLabel, utf8.RuneCountInString(placed[4].text), "shortened")
	assert.True(t, strings.HasPrefix(placed[4].text, "F7 partition nnn") && strings.HasSuffix(placed[4].text, "…"), placed[4].text)
	last := placed[5]
	assert.Equal(t, "F8 kill n2", last.text)
	assert.LessOrEqual(t, last.x+textWidth(last.text), f.right, "a window at the right edge: its label ends there")
	assert.Less(t, last.x, f.px(99.9))

	ch.draw(newSVGCanvas(plotWidth, plotHeight))
	assert.Equal(t, 2, b.unlabelled, "drawing counts them")
}

func TestChartSVG(t *testing.T) {
	ch := testChart(true)
	ch.add(series{name: "ok", color: colorOK, runs: [][]xy{{{1, 1}, {3, 10}}}})
	ch.add(series{name: "ok median/bin", color: colorText, line: 1.33, runs: [][]xy{{{1, 1}, {2, 2}}, {{4, 3}}}})
	ch.add(series{name: "empty", color: colorFail, runs: [][]xy{{}}})
	ch.bands.leaders = []leaderMark{{At: 7e9, Node: "n3"}}
	c := newSVGCanvas(plotWidth, plotHeight)
	ch.draw(c)
	svg := string(c.bytes())
	_, err := inlineSVG([]byte(svg), "t")
	require.NoError(t, err)
	assert.Contains(t, svg, `style="fill:`+faultColor("partition")+`"/>`, "the window: a path filled with its family's color")
	assert.Contains(t, svg, ">F1 partition n1</text>")
	assert.Contains(t, svg, ">leader n3</text>")
	assert.Contains(t, svg, "stroke-dasharray", "the leader change dashed")
	for _, s := range []string{">0.1</text>", ">1</text>", ">10</text>", ">100</text>", ">1000</text>",
		">time since the run began (s)</text>", ">y</text>", ">ok</text>", ">ok median/bin</text>"} {
		assert.Contains(t, svg, s)
	}
	assert.NotContains(t, svg, ">empty</text>", "a series without points is not in the legend")
	assert.Contains(t, svg, `font-family="sans-serif"`)
}

func TestLegendWrapsLongNames(t *testing.T) {
	assert.Equal(t, []string{"info (gave up)", "max/bin"}, wrap("info (gave up) max/bin", 102))
	assert.Equal(t, []string{"ok"}, wrap("ok", 102))
	assert.Equal(t, []string{"a-very-long-word", "b"}, wrap("a-very-long-word b", 20))
}

func TestChartPNG(t *testing.T) {
	ch := testChart(false)
	ch.add(series{name: "ok", color: colorOK, line: 1.6, runs: [][]xy{{{0, 10}, {10, 10}}}})
	c := newPNGCanvas(plotWidth, plotHeight)
	ch.draw(c)
	b, err := c.encode()
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, plotWidth, plotHeight), img.Bounds())
	f := ch.layout(linearTicks(ch.y, 5))
	at := func(x, y float64) color.RGBA {
		r, g, b, _ := img.At(int(x), int(y)).RGBA()
		return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0xff}
	}
	mid := (f.top + f.bottom) / 2
	assert.Equal(t, rgba(faultColor("partition")), at(f.px(3.3), f.py(67)), "the window is shaded")
	assert.Equal(t, colorWhite, at(f.px(7.3), f.py(67)), "and nothing else is")
	assert.Equal(t, colorOK, at(f.px(7.3), math.Floor(f.py(10))), "the series drawn over it")
	dark := 0
	for y := f.top + 2; y < f.top+lineHeight; y++ { // the label's row
		for x := f.px(2) + 2; x < f.px(2)+2+textWidth("F1"); x++ {
			if at(x, y).R < 0x80 {
				dark++
			}
		}
	}
	assert.Greater(t, dark, 10, "the window's label is written")
	dark = 0
	for x := 0.0; x < f.left-tickLen-5; x++ { // the y axis's title, turned
		for y := mid - 5; y < mid+5; y++ {
			if at(x, y).R < 0x80 {
				dark++
			}
		}
	}
	assert.Greater(t, dark, 0, "the y axis's title is written")
}
