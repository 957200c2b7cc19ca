package results

// The plots' drawing surface: a canvas of a fixed size in pixels (y downwards) with the
// few things a plot draws, and two of them. A plot is described once (chart.draw) and
// drawn on each:
//
//   - svgCanvas writes SVG for the page: every shape a <path>, every string a <text>
//     of the generic sans-serif family, its content escaped; nothing else (no font, no
//     script, no link), which is what inlineSVG checks for;
//   - pngCanvas rasterizes onto an image for the PNG file beside the page: paths
//     anti-aliased with golang.org/x/image/vector, text in basicfont's 7×13 face
//     through golang.org/x/image/font's Drawer.
//
// Text is laid out by textWidth, the PNG face's fixed advance: the SVG's sans-serif at
// the sizes used here is no wider, so a label that fits on the PNG fits on the page.

import (
	"bytes"
	"encoding/xml"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strconv"
	"unicode/utf8"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
	"golang.org/x/image/vector"
)

// xy is a point: in data units, or on a canvas in pixels.
type xy struct{ X, Y float64 }

// canvas is what a plot is drawn on. Coordinates are pixels from the top left corner.
type canvas interface {
	// Rect fills the rectangle between two corners.
	Rect(x0, y0, x1, y1 float64, c color.RGBA)
	// Marks fills a square of side size centred on each point: a scatter series.
	Marks(pts []xy, size float64, c color.RGBA)
	// Polyline strokes the line through pts, width wide.
	Polyline(pts []xy, width float64, c color.RGBA)
	// Dashed strokes a dashed line from a to b, width wide.
	Dashed(a, b xy, width float64, c color.RGBA)
	// Text writes s with its baseline through (x, y), placed by st.
	Text(x, y float64, s string, st textStyle)
}

// textStyle places and colors a string.
type textStyle struct {
	size   float64 // the SVG's font size in pixels (the PNG's face has one size)
	color  color.RGBA
	anchor textAnchor
	up     bool // turned a quarter left, to read upwards: (x, y) is then where the baseline starts, or its middle or end
}

type textAnchor int

const (
	anchorStart textAnchor = iota
	anchorMiddle
	anchorEnd
)

// The metrics text is laid out by: basicfont's 7×13 face.
const (
	charWidth  = 7  // the advance of every character
	lineHeight = 13 // a line of text
	textAscent = 11 // from a line's top to its baseline
)

// textWidth is the width of s in pixels.
func textWidth(s string) float64 { return float64(charWidth * utf8.RuneCountInString(s)) }

// offset is how far before (x, y) a string w wide starts, by its anchor.
func (st textStyle) offset(w float64) float64 {
	switch st.anchor {
	case anchorMiddle:
		return w / 2
	case anchorEnd:
		return w
	}
	return 0
}

// svgCanvas writes an SVG document.
type svgCanvas struct{ b []byte }

func newSVGCanvas(w, h int) *svgCanvas {
	c := &svgCanvas{b: make([]byte, 0, 32<<10)}
	c.b = append(c.b, `<svg xmlns="http://www.w3.org/2000/svg" width="`...)
	c.b = strconv.AppendInt(c.b, int64(w), 10)
	c.b = append(c.b, `" height="`...)
	c.b = strconv.AppendInt(c.b, int64(h), 10)
	c.b = append(c.b, `" viewBox="0 0 `...)
	c.b = strconv.AppendInt(c.b, int64(w), 10)
	c.b = append(c.b, ' ')
	c.b = strconv.AppendInt(c.b, int64(h), 10)
	c.b = append(c.b, "\" font-family=\"sans-serif\">\n"...)
	return c
}

// bytes ends the document and returns it.
func (c *svgCanvas) bytes() []byte { return append(c.b, "</svg>\n"...) }

// num writes a coordinate, to a tenth of a pixel.
func (c *svgCanvas) num(v float64) {
	c.b = strconv.AppendFloat(c.b, math.Round(v*10)/10, 'f', -1, 64)
}

func (c *svgCanvas) point(cmd byte, p xy) {
	c.b = append(c.b, cmd)
	c.num(p.X)
	c.b = append(c.b, ' ')
	c.num(p.Y)
}

func (c *svgCanvas) color(col color.RGBA) {
	const hex = "0123456789abcdef"
	c.b = append(c.b, '#', hex[col.R>>4], hex[col.R&15], hex[col.G>>4], hex[col.G&15], hex[col.B>>4], hex[col.B&15])
}

// fill ends a path filled with col.
func (c *svgCanvas) fill(col color.RGBA) {
	c.b = append(c.b, `" style="fill:`...)
	c.color(col)
	c.b = append(c.b, "\"/>\n"...)
}

// stroke ends a path stroked with col, width wide, dashed by dashes (a CSS dash array) unless "".
func (c *svgCanvas) stroke(col color.RGBA, width float64, dashes string) {
	c.b = append(c.b, `" style="fill:none;stroke:`...)
	c.color(col)
	c.b = append(c.b, ";stroke-width:"...)
	c.num(width)
	if dashes != "" {
		c.b = append(c.b, ";stroke-dasharray:"...)
		c.b = append(c.b, dashes...)
	}
	c.b = append(c.b, ";stroke-linejoin:round\"/>\n"...)
}

func (c *svgCanvas) Rect(x0, y0, x1, y1 float64, col color.RGBA) {
	c.b = append(c.b, `<path d="`...)
	c.point('M', xy{x0, y0})
	c.b = append(c.b, 'H')
	c.num(x1)
	c.b = append(c.b, 'V')
	c.num(y1)
	c.b = append(c.b, 'H')
	c.num(x0)
	c.b = append(c.b, 'Z')
	c.fill(col)
}

func (c *svgCanvas) Marks(pts []xy, size float64, col color.RGBA) {
	if len(pts) == 0 {
		return
	}
	c.b = append(c.b, `<path d="`...)
	side := strconv.AppendFloat(nil, math.Round(size*10)/10, 'f', -1, 64)
	for _, p := range pts {
		c.point('M', xy{p.X - size/2, p.Y - size/2})
		c.b = append(c.b, 'h')
		c.b = append(c.b, side...)
		c.b = append(c.b, 'v')
		c.b = append(c.b, side...)
		c.b = append(c.b, 'h', '-')
		c.b = append(c.b, side...)
		c.b = append(c.b, 'z')
	}
	c.fill(col)
}

func (c *svgCanvas) Polyline(pts []xy, width float64, col color.RGBA) {
	if len(pts) < 2 {
		return
	}
	c.b = append(c.b, `<path d="`...)
	for i, p := range pts {
		cmd := byte('L')
		if i == 0 {
			cmd = 'M'
		}
		c.point(cmd, p)
	}
	c.stroke(col, width, "")
}

func (c *svgCanvas) Dashed(a, b xy, width float64, col color.RGBA) {
	c.b = append(c.b, `<path d="`...)
	c.point('M', a)
	c.point('L', b)
	c.stroke(col, width, strconv.Itoa(dashOn)+","+strconv.Itoa(dashOff))
}

func (c *svgCanvas) Text(x, y float64, s string, st textStyle) {
	c.b = append(c.b, `<text x="`...)
	c.num(x)
	c.b = append(c.b, `" y="`...)
	c.num(y)
	c.b = append(c.b, `" font-size="`...)
	c.num(st.size)
	c.b = append(c.b, `" fill="`...)
	c.color(st.color)
	switch st.anchor {
	case anchorMiddle:
		c.b = append(c.b, `" text-anchor="middle`...)
	case anchorEnd:
		c.b = append(c.b, `" text-anchor="end`...)
	}
	if st.up {
		c.b = append(c.b, `" transform="rotate(-90 `...)
		c.num(x)
		c.b = append(c.b, ' ')
		c.num(y)
		c.b = append(c.b, ')')
	}
	c.b = append(c.b, `">`...)
	var esc bytes.Buffer // the history's names are text, never markup
	_ = xml.EscapeText(&esc, []byte(s))
	c.b = append(c.b, esc.Bytes()...)
	c.b = append(c.b, "</text>\n"...)
}

// The dashes of a dashed line: so many pixels drawn, so many left out.
const dashOn, dashOff = 4, 3

// pngCanvas draws onto an opaque image.
type pngCanvas struct {
	img  *image.RGBA
	z    vector.Rasterizer
	mask image.Alpha // what z rasterized, reused
	src  image.Uniform
}

func newPNGCanvas(w, h int) *pngCanvas {
	return &pngCanvas{img: image.NewRGBA(image.Rect(0, 0, w, h))}
}

// encode returns the image as PNG, compressed for speed: a plot is mostly background,
// and its file is about as small as at the default level.
func (c *pngCanvas) encode() ([]byte, error) {
	var buf bytes.Buffer
	if err := (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, c.img); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fill paints col through the polygons that add draws with the pen passed to it, which
// stay within x0..x1, y0..y1: the rasterizer covers only that box.
func (c *pngCanvas) fill(x0, y0, x1, y1 float64, col color.RGBA, add func(pen)) {
	r := image.Rect(int(math.Floor(x0))-1, int(math.Floor(y0))-1, int(math.Ceil(x1))+1, int(math.Ceil(y1))+1).Intersect(c.img.Rect)
	if r.Empty() {
		return
	}
	c.z.Reset(r.Dx(), r.Dy())
	add(pen{&c.z, float32(r.Min.X), float32(r.Min.Y)})
	// Rasterized into a mask of its own (vector's SIMD path: a mask the rasterizer's
	// size, written over), then painted through it, skipping what it does not cover:
	// a third of the time of painting the image straight from the rasterizer.
	n := r.Dx() * r.Dy()
	if cap(c.mask.Pix) < n {
		c.mask.Pix = make([]byte, n)
	}
	c.mask.Pix, c.mask.Stride, c.mask.Rect = c.mask.Pix[:n], r.Dx(), image.Rect(0, 0, r.Dx(), r.Dy())
	c.z.DrawOp = draw.Src
	c.z.Draw(&c.mask, c.mask.Rect, image.Opaque, image.Point{})
	c.src.C = col
	draw.DrawMask(c.img, r, &c.src, image.Point{}, &c.mask, image.Point{}, draw.Over)
}

// pen draws polygons onto a rasterizer whose origin is at (dx, dy) on the image.
// Every polygon turns the same way, so that where two overlap they add up.
type pen struct {
	z      *vector.Rasterizer
	dx, dy float32
}

func (p pen) quad(a, b, c, d xy) {
	p.z.MoveTo(float32(a.X)-p.dx, float32(a.Y)-p.dy)
	p.z.LineTo(float32(b.X)-p.dx, float32(b.Y)-p.dy)
	p.z.LineTo(float32(c.X)-p.dx, float32(c.Y)-p.dy)
	p.z.LineTo(float32(d.X)-p.dx, float32(d.Y)-p.dy)
	p.z.ClosePath()
}

func (p pen) rect(x0, y0, x1, y1 float64) {
	p.quad(xy{x0, y0}, xy{x1, y0}, xy{x1, y1}, xy{x0, y1})
}

// segment draws the line from a to b, width wide, as a rectangle that runs on half its
// width past each end, so that the segments of a polyline join.
func (p pen) segment(a, b xy, width float64) {
	dx, dy := b.X-a.X, b.Y-a.Y
	l := math.Hypot(dx, dy)
	if l == 0 {
		dx, l = 1, 1
	}
	ux, uy := dx/l*width/2, dy/l*width/2 // along, and (-uy, ux) across
	a, b = xy{a.X - ux, a.Y - uy}, xy{b.X + ux, b.Y + uy}
	p.quad(xy{a.X - uy, a.Y + ux}, xy{b.X - uy, b.Y + ux}, xy{b.X + uy, b.Y - ux}, xy{a.X + uy, a.Y - ux})
}

func bounds(pts []xy) (x0, y0, x1, y1 float64) {
	x0, y0, x1, y1 = math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)
	for _, p := range pts {
		x0, y0, x1, y1 = min(x0, p.X), min(y0, p.Y), max(x1, p.X), max(y1, p.Y)
	}
	return x0, y0, x1, y1
}

func (c *pngCanvas) Rect(x0, y0, x1, y1 float64, col color.RGBA) {
	x0, x1 = min(x0, x1), max(x0, x1)
	y0, y1 = min(y0, y1), max(y0, y1)
	if whole := func(v float64) bool { return v == math.Trunc(v) }; whole(x0) && whole(y0) && whole(x1) && whole(y1) {
		c.src.C = col // on whole pixels (the background): nothing to smooth
		draw.Draw(c.img, image.Rect(int(x0), int(y0), int(x1), int(y1)), &c.src, image.Point{}, draw.Src)
		return
	}
	c.fill(x0, y0, x1, y1, col, func(p pen) { p.rect(x0, y0, x1, y1) })
}

func (c *pngCanvas) Marks(pts []xy, size float64, col color.RGBA) {
	if len(pts) == 0 {
		return
	}
	x0, y0, x1, y1 := bounds(pts)
	h := size / 2
	c.fill(x0-h, y0-h, x1+h, y1+h, col, func(p pen) {
		for _, q := range pts {
			p.rect(q.X-h, q.Y-h, q.X+h, q.Y+h)
		}
	})
}

func (c *pngCanvas) Polyline(pts []xy, width float64, col color.RGBA) {
	if len(pts) < 2 {
		return
	}
	x0, y0, x1, y1 := bounds(pts)
	c.fill(x0-width, y0-width, x1+width, y1+width, col, func(p pen) {
		for i := 1; i < len(pts); i++ {
			p.segment(pts[i-1], pts[i], width)
		}
	})
}

func (c *pngCanvas) Dashed(a, b xy, width float64, col color.RGBA) {
	x0, y0, x1, y1 := bounds([]xy{a, b})
	l := math.Hypot(b.X-a.X, b.Y-a.Y)
	if l == 0 {
		return
	}
	at := func(d float64) xy { return xy{a.X + (b.X-a.X)*d/l, a.Y + (b.Y-a.Y)*d/l} }
	c.fill(x0-width, y0-width, x1+width, y1+width, col, func(p pen) {
		for d := 0.0; d < l; d += dashOn + dashOff {
			// the segment's ends are square, half its width past each end
			p.segment(at(d+width/2), at(min(d+dashOn, l)-width/2), width)
		}
	})
}

func (c *pngCanvas) Text(x, y float64, s string, st textStyle) {
	w := int(textWidth(s))
	if w == 0 {
		return
	}
	c.src.C = st.color
	off := st.offset(float64(w))
	if !st.up {
		d := font.Drawer{Dst: c.img, Src: &c.src, Face: plotFace{basicfont.Face7x13}, Dot: fixed.P(int(math.Round(x-off)), int(math.Round(y)))}
		d.DrawString(s)
		return
	}
	// Drawn level into a mask, then turned: the mask's column i is the image's row from
	// the bottom, its row j the image's column from the left.
	level := image.NewAlpha(image.Rect(0, 0, w, lineHeight))
	d := font.Drawer{Dst: level, Src: image.Opaque, Face: plotFace{basicfont.Face7x13}, Dot: fixed.P(0, textAscent)}
	d.DrawString(s)
	turned := image.NewAlpha(image.Rect(0, 0, lineHeight, w))
	for j := range lineHeight {
		for i := range w {
			turned.Pix[(w-1-i)*turned.Stride+j] = level.Pix[j*level.Stride+i]
		}
	}
	left, top := int(math.Round(x))-textAscent, int(math.Round(y+off))-w
	draw.DrawMask(c.img, image.Rect(left, top, left+lineHeight, top+w), &c.src, image.Point{}, turned, image.Point{}, draw.Over)
}

// plotFace is basicfont's 7×13 face (printable ASCII) with the two other characters a
// plot writes: the ellipsis of a shortened label, and the µ of a duration.
type plotFace struct{ *basicfont.Face }

func (f plotFace) Glyph(dot fixed.Point26_6, r rune) (image.Rectangle, image.Image, image.Point, fixed.Int26_6, bool) {
	switch r {
	case '…':
		dr, _, _, advance, ok := f.Face.Glyph(dot, '.')
		return dr, ellipsisMask, image.Point{}, advance, ok
	case 'µ', 'μ':
		r = 'u'
	}
	return f.Face.Glyph(dot, r)
}

// ellipsisMask is the glyph of '…' in the 7×13 face: three dots on the row above the
// baseline, the only row of the glyph's cell it covers (drawing clips to it).
var ellipsisMask = &image.Alpha{Stride: 6, Rect: image.Rectangle{Min: image.Point{0, 10}, Max: image.Point{6, 11}},
	Pix: []byte{0, 0xff, 0, 0xff, 0, 0xff}}
