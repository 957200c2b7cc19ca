package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
)

// copyFixture copies a fixture of another package into a fresh directory, as name.
func copyFixture(t *testing.T, from, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", from))
	require.NoError(t, err)
	dir := t.TempDir()
	path := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(path, b, 0o644))
	return path
}

func check(t *testing.T, args ...string) (results.ExitCode, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := runCheck(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckVerdicts(t *testing.T) {
	for _, tc := range []struct {
		fixture, name string
		args          []string
		code          results.ExitCode
		out           []string
	}{
		{"checker/testdata/register-ok.jsonl", "history.jsonl", nil, 0, []string{"verdict: VALID", "model:   register"}},
		{"checker/testdata/register-bad.jsonl", "history.jsonl", nil, 1, []string{"verdict: INVALID", `returned "a"`, "linearizability.html"}},
		{"checker/testdata/set-bad.jsonl", "h.jsonl", []string{"--workload", "set"}, 1, []string{`"b" was lost`}},
		{"checker/testdata/append-ok.jsonl", "h.jsonl", nil, 0, []string{"model:   append"}},
		{"history/testdata/etcd_000.log", "jepsen.log", nil, 1, []string{"verdict: INVALID"}},
		{"history/testdata/etcd_001.log", "history.txt", []string{"--format", "jepsen-log"}, 1, []string{"verdict: INVALID"}},
		{"history/testdata/independent.edn", "history.edn", nil, 0, []string{"2 keys"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			path := copyFixture(t, tc.fixture, tc.name)
			code, out, errs := check(t, append([]string{path}, tc.args...)...)
			assert.Equal(t, tc.code, code, out+errs)
			for _, s := range tc.out {
				assert.Contains(t, out, s)
			}
			b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "results.json"))
			require.NoError(t, err)
			var r struct {
				Valid any `json:"valid"`
			}
			require.NoError(t, json.Unmarshal(b, &r))
			assert.Equal(t, tc.code == 0, r.Valid == true)
			_, err = os.Stat(filepath.Join(filepath.Dir(path), "linearizability.html"))
			assert.Equal(t, tc.code == 1 && !strings.Contains(tc.fixture, "set"), err == nil, "visualization exactly for a linearizability violation")
		})
	}
}

func TestCheckRunDirAndOut(t *testing.T) {
	path := copyFixture(t, "checker/testdata/set-ok.jsonl", "history.jsonl")
	dir := filepath.Dir(path)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "test.json"), []byte(`{"workload":"set","seed":1}`), 0o644))
	out := filepath.Join(t.TempDir(), "out")
	code, stdout, _ := check(t, "--out", out, dir)
	assert.Equal(t, results.ExitUnknown, code, "a run that never healed is partial: %s", stdout)
	assert.Contains(t, stdout, "the history is partial")

	events, _, err := history.ReadFile(path) // the run's end, as a whole run records it
	require.NoError(t, err)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	fmt.Fprintf(f, `{"index":%d,"time":%d,"process":"nemesis","type":"info","f":"heal-all"}`+"\n", len(events), events[len(events)-1].Time+1)
	require.NoError(t, f.Close())
	code, stdout, stderr := check(t, "--out", out, dir)
	assert.Equal(t, results.ExitValid, code, stdout+stderr)
	assert.Contains(t, stdout, "model:   set")
	assert.FileExists(t, filepath.Join(out, "results.json"))
	assert.NoFileExists(t, filepath.Join(dir, "results.json"))

	// The run's own reasons for not being valid survive a re-check of its directory.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "results.json"),
		[]byte(`{"valid":"unknown","unknown_because":[{"code":"run_error","detail":"the run ended in an error: boom"}]}`), 0o644))
	code, stdout, _ = check(t, dir)
	assert.Equal(t, results.ExitUnknown, code, stdout)
	assert.Contains(t, stdout, "boom")
}

func TestCheckTornLastLine(t *testing.T) {
	path := copyFixture(t, "checker/testdata/register-ok.jsonl", "history.jsonl")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"index":99,"time":`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	code, out, _ := check(t, path)
	assert.Equal(t, results.ExitValid, code, out)
	assert.Contains(t, out, "torn")
}

func TestCheckUnknownOnTimeout(t *testing.T) {
	// Twenty concurrent indeterminate writes, each read, then an impossible read: the
	// search must try every order and cannot within a millisecond.
	var b strings.Builder
	idx := 0
	line := func(s string) { b.WriteString(strings.Replace(s, "IDX", jsonInt(idx), 1) + "\n"); idx++ }
	const n = 22
	for i := range n {
		v := `"v` + jsonInt(i) + `"`
		line(`{"index":IDX,"time":1,"process":` + jsonInt(i) + `,"type":"invoke","f":"write","key":"k","value":` + v + `}`)
		line(`{"index":IDX,"time":2,"process":` + jsonInt(i) + `,"type":"info","f":"write","key":"k","value":` + v + `}`)
	}
	for i := range n {
		p, v, t0 := jsonInt(100+i), `"v`+jsonInt((i*3)%n)+`"`, jsonInt(10+10*i)
		line(`{"index":IDX,"time":` + t0 + `,"process":` + p + `,"type":"invoke","f":"read","key":"k","value":null}`)
		line(`{"index":IDX,"time":` + t0 + `5,"process":` + p + `,"type":"ok","f":"read","key":"k","value":` + v + `}`)
	}
	line(`{"index":IDX,"time":100000,"process":999,"type":"invoke","f":"read","key":"k","value":null}`)
	line(`{"index":IDX,"time":100001,"process":999,"type":"ok","f":"read","key":"k","value":"zz"}`)
	path := filepath.Join(t.TempDir(), "history.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	code, out, errs := check(t, "--timeout", "1ms", path)
	assert.Equal(t, results.ExitUnknown, code, out+errs)
	assert.Contains(t, out, "verdict: UNKNOWN")
}

func jsonInt(i int) string { b, _ := json.Marshal(i); return string(b) }

func TestCheckBadInput(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "history.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\"}\nnot json\n{}\n"), 0o644))
	good := copyFixture(t, "checker/testdata/register-ok.jsonl", "history.jsonl")
	for name, args := range map[string][]string{
		"no path":        nil,
		"two paths":      {good, good},
		"bad flag":       {"--nope", good},
		"bad workload":   {"--workload", "queue", good},
		"bad format":     {"--format", "xml", good},
		"missing file":   {filepath.Join(t.TempDir(), "none.jsonl")},
		"malformed line": {bad},
		"empty rundir":   {t.TempDir()},
		"wrong format":   {"--format", "jepsen-log", good},
	} {
		t.Run(name, func(t *testing.T) {
			code, out, errs := check(t, args...)
			assert.Equal(t, results.ExitUsage, code, out+errs)
			assert.NotEmpty(t, errs)
		})
	}
	code, _, errs := check(t, bad)
	assert.Equal(t, results.ExitUsage, code)
	assert.Contains(t, errs, "line 2")
	code, _, _ = check(t, "-h")
	assert.Equal(t, results.ExitValid, code)
}

func TestCheckCannotWriteResults(t *testing.T) {
	path := copyFixture(t, "checker/testdata/register-ok.jsonl", "history.jsonl")
	blocker := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(blocker, nil, 0o644))
	code, out, errs := check(t, "--out", filepath.Join(blocker, "sub"), path)
	assert.Equal(t, results.ExitError, code, out+errs)
	assert.Contains(t, out, "verdict: VALID", "the verdict is printed before the write fails")
}

// trustHistory writes the acceptance script's histories: with fail, 3 processes each
// invoke 5 writes of key "a" that all fail; without, each invokes one write that ends
// indeterminate, and nothing is read.
func trustHistory(t *testing.T, fail bool) string {
	var b strings.Builder
	i := 0
	line := func(p int, typ, v, errs string) {
		fmt.Fprintf(&b, `{"index":%d,"time":%d,"process":%d,"type":%q,"f":"write","key":"a","value":%q`, i, i*1000, p, typ, v)
		if errs != "" {
			fmt.Fprintf(&b, `,"error":%q`, errs)
		}
		b.WriteString("}\n")
		i++
	}
	for p := range 3 {
		if fail {
			for k := range 5 {
				v := fmt.Sprintf("v%d%d", p, k)
				line(p, "invoke", v, "")
				line(p, "fail", v, "unavailable")
			}
			continue
		}
		v := fmt.Sprintf("w%d", p)
		line(p, "invoke", v, "")
		line(p, "info", v, "timeout")
	}
	path := filepath.Join(t.TempDir(), "h.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path
}

func TestCheckNoEvidenceIsUnknown(t *testing.T) {
	for name, tc := range map[string]struct {
		fail bool
		why  string
	}{
		"allfail": {true, "no acknowledged write and no acknowledged read: 0 of 15 ops were acknowledged (15 failed)"},
		"allinfo": {false, "no acknowledged write and no acknowledged read: 0 of 3 ops were acknowledged (3 indeterminate)"},
	} {
		t.Run(name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "o"+name)
			code, stdout, stderr := check(t, "--workload", "register", "--out", out, trustHistory(t, tc.fail))
			assert.Equal(t, results.ExitUnknown, code, "no evidence is no pass:\n"+stdout+stderr)
			assert.Contains(t, stdout, "verdict: UNKNOWN — "+tc.why)
			assert.Equal(t, 1, strings.Count(stdout, tc.why), "the reason once, on the verdict line:\n%s", stdout)
			b, err := os.ReadFile(filepath.Join(out, "results.json"))
			require.NoError(t, err)
			var r struct {
				Valid          any `json:"valid"`
				UnknownBecause []struct {
					Code, Detail string
				} `json:"unknown_because"`
			}
			require.NoError(t, json.Unmarshal(b, &r), string(b))
			assert.Equal(t, "unknown", r.Valid)
			require.NotEmpty(t, r.UnknownBecause, string(b))
			assert.Equal(t, "no_evidence", r.UnknownBecause[0].Code)
			assert.Equal(t, tc.why, r.UnknownBecause[0].Detail)
		})
	}
}

func TestCheckMinEvidence(t *testing.T) {
	path := copyFixture(t, "checker/testdata/register-ok.jsonl", "history.jsonl")
	code, out, errs := check(t, "--min-evidence", "1000", path)
	assert.Equal(t, results.ExitUnknown, code, out+errs)
	assert.Contains(t, out, "verdict: UNKNOWN — only ")
	code, out, errs = check(t, "--min-evidence", "0", path)
	assert.Equal(t, results.ExitUsage, code, out+errs)
	assert.Contains(t, errs, "--min-evidence")
}

// A list-append history is checked Elle-style; one that is not list-append (a read that
// returned a string, a value appended twice) is malformed input: exit 4, naming the
// operation and why.
func TestCheckTransactions(t *testing.T) {
	const good = `{"index":0,"time":1,"process":0,"type":"invoke","f":"txn","value":[["append","x","1"]]}
{"index":1,"time":2,"process":0,"type":"ok","f":"txn","value":[["append","x","1"]]}
{"index":2,"time":3,"process":1,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"index":3,"time":4,"process":1,"type":"ok","f":"txn","value":[["r","x",["1"]]]}
`
	write := func(s string) string {
		p := filepath.Join(t.TempDir(), "history.jsonl")
		require.NoError(t, os.WriteFile(p, []byte(s), 0o644))
		return p
	}
	code, out, errs := check(t, write(good))
	assert.Equal(t, results.ExitValid, code, out+errs)
	assert.Contains(t, out, "model:   txn")
	assert.Contains(t, out, "txn: valid — 2 committed txns")

	stale := good + `{"index":4,"time":5,"process":2,"type":"invoke","f":"txn","value":[["r","x",null]]}
{"index":5,"time":6,"process":2,"type":"ok","f":"txn","value":[["r","x",[]]]}
`
	code, out, _ = check(t, write(stale))
	assert.Equal(t, results.ExitInvalid, code)
	assert.Contains(t, out, "G-single-realtime")

	for name, bad := range map[string]string{
		"a read of a string": strings.Replace(good, `["r","x",["1"]]`, `["r","x","1"]`, 1),
		"an append twice": good + `{"index":4,"time":5,"process":2,"type":"invoke","f":"txn","value":[["append","x","1"]]}
{"index":5,"time":6,"process":2,"type":"ok","f":"txn","value":[["append","x","1"]]}
`,
	} {
		code, _, errs := check(t, "--workload", "txn", write(bad))
		assert.Equal(t, results.ExitUsage, code, name)
		assert.Contains(t, errs, "is not a list-append history: event ", name)
	}
}
