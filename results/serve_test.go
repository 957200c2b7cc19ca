package results

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// fakeRun is a run directory as a run writes it, made without a cluster.
type fakeRun struct {
	test, stamp string
	fixture     string          // a history of checker/testdata, or
	events      []history.Event // these
	target      string          // the target's name (its version is v3.7.3)
	faults      []string        // default: partition
	inProgress  bool            // no results.json, no report: the run goes on
}

// makeRun makes root/<test>/<stamp>/ holding the run's history and test.json, and,
// unless it is in progress, its results.json and report.
func makeRun(t *testing.T, root string, fr fakeRun) string {
	t.Helper()
	dir := filepath.Join(root, fr.test, fr.stamp)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	events := fr.events
	if fr.fixture != "" {
		var err error
		events, _, err = history.ReadFile(filepath.Join("..", "checker", "testdata", fr.fixture))
		require.NoError(t, err)
	}
	var b strings.Builder
	for _, e := range events {
		line, err := e.MarshalJSON()
		require.NoError(t, err)
		b.Write(append(line, '\n'))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "history.jsonl"), []byte(b.String()), 0o644))
	start, err := time.Parse("20060102T150405Z", fr.stamp)
	require.NoError(t, err)
	if fr.faults == nil {
		fr.faults = []string{"partition"}
	}
	require.NoError(t, WriteJSON(dir, TestFile, map[string]any{
		"spec": map[string]any{"name": fr.test, "nodes": 5, "concurrency": 10, "time_limit": "1m0s"}, "runtime": "process",
		"workload": "register", "seed": 7, "nemesis_faults": fr.faults, "start_time": start.Format(time.RFC3339Nano),
		"target": map[string]any{"name": fr.target, "version": "v3.7.3"}, "run_id": "c0ffee",
		"replay": "faultline test --target " + fr.target + " --nemesis " + strings.Join(fr.faults, ",") + " --seed 7"}))
	if fr.inProgress {
		return dir
	}
	res := checker.Check(context.Background(), events, checker.Options{})
	require.NoError(t, WriteCheck(dir, res))
	_, err = WriteReport(dir, res, checker.Pair(events), ReportOptions{})
	require.NoError(t, err)
	return dir
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func newTestServer(t *testing.T, root string) *httptest.Server {
	t.Helper()
	s, err := NewServer(root)
	require.NoError(t, err)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts
}

func TestServeIndex(t *testing.T) {
	root := t.TempDir()
	makeRun(t, root, fakeRun{test: "nightly", stamp: "20250101T010000Z", fixture: "register-ok.jsonl", target: "etcd"})
	makeRun(t, root, fakeRun{test: "nightly", stamp: "20250102T010000Z", fixture: "register-bad.jsonl", target: "raftnode"})
	live := makeRun(t, root, fakeRun{test: "<script>alert(1)</script>", stamp: "20250103T010000Z", fixture: "register-ok.jsonl", target: "etcd", inProgress: true})
	f, err := os.OpenFile(filepath.Join(live, "history.jsonl"), os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(`{"index":14,"time":99000000,"process":0,"type":"inv`) // torn: being written
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Symlink("nightly/20250102T010000Z", filepath.Join(root, "latest")))
	ts := newTestServer(t, root)

	code, h, body := get(t, ts.URL+"/")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, h.Get("Content-Security-Policy"), "default-src 'none'")
	assert.NotContains(t, body, "<script>", "a test's name is text")
	assert.Contains(t, body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	assert.Equal(t, 3, strings.Count(body, `<tr class="run"`), "every run once: latest is a link, not a run")
	i3, i2, i1 := strings.Index(body, "20250103T010000Z"), strings.Index(body, "20250102T010000Z"), strings.Index(body, "20250101T010000Z")
	assert.True(t, i3 < i2 && i2 < i1, "newest first")
	assert.Contains(t, body, `data-verdict="in progress"`, "a run without results.json is in progress")
	assert.Contains(t, body, `<td class="n">61ms</td>`, "its duration so far is its last whole event's time")
	assert.Contains(t, body, `<span class="verdict invalid"`)
	assert.Contains(t, body, `<span class="verdict valid"`)
	assert.Contains(t, body, `href="/runs/nightly/20250102T010000Z/report.html"`)
	assert.Contains(t, body, `href="/download/nightly/20250102T010000Z.tar.gz"`)
	assert.Contains(t, body, "raftnode v3.7.3")

	for q, want := range map[string]int{"verdict=invalid": 1, "target=etcd": 2, "workload=register&verdict=valid": 1, "fault=partition": 3, "fault=kill": 0} {
		_, _, body := get(t, ts.URL+"/?"+q)
		assert.Equal(t, want, strings.Count(body, `<tr class="run"`), q)
	}
	_, _, body = get(t, ts.URL+"/?verdict=invalid")
	assert.Contains(t, body, "<option selected>invalid</option>", "the filter shows what it filters by")

	// The run finishes while the server runs: its row follows.
	events, _, err := history.ReadFile(filepath.Join(live, "history.jsonl"))
	require.NoError(t, err)
	require.NoError(t, WriteCheck(live, checker.Check(context.Background(), events, checker.Options{})))
	_, _, body = get(t, ts.URL+"/")
	assert.NotContains(t, body, `data-verdict="in progress"`)
}

func TestServeRunFiles(t *testing.T) {
	root := t.TempDir()
	makeRun(t, root, fakeRun{test: "nightly", stamp: "20250102T010000Z", fixture: "register-bad.jsonl", target: "raftnode"})
	ts := newTestServer(t, root)
	code, h, body := get(t, ts.URL+"/runs/nightly/20250102T010000Z/report.html")
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "text/html; charset=utf-8", h.Get("Content-Type"))
	assert.Contains(t, body, `data-verdict="invalid"`)
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	_, h, _ = get(t, ts.URL+"/runs/nightly/20250102T010000Z/history.jsonl")
	assert.Equal(t, "text/plain; charset=utf-8", h.Get("Content-Type"), "a history is shown as text, never run")
	_, h, _ = get(t, ts.URL+"/runs/nightly/20250102T010000Z/latency.png")
	assert.Equal(t, "image/png", h.Get("Content-Type"))
	code, _, body = get(t, ts.URL+"/runs/nightly/20250102T010000Z/")
	require.Equal(t, http.StatusOK, code)
	for _, f := range []string{"./results.json", "./report.html", "./linearizability.html", "./history.jsonl", "/download/nightly/20250102T010000Z.tar.gz"} {
		assert.Contains(t, body, `href="`+f+`"`)
	}
	code, _, _ = get(t, ts.URL+"/favicon.ico")
	assert.Equal(t, http.StatusNoContent, code, "no icon, and no error for it in a browser's console")
	code, _, _ = get(t, ts.URL+"/runs/nightly/20250102T010000Z/nothing.txt")
	assert.Equal(t, http.StatusNotFound, code)
	resp, err := http.Post(ts.URL+"/", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}

// rawGet sends path exactly as given (no client-side cleaning or escaping) and returns
// the status code and body.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	_, err = fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeRefusesPathsOutsideTheRoot(t *testing.T) {
	outside := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("SECRET"), 0o644))
	base := t.TempDir()
	root := filepath.Join(base, "results")
	run := makeRun(t, root, fakeRun{test: "nightly", stamp: "20250102T010000Z", fixture: "register-ok.jsonl", target: "etcd"})
	require.NoError(t, os.WriteFile(filepath.Join(base, "secret.txt"), []byte("SECRET"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(root, "out")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(run, "leak.txt")))
	require.NoError(t, os.Symlink("history.jsonl", filepath.Join(run, "inside.jsonl")))
	ts := newTestServer(t, root)
	addr := strings.TrimPrefix(ts.URL, "http://")

	for _, p := range []string{
		"/../secret.txt", "/runs/../secret.txt", "/runs/../../secret.txt", "/runs/nightly/../../secret.txt",
		"/%2e%2e/secret.txt", "/runs/%2e%2e/secret.txt", "/runs/%2E%2E/%2e%2e/secret.txt",
		"/runs/..%2fsecret.txt", "/runs/..%2F..%2Fsecret.txt", "/runs/nightly%2f..%2f..%2fsecret.txt",
		"/runs/..%5csecret.txt", "/runs/..\\secret.txt", "/runs/%00/secret.txt",
		"/runs/out/secret.txt", "/runs/out/", "/runs/nightly/20250102T010000Z/leak.txt",
		"/download/..%2f..%2f" + filepath.Base(outside) + ".tar.gz", "/download/out.tar.gz", "/download/..tar.gz",
		"/runs/" + base + "/secret.txt", "/runs//" + base + "/secret.txt", "//" + base + "/secret.txt",
	} {
		code, body := rawGet(t, addr, p)
		assert.NotContains(t, body, "SECRET", p)
		assert.Equal(t, http.StatusNotFound, code, p)
	}
	code, body := rawGet(t, addr, "/runs/nightly/20250102T010000Z/inside.jsonl")
	assert.Equal(t, http.StatusOK, code, "a link that stays inside is followed")
	assert.Contains(t, body, "start-partition")
	code, _ = rawGet(t, addr, "/runs/latest/")
	assert.Equal(t, http.StatusNotFound, code, "no latest link here: none was made")
}

func TestServeTarball(t *testing.T) {
	root := t.TempDir()
	run := makeRun(t, root, fakeRun{test: "nightly", stamp: "20250102T010000Z", fixture: "register-bad.jsonl", target: "raftnode"})
	require.NoError(t, os.MkdirAll(filepath.Join(run, "nodes", "n1"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(run, "nodes", "n1", "node.log"), []byte("log line\n"), 0o644))
	require.NoError(t, os.Symlink("/etc/passwd", filepath.Join(run, "nodes", "n1", "passwd")))
	ts := newTestServer(t, root)
	resp, err := http.Get(ts.URL + "/download/nightly/20250102T010000Z.tar.gz")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `attachment; filename="nightly-20250102T010000Z.tar.gz"`, resp.Header.Get("Content-Disposition"))
	gz, err := gzip.NewReader(resp.Body)
	require.NoError(t, err)
	tr := tar.NewReader(gz)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(b)
	}
	for _, f := range []string{"results.json", "history.jsonl", "report.html", "linearizability.html", "test.json", "latency.png"} {
		assert.Contains(t, files, "20250102T010000Z/"+f)
	}
	assert.Equal(t, "log line\n", files["20250102T010000Z/nodes/n1/node.log"])
	assert.NotContains(t, files, "20250102T010000Z/nodes/n1/passwd", "a symbolic link is left out")
}

func TestServeListensAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, "127.0.0.1:0", t.TempDir(), func(u string) { urls <- u }) }()
	u := <-urls
	code, _, body := get(t, u)
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, "No runs here yet")
	cancel()
	require.NoError(t, <-done)
	assert.Error(t, Serve(context.Background(), "127.0.0.1:0", filepath.Join(t.TempDir(), "missing"), nil))
	assert.True(t, IsLoopback("127.0.0.1:8080"))
	assert.True(t, IsLoopback("[::1]:8080"))
	assert.True(t, IsLoopback("localhost:8080"))
	assert.False(t, IsLoopback(":8080"))
	assert.False(t, IsLoopback("0.0.0.0:8080"))
}

// A campaign directory is a group: its row says what the gate said, its runs name it,
// and ?campaign= shows only them.
func TestServeGroupsCampaigns(t *testing.T) {
	root := t.TempDir()
	makeRun(t, root, fakeRun{test: "alone", stamp: "20250101T010000Z", fixture: "register-ok.jsonl", target: "etcd"})
	camp := filepath.Join(root, "nightly", "20250105T020000Z")
	ok := makeRun(t, camp, fakeRun{test: "correct", stamp: "20250105T020001Z", fixture: "register-ok.jsonl", target: "etcd"})
	bad := makeRun(t, camp, fakeRun{test: "correct", stamp: "20250105T020101Z", fixture: "register-bad.jsonl", target: "etcd"})
	ix := CampaignIndex{Name: "nightly", Plan: "p", Total: 3, Planned: []int{0, 1, 2},
		Scenarios: []CampaignScenario{{Name: "correct", Expect: ExpectValid}},
		Runs: []CampaignRun{{Index: 0, Scenario: "correct", Seed: 1, Dir: rel(t, camp, ok), Verdict: "valid", Exit: 0},
			{Index: 1, Scenario: "correct", Seed: 2, Dir: rel(t, camp, bad), Verdict: "invalid", Exit: 1}}}
	require.NoError(t, WriteCampaign(camp, ix))
	ts := newTestServer(t, root)

	_, _, body := get(t, ts.URL+"/")
	assert.Equal(t, 1, strings.Count(body, `<tr class="campaign"`))
	assert.Contains(t, body, "2 of 3", "runs made of those planned")
	assert.Contains(t, body, `<span class="verdict invalid">exit 1</span>`)
	assert.Contains(t, body, "correct: judged invalid in 1 of 2 runs")
	assert.Contains(t, body, `href="/runs/nightly/20250105T020000Z/table.txt"`)
	assert.Equal(t, 3, strings.Count(body, `<tr class="run"`))
	assert.Equal(t, 2, strings.Count(body, `href="/?campaign=nightly%2f20250105T020000Z">nightly</a>`)-1,
		"the campaign's two runs name it, and its own row links the same filter")
	_, _, body = get(t, ts.URL+"/?campaign=nightly/20250105T020000Z")
	assert.Equal(t, 2, strings.Count(body, `<tr class="run"`), "only the campaign's runs")
	code, _, table := get(t, ts.URL+"/runs/nightly/20250105T020000Z/table.txt")
	assert.Equal(t, http.StatusOK, code)
	assert.Contains(t, table, "exit code 1")
}

func rel(t *testing.T, base, dir string) string {
	t.Helper()
	r, err := filepath.Rel(base, dir)
	require.NoError(t, err)
	return r
}
