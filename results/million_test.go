package results

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
)

var million = flag.Bool("million", false, "measure the report of a generated 1M-operation history: its size, and its load in Chromium (about a minute)")

// TestReportOfAMillionOperations is the measurement of docs/reports.md: a generated
// register history of a million operations (10 clients at about 1.7k operations a
// second, so a ten-minute run, with a fault every 5 s and one stale read) is checked and
// reported, and its report.html must be under 20 MB and fire its load event within 3 s
// of navigation in headless Chromium. Run it with
//
//	go test -run TestReportOfAMillionOperations -million -v ./results/
func TestReportOfAMillionOperations(t *testing.T) {
	if !*million {
		t.Skip("a measurement: run with -million")
	}
	ctx := newBrowser(t) // before the work: skips at once without chromium
	t0 := time.Now()
	events := genHistory(genConfig{seed: 11, ops: 1_000_000, procs: 10, opsPerKey: 200, stale: true, latency: time.Millisecond})
	t.Logf("generated %d events in %v", len(events), time.Since(t0).Round(time.Millisecond))
	dir := t.ArtifactDir()
	t0 = time.Now()
	res := checker.Check(context.Background(), events, checker.Options{})
	require.Equal(t, checker.Invalid, res.Verdict, res.Summary())
	t.Logf("checked in %v: %s", time.Since(t0).Round(time.Millisecond), res.Summary())
	t0 = time.Now()
	require.NoError(t, WriteCheck(dir, res))
	t.Logf("results.json and linearizability.html in %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	path, err := WriteReport(dir, res, checker.Pair(events), ReportOptions{})
	require.NoError(t, err)
	t.Logf("report written in %v", time.Since(t0).Round(time.Millisecond))
	for _, f := range []string{ReportFile, LatencyPlotFile, RatePlotFile, VisualizationFile, ResultsFile} {
		if st, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Logf("%-22s %s", f, byteSize(st.Size()))
		}
	}
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Less(t, st.Size(), int64(20<<20), "report.html under 20 MB")

	for i := range 3 { // the first load also warms the browser up
		t0 = time.Now()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("about:blank")))
		t0 = time.Now()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("file://"+path)))
		wall := time.Since(t0)
		f := readReport(t, ctx)
		assert.Equal(t, "invalid", f.Verdict)
		t.Logf("load %d: load event ended %.0f ms after navigation start (Navigate returned after %v)", i+1, f.Load, wall.Round(time.Millisecond))
		assert.Less(t, f.Load, 3000.0, "the report opens (load event) within 3 s")
	}
	if *screenshots != "" {
		shoot(t, ctx, "report-million.png", false)
	}
}
