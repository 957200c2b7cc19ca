package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline/faultline/results"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckWritesReportAndJUnit(t *testing.T) {
	path := copyFixture(t, "checker/testdata/register-bad.jsonl", "history.jsonl")
	dir := filepath.Dir(path)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "test.json"), []byte(`{"spec":{"name":"nightly-7"},"workload":"register"}`), 0o644))
	out := filepath.Join(t.TempDir(), "out")
	junit := filepath.Join(t.TempDir(), "ci", "junit.xml")
	code, stdout, stderr := check(t, "--out", out, "--junit", junit, path)
	require.Equal(t, results.ExitInvalid, code, stdout+stderr)
	report := filepath.Join(out, "report.html")
	assert.Contains(t, stdout, "report:  "+report+"\n")
	page, err := os.ReadFile(report)
	require.NoError(t, err)
	assert.Contains(t, string(page), `data-verdict="invalid"`)
	assert.Contains(t, string(page), "nightly-7", "the run's facts come from the history's directory")
	assert.FileExists(t, filepath.Join(out, "latency.png"))
	assert.FileExists(t, filepath.Join(out, "rate.png"))

	x, err := os.ReadFile(junit)
	require.NoError(t, err)
	s := string(x)
	assert.Contains(t, s, `<testsuite name="nightly-7" tests="2" failures="2" errors="0"`)
	assert.Contains(t, s, `<testcase name="linearizability" classname="nightly-7"`)
	assert.Contains(t, s, `<property name="report" value="`+report+`">`)
	assert.Contains(t, s, "read by process 2", "the failure's text is the explanation")
	assert.Contains(t, stdout, "junit:   "+junit)

	code, stdout, stderr = check(t, "--junit", filepath.Join(path, "nope"), path)
	assert.Equal(t, results.ExitError, code, "a JUnit report that cannot be written is an error: %s%s", stdout, stderr)
}

// TestCheckReportShowsMarkupAsText is the acceptance check's history: a value that is
// markup must never be written into the report as markup.
func TestCheckReportShowsMarkupAsText(t *testing.T) {
	const v = "<script>alert(1)</script>"
	var b strings.Builder
	for i, e := range []map[string]any{
		{"process": 0, "type": "invoke", "f": "write", "key": "k", "value": v}, {"process": 0, "type": "ok", "f": "write", "key": "k", "value": v},
		{"process": 1, "type": "invoke", "f": "read", "key": "k", "value": nil}, {"process": 1, "type": "ok", "f": "read", "key": "k", "value": "other"},
	} {
		e["index"], e["time"] = i, i*1000
		line, err := json.Marshal(e)
		require.NoError(t, err)
		fmt.Fprintf(&b, "%s\n", line)
	}
	path := filepath.Join(t.TempDir(), "x.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	out := filepath.Join(t.TempDir(), "xo")
	code, stdout, stderr := check(t, "--workload", "register", "--out", out, path)
	require.Equal(t, results.ExitInvalid, code, stdout+stderr)
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	require.NoError(t, err)
	assert.NotContains(t, string(page), v)
	assert.Contains(t, string(page), "&lt;script&gt;alert(1)&lt;/script&gt;")
}
