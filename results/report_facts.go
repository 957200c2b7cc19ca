package results

import (
	"bytes"
	"cmp"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
)

// addFacts fills the page's title, the run's facts and spec from test.json (in
// opts.RunDir, or dir), and what the history itself says. A test.json that cannot be
// read is said on the page: the report of the history is worth having without it.
func (page *reportPage) addFacts(dir string, res checker.Result, h *checker.History, opts ReportOptions) error {
	info, ok, err := ReadTestInfo(cmp.Or(opts.RunDir, dir))
	add := func(name, value string) {
		if value != "" {
			page.Facts = append(page.Facts, fact{name, value})
		}
	}
	page.Title = cmp.Or(info.Name, filepath.Base(cmp.Or(opts.History, dir)))
	if err != nil {
		add("test.json", "could not be read: "+err.Error())
	}
	if ok {
		add("test", info.Name)
		if !info.Start.IsZero() {
			add("started", info.Start.UTC().Format("2006-01-02 15:04:05 MST"))
		}
		add("run id", info.RunID)
		add("target", info.TargetLabel())
		add("runtime", info.Runtime)
		spec := info.SpecKeys()
		for _, k := range []string{"nodes", "concurrency", "keys", "ops_per_key", "rate", "time_limit", "nemesis_interval"} {
			add(strings.ReplaceAll(k, "_", " "), specValue(spec[k]))
		}
		add("faults", strings.Join(info.Faults, ", "))
		for _, k := range slices.Sorted(maps.Keys(info.Unavailable)) {
			add("left out: "+k, info.Unavailable[k])
		}
		if info.Seed != nil {
			add("seed", fmt.Sprint(*info.Seed))
		}
		page.Replay = info.Replay
		for _, k := range slices.Sorted(maps.Keys(spec)) {
			page.Spec = append(page.Spec, fact{k, specValue(spec[k])})
		}
		var target map[string]any
		if b, err := json.Marshal(info.Target); err == nil && json.Unmarshal(b, &target) == nil {
			delete(target, "file_text") // the file itself is in test.json; the page says where
			for _, k := range slices.Sorted(maps.Keys(target)) {
				page.Spec = append(page.Spec, fact{"target " + k, specValue(target[k])})
			}
		}
	}
	add("model", string(res.Model))
	add("history", opts.History)
	s, _ := spanOf(h, res.Stats.Untimed)
	add("events", fmt.Sprint(h.Events()))
	if !res.Stats.Untimed && h.Events() > 0 {
		add("duration", time.Duration(s.t1-s.t0).Round(time.Millisecond).String())
		if s.t0 > 0 {
			add("time axis", fmt.Sprintf("from %.3f s, the first event (the cluster was up): times are since the run began, its nodes' start before that", float64(s.t0)/1e9))
		}
	}
	add("checked in", res.Elapsed.Round(time.Millisecond).String())
	return nil
}

// svgElements are the elements a plot's SVG may hold: what svgCanvas draws (svg, path,
// text), and plain groups and shapes.
var svgElements = []string{"svg", "g", "path", "text", "rect", "line", "circle"}

// inlineSVG makes a plot's SVG fit to be put into the page as markup: its XML prolog
// and comments dropped, its size left to the page's CSS. It returns an error unless
// the drawing holds only drawing elements, with no event-handler or link attribute:
// the text in it (fault and node names from the history) is escaped by the canvas, and
// this checks that nothing else can have slipped in.
func inlineSVG(b []byte, title string) (template.HTML, error) {
	i := bytes.Index(b, []byte("<svg"))
	if i < 0 {
		return "", errors.New("no <svg> element")
	}
	b = b[i:]
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("not well-formed SVG: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if !slices.Contains(svgElements, t.Name.Local) {
				return "", fmt.Errorf("unexpected <%s> in a plot", t.Name.Local)
			}
			for _, a := range t.Attr {
				n := strings.ToLower(a.Name.Local)
				if strings.HasPrefix(n, "on") || n == "href" || strings.Contains(strings.ToLower(a.Value), "javascript:") {
					return "", fmt.Errorf("unexpected attribute %s in a plot", a.Name.Local)
				}
			}
		case xml.ProcInst, xml.Directive:
			return "", errors.New("unexpected instruction in a plot")
		}
	}
	var out bytes.Buffer
	out.WriteString(`<svg role="img" aria-label="`)
	template.HTMLEscape(&out, []byte(title))
	out.WriteString(`" `)
	out.Write(b[len("<svg"):])
	return template.HTML(out.String()), nil //nolint:gosec // checked above: drawing elements only, text escaped
}
