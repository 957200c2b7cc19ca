package results

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
)

var screenshots = flag.String("screenshots", "", "directory for the browser tests' screenshots (default: the test's artifact directory, kept with go test -artifacts)")

// chromium finds a Chromium or Chrome to drive: $FAULTLINE_CHROMIUM, else the usual
// names on PATH.
func chromium() string {
	if p := os.Getenv("FAULTLINE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// newBrowser starts a headless Chromium for the test, or skips the test saying why.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromium()
	if path == "" {
		t.Skip("no chromium on PATH (nor $FAULTLINE_CHROMIUM): apt-get install chromium to run the browser tests")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.WindowSize(1280, 1000), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("no-pings", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	require.NoError(t, chromedp.Do(ctx), "start %s", path)
	return ctx
}

// pageWatch collects what the pages of a browser asked for and what they complained
// about: every request's URL, and every console error, uncaught exception and error of
// the browser's log (a blocked or failed load, a refused policy).
type pageWatch struct {
	mu       sync.Mutex
	requests []string
	problems []string
}

func watch(t *testing.T, ctx context.Context) *pageWatch {
	t.Helper()
	w := &pageWatch{}
	require.NoError(t, chromedp.Listen(ctx, func(ev any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			w.requests = append(w.requests, ev.Request.URL)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == "error" || ev.Type == "assert" {
				w.problems = append(w.problems, fmt.Sprintf("console.%s: %v", ev.Type, ev.Args))
			}
		case *runtime.EventExceptionThrown:
			w.problems = append(w.problems, "exception: "+ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			if ev.Entry.Level == log.EntryLevelError {
				w.problems = append(w.problems, fmt.Sprintf("log %s: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
			}
		}
	}))
	return w
}

// check asserts that the pages complained of nothing and asked only host (or for data
// of their own: data:, about:, blob:, or a file of this machine).
func (w *pageWatch) check(t *testing.T, host string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	assert.Empty(t, w.problems, "no console errors")
	require.NotEmpty(t, w.requests)
	for _, r := range w.requests {
		u, err := url.Parse(r)
		require.NoError(t, err)
		switch u.Scheme {
		case "data", "about", "blob", "file": // the page's own data, or this machine's disk
			continue
		}
		assert.Equal(t, host, u.Host, "a request to another host than the server: %s", r)
	}
}

func shoot(t *testing.T, ctx context.Context, name string, full bool) {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = t.ArtifactDir()
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	shot := chromedp.CaptureScreenshot()
	if full {
		shot = chromedp.FullScreenshot(100)
	}
	b, err := chromedp.Run(ctx, shot)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	t.Logf("screenshot %s", filepath.Join(dir, name))
}

// reportFacts is what the browser test reads off a rendered report.
type reportFacts struct {
	Verdict, Banner string
	Plots           map[string]struct {
		Shaded int      // fault shading visible on the plot
		Labels []string // fault labels drawn on it
	}
	Explanations []string
	Porcupine    bool
	Load         float64 // ms from navigation start to the end of the load event
}

// readReport reads the verdict, the shaded fault windows of each plot (paths filled with
// a fault color, visible and taller than a label) and the explanations off the page.
func readReport(t *testing.T, ctx context.Context) reportFacts {
	t.Helper()
	var colors []string
	for _, c := range faultColors() {
		colors = append(colors, fmt.Sprintf("rgb(%d, %d, %d)", c.R, c.G, c.B))
	}
	cj, err := json.Marshal(colors)
	require.NoError(t, err)
	js := `(() => {
	const colors = new Set(` + string(cj) + `);
	const plot = (id) => {
		const svg = document.querySelector('#plot-' + id + ' svg');
		if (!svg) return {Shaded: 0, Labels: []};
		const shaded = [...svg.querySelectorAll('path')].filter(p => colors.has(getComputedStyle(p).fill))
			.map(p => p.getBoundingClientRect()).filter(r => r.width > 0 && r.height > 40);
		const labels = [...svg.querySelectorAll('text')].map(t => t.textContent).filter(s => /^F\d+ /.test(s));
		return {Shaded: shaded.length, Labels: labels};
	};
	const v = document.querySelector('#verdict');
	return {Verdict: v.dataset.verdict, Banner: v.querySelector('.verdict').innerText,
		Plots: {latency: plot('latency'), rate: plot('rate')},
		Explanations: [...document.querySelectorAll('ol.explanations li')].map(li => li.innerText),
		Porcupine: !!document.querySelector('a#porcupine'),
		Load: performance.getEntriesByType('navigation')[0].loadEventEnd};
})()`
	facts, err := chromedp.Run(ctx, chromedp.Evaluate[reportFacts](js))
	require.NoError(t, err)
	return facts
}

// TestBrowserIndexAndReport serves a results directory of runs made from fixtures (an
// invalid run from checker/testdata/register-bad.jsonl among them) and a generated
// longer run, and looks at them in headless Chromium: the index lists them with their
// verdicts and opens the invalid run's report, which shows the verdict, a shaded fault
// window on each plot and the explanation; no page logs an error or asks any host but
// the server.
func TestBrowserIndexAndReport(t *testing.T) {
	ctx := newBrowser(t)
	root := t.TempDir()
	makeRun(t, root, fakeRun{test: "nightly-raftnode", stamp: "20250301T021500Z", fixture: "register-bad.jsonl", target: "raftnode"})
	makeRun(t, root, fakeRun{test: "nightly-etcd", stamp: "20250301T020000Z", fixture: "register-ok.jsonl", target: "etcd", faults: []string{"partition", "kill", "pause"}})
	makeRun(t, root, fakeRun{test: "nightly-etcd-set", stamp: "20250301T023000Z", fixture: "set-bad.jsonl", target: "etcd", faults: []string{"kill"}})
	long := makeRun(t, root, fakeRun{test: "nightly-etcd-long", stamp: "20250301T030000Z", target: "etcd", faults: []string{"partition", "kill", "pause"},
		events: genHistory(genConfig{seed: 5, ops: 40_000, procs: 10, opsPerKey: 200, stale: true, latency: 3 * time.Millisecond})})
	makeRun(t, root, fakeRun{test: "nightly-etcd-long", stamp: "20250301T040000Z", fixture: "register-ok.jsonl", target: "etcd", inProgress: true})
	ts := newTestServer(t, root)
	host := strings.TrimPrefix(ts.URL, "http://")
	w := watch(t, ctx)

	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 560), chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.ID("runs"))))
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('tr.run')].map(r => r.dataset.verdict)`))
	require.NoError(t, err)
	assert.Equal(t, []string{"in progress", "invalid", "invalid", "invalid", "valid"}, rows, "every run, newest first, with its verdict")
	shoot(t, ctx, "index.png", false)

	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href="/runs/nightly-raftnode/20250301T021500Z/report.html"]`)))
	require.NoError(t, err, "the row opens its report")
	f := readReport(t, ctx)
	assert.Equal(t, "invalid", f.Verdict)
	assert.Equal(t, "INVALID", f.Banner)
	for _, p := range []string{"latency", "rate"} {
		assert.GreaterOrEqual(t, f.Plots[p].Shaded, 1, "a fault window shaded on the %s plot", p)
		assert.Contains(t, f.Plots[p].Labels, "F1 partition halves n1,n2 | n3", "and labelled")
	}
	events := fixtureEvents(t, "register-bad.jsonl")
	want := checker.Check(context.Background(), events, checker.Options{}).Explanations()
	assert.Equal(t, want, f.Explanations, "the explanation, in plain words")
	assert.True(t, f.Porcupine, "a link into porcupine's view")
	shoot(t, ctx, "report-fixture.png", true)

	_, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("porcupine")))
	require.NoError(t, err, "porcupine's view opens")

	require.NoError(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 1800),
		chromedp.Navigate(ts.URL+"/runs/nightly-etcd-long/20250301T030000Z/report.html")))
	f = readReport(t, ctx)
	assert.Equal(t, "invalid", f.Verdict)
	for _, p := range []string{"latency", "rate"} {
		assert.GreaterOrEqual(t, f.Plots[p].Shaded, 3, "every fault window shaded on the %s plot", p)
	}
	require.Len(t, f.Explanations, 1)
	assert.Contains(t, f.Explanations[0], "returned")
	shoot(t, ctx, "report.png", false)
	shoot(t, ctx, "report-long-full.png", true)

	_, err = chromedp.Run(ctx, chromedp.NavigateResponse("file://"+filepath.Join(long, ReportFile)))
	require.NoError(t, err, "the report opens from disk too")
	assert.Equal(t, "invalid", readReport(t, ctx).Verdict)
	w.check(t, host)
}
