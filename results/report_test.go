package results

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// writeFixtureReport checks a fixture of checker/testdata and writes its results and
// report into a fresh directory, returning the directory, the result and the page.
func writeFixtureReport(t *testing.T, fixture string) (string, checker.Result, string) {
	t.Helper()
	return writeReportOf(t, fixtureEvents(t, fixture), "")
}

// fixtureEvents reads a history of checker/testdata.
func fixtureEvents(t *testing.T, fixture string) []history.Event {
	t.Helper()
	events, _, err := history.ReadFile(filepath.Join("..", "checker", "testdata", fixture))
	require.NoError(t, err)
	return events
}

func writeReportOf(t *testing.T, events []history.Event, testJSON string) (string, checker.Result, string) {
	t.Helper()
	dir := t.TempDir()
	if testJSON != "" {
		require.NoError(t, os.WriteFile(filepath.Join(dir, TestFile), []byte(testJSON), 0o644))
	}
	res := checker.Check(context.Background(), events, checker.Options{})
	require.NoError(t, WriteCheck(dir, res))
	path, err := WriteReport(dir, res, checker.Pair(events), ReportOptions{History: filepath.Join(dir, "history.jsonl")})
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, ReportFile), path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return dir, res, string(b)
}

// selfContained asserts that a page loads nothing: no script, stylesheet, image or
// frame from anywhere, and no absolute URL in any attribute.
func selfContained(t *testing.T, page string) {
	t.Helper()
	assert.NotRegexp(t, `(?i)<(script|iframe|object|embed|img)\b`, page, "the page loads nothing")
	assert.Equal(t, 1, strings.Count(page, "<link"), "one link: the empty icon, so no browser asks for /favicon.ico")
	assert.Contains(t, page, `<link rel="icon" href="data:,">`)
	assert.NotRegexp(t, `(?i)(src|href)\s*=\s*"?(https?:)?//`, page, "no absolute URL")
	assert.NotRegexp(t, `(?i)url\(`, page, "no CSS url()")
}

func TestWriteReport(t *testing.T) {
	for _, tc := range []struct {
		fixture, verdict string
		want             []string
	}{
		{"register-bad.jsonl", "invalid", []string{`id="explanation"`, `href="./linearizability.html"`, "process 2", "blamed", "F1 partition"}},
		{"register-ok.jsonl", "valid", []string{"no anomaly found"}},
		{"set-bad.jsonl", "invalid", []string{`id="explanation"`, html.EscapeString(`"b" was lost`)}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			dir, res, page := writeFixtureReport(t, tc.fixture)
			assert.Contains(t, page, `data-verdict="`+tc.verdict+`"`)
			for _, w := range tc.want {
				assert.Contains(t, page, w)
			}
			for _, e := range res.Explanations() {
				assert.Contains(t, page, html.EscapeString(e), "every explanation, in plain words")
			}
			assert.Equal(t, tc.verdict == "invalid" && tc.fixture != "set-bad.jsonl", strings.Contains(page, "The failing keys around the anomaly"),
				"a timeline of the failing key exactly for a linearizability violation")
			selfContained(t, page)
			for _, id := range []string{"plot-latency", "plot-rate"} {
				assert.Regexp(t, `id="`+id+`"><svg role="img"`, page, "the plots are inline SVG")
			}
			for _, f := range []string{LatencyPlotFile, RatePlotFile} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				require.NoError(t, err)
				assert.True(t, bytes.HasPrefix(b, []byte("\x89PNG")), "%s is a PNG", f)
			}
			for _, f := range []string{LatencySVGFile, RateSVGFile} {
				b, err := os.ReadFile(filepath.Join(dir, f))
				require.NoError(t, err)
				assert.Contains(t, string(b), "<svg", "%s is an SVG", f)
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
			assert.Empty(t, left)
		})
	}
}

func TestReportShadesEveryFaultOnEveryPlot(t *testing.T) {
	_, _, page := writeFixtureReport(t, "register-bad.jsonl")
	shade := strings.ToUpper(faultColor("partition"))
	for _, id := range []string{"latency", "rate"} {
		svg := plotSVG(t, page, id)
		assert.Contains(t, strings.ToUpper(svg), "FILL:"+shade, "the %s plot shades the partition", id)
		assert.Contains(t, svg, "F1 partition halves n1,n2 | n3", "the %s plot labels it by kind and nodes", id)
	}
	assert.Contains(t, page, "partitioned", "the nodes' lanes say what happened to them")
}

// plotSVG returns the inline SVG of a plot of the page.
func plotSVG(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)id="plot-` + id + `">(<svg.*?</svg>)`).FindStringSubmatch(page)
	require.NotNil(t, m, "no %s plot", id)
	return m[1]
}

func TestReportUnknownSaysWhy(t *testing.T) {
	events := []history.Event{
		{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.S1("a"), Time: 1},
		{Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.S1("a"), Time: 2},
	}
	_, res, page := writeReportOf(t, events, "")
	require.Equal(t, checker.Unknown, res.Verdict)
	assert.Contains(t, page, `data-verdict="unknown"`)
	for _, r := range res.UnknownBecause {
		assert.Contains(t, page, "<code>"+r.Code+"</code>: "+html.EscapeString(r.Detail))
	}
}

// A run whose system answered little carries the warning at the top of its report.
func TestReportShowsWarnings(t *testing.T) {
	events := []history.Event{
		{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.S1("a"), Time: 1},
		{Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.S1("a"), Time: 2},
	}
	for p := 1; p <= 4; p++ {
		events = append(events,
			history.Event{Process: p, Type: history.Invoke, F: "read", Key: "k", Time: int64(2 + 2*p)},
			history.Event{Process: p, Type: history.Fail, F: "read", Key: "k", Time: int64(3 + 2*p), Error: "no leader"})
	}
	_, res, page := writeReportOf(t, events, "")
	require.NotEmpty(t, res.Warnings)
	assert.Contains(t, page, `<code>low_availability</code>: `+html.EscapeString(res.Warnings[0].Detail))
}

func TestReportShowsTheSpec(t *testing.T) {
	_, _, page := writeReportOf(t, fixtureEvents(t, "register-ok.jsonl"), `{"spec": {"name": "nightly", "nodes": 5, "time_limit": "1m0s", "nemesis": ["partition"]},
		"run_id": "ab12cd", "runtime": "process", "seed": 42, "workload": "register", "nemesis_faults": ["partition", "kill"],
		"nemesis_unavailable": {"clock": "no clock hook"}, "start_time": "2025-01-02T03:04:05Z",
		"target": {"name": "etcd", "version": "v3.6.16", "versions": ["v3.6.16", "v3.7.3"]},
		"replay": "faultline test --seed 42"}`)
	for _, w := range []string{"nightly", "ab12cd", "etcd v3.6.16 → v3.7.3", "process", "partition, kill", "no clock hook",
		"2025-01-02 03:04:05 UTC", "<dd>42</dd>", `<pre id="replay">faultline test --seed 42</pre>`, "1m0s"} {
		assert.Contains(t, page, w)
	}
}

// TestReportEscapesEverything writes markup into every value a history and a spec can
// carry: the page must show it as text, in the HTML and in the plots' SVG alike.
func TestReportEscapesEverything(t *testing.T) {
	const x = `<script>alert(1)</script>`
	events := []history.Event{
		{Process: history.NemesisProcess, Type: history.Invoke, F: "start-partition", Time: 1e6},
		{Process: history.NemesisProcess, Type: history.OK, F: "start-partition", Value: history.L(x, x), Node: x, Time: 2e6},
		{Process: 0, Type: history.Invoke, F: "write", Key: x, Value: history.S1(x), Node: x, Time: 3e6},
		{Process: 0, Type: history.OK, F: "write", Key: x, Value: history.S1(x), Node: x, Time: 4e6},
		{Process: history.NemesisProcess, Type: history.Info, F: x, Value: history.S1(x), Node: x, Time: 5e6},
		{Process: 1, Type: history.Invoke, F: "read", Key: x, Time: 6e6},
		{Process: 1, Type: history.OK, F: "read", Key: x, Value: history.S1("other"), Time: 7e6, Error: x},
		{Process: history.NemesisProcess, Type: history.Invoke, F: "stop-partition", Time: 8e6},
		{Process: history.NemesisProcess, Type: history.OK, F: "stop-partition", Time: 9e6},
		{Process: history.NemesisProcess, Type: history.Info, F: LeaderEvent, Node: x, Time: 9e6},
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	spec := `{"spec": {"name": "` + x + `", "` + x + `": "` + x + `"}, "runtime": "` + x + `", "target": {"name": "` + x + `"}, "replay": "` + x + `"}`
	_, res, page := writeReportOf(t, events, strings.ReplaceAll(spec, "/", `\/`))
	require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
	assert.NotContains(t, page, "<script", "no value becomes markup")
	assert.NotContains(t, strings.ToLower(page), "<script")
	assert.Contains(t, page, "&lt;script&gt;alert(1)&lt;/script&gt;", "it shows as text")
	for _, id := range []string{"latency", "rate"} {
		assert.Contains(t, plotSVG(t, page, id), "&lt;script&gt;", "the fault's label in the %s plot is text", id)
	}
	selfContained(t, page)
}

func TestInlineSVGRefusesWhatIsNotADrawing(t *testing.T) {
	_, err := inlineSVG([]byte(`<?xml version="1.0"?><svg><g><path d="M0 0"/><text>a &lt;b&gt;</text></g></svg>`), "t")
	require.NoError(t, err)
	for _, bad := range []string{
		`<svg><script>alert(1)</script></svg>`,
		`<svg onload="alert(1)"><g/></svg>`,
		`<svg><foreignObject><div/></foreignObject></svg>`,
		`<svg><g><a href="https://example.com"><text>x</text></a></g></svg>`,
		`<svg><path d="M0 0" style="fill:url(javascript:alert(1))"/></svg>`,
		`<svg><defs><clipPath id="c"><path d="M0 0"/></clipPath></defs></svg>`, // not what the canvas draws
		`<svg><g>`,
		`no drawing`,
	} {
		_, err := inlineSVG([]byte(bad), "t")
		assert.Error(t, err, bad)
	}
}

// TestReportOfALongHistoryStaysSmall checks the bounds on a history long enough to be
// binned: every plotted series within maxPlotPoints, the anomaly's timeline cut to a
// window, and the page saying what it left out.
func TestReportOfALongHistoryStaysSmall(t *testing.T) {
	events := genHistory(genConfig{seed: 3, ops: 30_000, procs: 10, opsPerKey: 200, stale: true})
	_, res, page := writeReportOf(t, events, "")
	require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
	for _, id := range []string{"latency", "rate"} {
		svg := plotSVG(t, page, id)
		assert.Less(t, strings.Count(svg, "<path"), 4*maxPlotPoints+500, "the %s plot is binned", id)
	}
	assert.Contains(t, page, "operations binned into")
	assert.Contains(t, page, "showing 80 of the key")
	bars := strings.Count(page[strings.Index(page, `id="timelines"`):], `class="item `)
	assert.LessOrEqual(t, bars, maxTimelineOps, "the timeline is a window around the anomaly")
	assert.Less(t, len(page), 3<<20)
	assert.Contains(t, page, "blamed")
}

func TestReportMarksLeaderChanges(t *testing.T) {
	events := fixtureEvents(t, "register-ok.jsonl")
	last := events[len(events)-1]
	events = append(events, history.Event{Index: last.Index + 1, Time: last.Time / 2, Process: history.NemesisProcess,
		Type: history.Info, F: LeaderEvent, Node: "n2"})
	_, _, page := writeReportOf(t, events, "")
	for _, id := range []string{"latency", "rate"} {
		assert.Contains(t, plotSVG(t, page, id), ">leader n2</text>", "the %s plot marks the change", id)
	}
	assert.Contains(t, page, "n2 became leader at", "and the new leader's lane")
	assert.NotContains(t, page, "leader changes: the history records none")
}

func TestReportOfLittleOrUntimedHistories(t *testing.T) {
	jepsen, err := os.Open(filepath.Join("..", "history", "testdata", "etcd_000.log"))
	require.NoError(t, err)
	defer jepsen.Close()
	untimed, _, err := history.ReadJepsenLog(jepsen)
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		events []history.Event
		want   string
	}{
		"empty":           {nil, `data-verdict="unknown"`},
		"one invoke":      {[]history.Event{{Process: 0, Type: history.Invoke, F: "read", Key: "k", Time: 5}}, `data-verdict="unknown"`},
		"same time":       {[]history.Event{{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.S1("a")}, {Index: 1, Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.S1("a")}}, `id="plot-rate"`},
		"jepsen, untimed": {untimed, "the history has no clock readings"},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, page := writeReportOf(t, tc.events, "")
			assert.Contains(t, page, tc.want)
			selfContained(t, page)
		})
	}
}

// staleRead is a key's history of one stale read at t: a write of x, then of y, then a
// read that returns x.
func staleRead(key string, proc int, t int64) []history.Event {
	op := func(typ history.Type, f string, v history.Value, at int64) history.Event {
		return history.Event{Process: proc, Type: typ, F: f, Key: key, Value: v, Time: at}
	}
	x, y := history.S1(key+"-x"), history.S1(key+"-y")
	return []history.Event{op(history.Invoke, "write", x, t), op(history.OK, "write", x, t+1),
		op(history.Invoke, "write", y, t+2), op(history.OK, "write", y, t+3),
		op(history.Invoke, "read", history.Value{}, t+4), op(history.OK, "read", x, t+5)}
}

func TestReportExplainsTheEarliestAnomalyFirst(t *testing.T) {
	events := append(staleRead("b", 1, 1e6), staleRead("a", 0, 9e6)...)
	slices.SortStableFunc(events, func(a, b history.Event) int { return cmp.Compare(a.Time, b.Time) })
	for i := range events {
		events[i].Index = int64(i)
	}
	_, res, page := writeReportOf(t, events, "")
	require.Len(t, res.Linearizability.Failures, 2)
	require.Equal(t, "a", res.Linearizability.Failures[0].Key, "the checker orders by key")
	assert.Less(t, strings.Index(page, html.EscapeString(`key "b"`)), strings.Index(page, html.EscapeString(`key "a"`)), "the page by time")
	assert.Contains(t, page, "2 anomalies explained below, the earliest first")
}

// A transaction anomaly's cycle is drawn: each transaction with its operations, the
// dependency to the next, the last closing the cycle.
func TestReportDrawsTransactionCycles(t *testing.T) {
	mops := func(ms ...history.Mop) history.Value { return history.T(ms...) }
	ap := history.Mop{F: history.MopAppend, Key: "x", V: history.S1("1")}
	rIn := history.Mop{F: history.MopRead, Key: "x"}
	rOut := history.Mop{F: history.MopRead, Key: "x", V: history.L()}
	rAll := history.Mop{F: history.MopRead, Key: "x", V: history.L("1")}
	events := []history.Event{
		{Process: 0, Type: history.Invoke, F: history.OpTxn, Value: mops(ap), Time: 1e6},
		{Process: 0, Type: history.OK, F: history.OpTxn, Value: mops(ap), Time: 10e6},
		{Process: 1, Type: history.Invoke, F: history.OpTxn, Value: mops(rIn), Time: 20e6},
		{Process: 1, Type: history.OK, F: history.OpTxn, Value: mops(rOut), Time: 30e6},
		{Process: 2, Type: history.Invoke, F: history.OpTxn, Value: mops(rIn), Time: 40e6},
		{Process: 2, Type: history.OK, F: history.OpTxn, Value: mops(rAll), Time: 50e6},
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	_, res, page := writeReportOf(t, events, "")
	require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
	assert.Contains(t, page, `<table class="cycle"><caption>G-single-realtime</caption>`)
	assert.Contains(t, page, "<code>[[r x []]]</code>")
	assert.Contains(t, page, "↺")
	assert.Contains(t, page, "rt: T2 completed at 0.010s, before T1 began at 0.020s")
}

// The time axis starts where the history does (the cluster was up), not at the run's
// base time a build and the nodes' start came after; the page says so, and times keep
// their labels since the run began.
func TestReportAxisStartsAtTheFirstEvent(t *testing.T) {
	base := int64(5 * time.Second)
	var events []history.Event
	for i := range int64(20) {
		at := base + i*int64(100*time.Millisecond)
		events = append(events,
			history.Event{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.S1(fmt.Sprint(i)), Time: at},
			history.Event{Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.S1(fmt.Sprint(i)), Time: at + int64(time.Millisecond)},
			history.Event{Process: 1, Type: history.Invoke, F: "read", Key: "k", Time: at + 2*int64(time.Millisecond)},
			history.Event{Process: 1, Type: history.OK, F: "read", Key: "k", Value: history.S1(fmt.Sprint(i)), Time: at + 3*int64(time.Millisecond)})
	}
	_, _, page := writeReportOf(t, events, "")
	assert.Contains(t, page, "from 5.000 s, the first event")
	assert.NotContains(t, page, ">0 s<", "no tick at the base time")
}
