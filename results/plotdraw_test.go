package results

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	testBlack = color.RGBA{A: 0xff}
	testWhite = color.RGBA{R: 0xff, G: 0xff, B: 0xff, A: 0xff}
	testRed   = color.RGBA{R: 0xff, A: 0xff}
)

func TestSVGCanvasEscapesText(t *testing.T) {
	c := newSVGCanvas(100, 50)
	c.Text(10, 20, `F1 kill <script>alert("x")</script> & n1`, textStyle{size: 10, color: testBlack})
	c.Text(10, 20, "leader n2", textStyle{size: 10, color: testRed, anchor: anchorEnd, up: true})
	svg := string(c.bytes())
	assert.Contains(t, svg, `>F1 kill &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; n1</text>`)
	assert.NotContains(t, svg, "<script")
	assert.Contains(t, svg, `text-anchor="end" transform="rotate(-90 10 20)">leader n2</text>`)
	_, err := inlineSVG([]byte(svg), "t")
	assert.NoError(t, err)
}

// The PNG's face has no '…': plotFace draws it as three dots on the baseline.
func TestPNGCanvasWritesTheEllipsis(t *testing.T) {
	c := newPNGCanvas(20, 20)
	c.Rect(0, 0, 20, 20, testWhite)
	c.Text(2, 15, "…", textStyle{color: testBlack})
	var dots []image.Point
	for y := range 20 {
		for x := range 20 {
			if c.img.RGBAAt(x, y) != testWhite {
				dots = append(dots, image.Pt(x, y))
			}
		}
	}
	assert.Equal(t, []image.Point{{3, 14}, {5, 14}, {7, 14}}, dots)
}

func TestSVGCanvasDrawsPaths(t *testing.T) {
	c := newSVGCanvas(100, 50)
	c.Rect(10, 0, 20.25, 50, testRed)
	c.Marks([]xy{{1, 1}, {5, 5}}, 2, testBlack)
	c.Polyline([]xy{{0, 0}, {10, 10}, {20, 0}}, 1.5, testBlack)
	c.Polyline([]xy{{0, 0}}, 1.5, testBlack) // nothing to draw
	c.Dashed(xy{30, 0}, xy{30, 50}, 1, testRed)
	svg := string(c.bytes())
	assert.True(t, strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50" viewBox="0 0 100 50" font-family="sans-serif">`), svg)
	for _, want := range []string{
		`<path d="M10 0H20.3V50H10Z" style="fill:#ff0000"/>`,
		`<path d="M0 0h2v2h-2zM4 4h2v2h-2z" style="fill:#000000"/>`,
		`<path d="M0 0L10 10L20 0" style="fill:none;stroke:#000000;stroke-width:1.5;stroke-linejoin:round"/>`,
		`<path d="M30 0L30 50" style="fill:none;stroke:#ff0000;stroke-width:1;stroke-dasharray:4,3;stroke-linejoin:round"/>`,
	} {
		assert.Contains(t, svg, want)
	}
	assert.Equal(t, 4, strings.Count(svg, "<path"))
	assert.True(t, strings.HasSuffix(svg, "</svg>\n"))
	_, err := inlineSVG([]byte(svg), "t")
	assert.NoError(t, err)
}

func TestPNGCanvasPaintsAntiAliased(t *testing.T) {
	c := newPNGCanvas(40, 20)
	c.Rect(0, 0, 40, 20, testWhite)
	c.Rect(10, 0, 20.5, 20, testRed)                        // a half-covered column at x = 20
	c.Polyline([]xy{{0, 10.5}, {9, 10.5}}, 1, testBlack)    // on a pixel row's middle: sharp
	c.Dashed(xy{30.5, 0}, xy{30.5, 20}, 1, testBlack)       // 4 drawn, 3 left out
	c.Marks([]xy{{35, 5}}, 2, color.RGBA{B: 0xff, A: 0xff}) // pixels 34 and 35 of rows 4 and 5
	b, err := c.encode()
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(b))
	require.NoError(t, err)
	require.Equal(t, image.Rect(0, 0, 40, 20), img.Bounds())
	at := func(x, y int) color.RGBA {
		r, g, b, a := img.At(x, y).RGBA()
		return color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), uint8(a >> 8)}
	}
	assert.Equal(t, testRed, at(15, 10))
	assert.Equal(t, testWhite, at(21, 10))
	half := at(20, 10)
	assert.Equal(t, uint8(0xff), half.R)
	assert.InDelta(t, 0x80, int(half.G), 2, "half covered: halfway from white to red")
	assert.Equal(t, testBlack, at(4, 10))
	assert.Equal(t, testWhite, at(4, 9))
	assert.Equal(t, testWhite, at(4, 11))
	assert.Equal(t, testBlack, at(30, 1))
	assert.Equal(t, testWhite, at(30, 5), "between two dashes")
	assert.Equal(t, testBlack, at(30, 8))
	assert.Equal(t, color.RGBA{B: 0xff, A: 0xff}, at(34, 4))
	assert.Equal(t, color.RGBA{B: 0xff, A: 0xff}, at(35, 5))
	assert.Equal(t, testWhite, at(36, 5))
}
