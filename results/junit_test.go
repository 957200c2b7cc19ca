package results

import (
	"context"
	"encoding/xml"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// readJUnit parses a JUnit file back, the way CI systems read it.
func readJUnit(t *testing.T, path string) junitSuite {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var s junitSuite
	require.NoError(t, xml.Unmarshal(b, &s))
	return s
}

func caseNamed(t *testing.T, s junitSuite, name string) junitCase {
	t.Helper()
	for _, c := range s.Cases {
		if c.Name == name {
			return c
		}
	}
	require.Failf(t, "no such case", "%s in %+v", name, s.Cases)
	return junitCase{}
}

func TestWriteJUnit(t *testing.T) {
	check := func(t *testing.T, fixture string) checker.Result {
		events, _, err := history.ReadFile(filepath.Join("..", "checker", "testdata", fixture))
		require.NoError(t, err)
		return checker.Check(context.Background(), events, checker.Options{})
	}
	info := JUnitInfo{Suite: "nightly", Report: "/r/report.html", Results: "/r/results.json", Time: 3 * time.Second}

	t.Run("invalid", func(t *testing.T) {
		res := check(t, "register-bad.jsonl")
		path := filepath.Join(t.TempDir(), "sub", "junit.xml")
		require.NoError(t, WriteJUnit(path, res, info))
		s := readJUnit(t, path)
		assert.Equal(t, "nightly", s.Name)
		assert.Equal(t, 2, s.Tests, "linearizability and the verdict")
		assert.Equal(t, 2, s.Failures)
		assert.Equal(t, 0, s.Errors)
		assert.Contains(t, s.Properties, junitProperty{Name: "report", Value: "/r/report.html"})
		lin := caseNamed(t, s, "linearizability")
		require.NotNil(t, lin.Failure)
		assert.Equal(t, res.Explanations()[0], lin.Failure.Text, "the failure's text is the explanation")
		assert.Contains(t, lin.Properties, junitProperty{Name: "report", Value: "/r/report.html"})
		assert.Equal(t, "nightly", lin.Class)
		require.NotNil(t, caseNamed(t, s, "verdict").Failure)
	})
	t.Run("valid", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "junit.xml")
		require.NoError(t, WriteJUnit(path, check(t, "register-ok.jsonl"), info))
		s := readJUnit(t, path)
		assert.Equal(t, 0, s.Failures+s.Errors)
		assert.Equal(t, 2, s.Tests)
	})
	t.Run("a pass that saw little says so", func(t *testing.T) {
		res := check(t, "register-ok.jsonl")
		res.Warnings = []checker.Reason{{Code: checker.WarnLowAvailability, Detail: "low availability: 9%"}}
		path := filepath.Join(t.TempDir(), "junit.xml")
		require.NoError(t, WriteJUnit(path, res, info))
		s := readJUnit(t, path)
		assert.Equal(t, 0, s.Failures+s.Errors, "a warning is not a failure")
		assert.Contains(t, s.Properties, junitProperty{Name: "warning", Value: "low availability: 9%"})
		assert.Contains(t, caseNamed(t, s, "verdict").Properties, junitProperty{Name: "warning", Value: "low availability: 9%"})
	})
	t.Run("unknown run", func(t *testing.T) {
		res := check(t, "register-ok.jsonl")
		res.MakeUnknown(checker.ReasonInterrupted, "the run was interrupted: its history stops where it was cut")
		res.AddExternal(checker.External{Name: "etcd-hashkv", Verdict: checker.Unknown, Detail: "member n2 did not answer"})
		path := filepath.Join(t.TempDir(), "junit.xml")
		require.NoError(t, WriteJUnit(path, res, info))
		s := readJUnit(t, path)
		assert.Equal(t, 3, s.Tests)
		assert.Equal(t, 0, s.Failures)
		assert.Equal(t, 2, s.Errors, "the external check could not tell, and the run as a whole")
		assert.Nil(t, caseNamed(t, s, "linearizability").Error, "what the checker proved stands")
		v := caseNamed(t, s, "verdict")
		require.NotNil(t, v.Error)
		assert.Contains(t, v.Error.Message, "interrupted")
		assert.Contains(t, caseNamed(t, s, "etcd-hashkv").Error.Message, "n2 did not answer")
	})
	t.Run("set", func(t *testing.T) {
		res := check(t, "set-bad.jsonl")
		path := filepath.Join(t.TempDir(), "junit.xml")
		require.NoError(t, WriteJUnit(path, res, JUnitInfo{Suite: "h"}))
		s := readJUnit(t, path)
		set := caseNamed(t, s, "set")
		require.NotNil(t, set.Failure)
		assert.Contains(t, set.Failure.Text, `"b" was lost`)
		assert.Empty(t, set.Properties, "no report, no property")
	})
	assert.Error(t, WriteJUnit(filepath.Join("/proc", "nope", "junit.xml"), checker.Result{}, info))
}

// The lease and txn checkers are cases of their own, failed with their anomalies.
func TestJUnitOfLeasesAndTransactions(t *testing.T) {
	for name, res := range map[string]checker.Result{
		"lease": {Verdict: checker.Invalid, Lease: &checker.LeaseResult{Verdict: checker.Invalid, Early: 1, Anomalies: []string{`key "l0" deleted early`}}},
		"txn":   {Verdict: checker.Invalid, Txn: &checker.TxnResult{Verdict: checker.Invalid, Anomalies: []string{"G-single-realtime: T1 → T2"}}},
	} {
		path := filepath.Join(t.TempDir(), "junit.xml")
		require.NoError(t, WriteJUnit(path, res, JUnitInfo{Suite: "s"}))
		c := caseNamed(t, readJUnit(t, path), name)
		require.NotNil(t, c.Failure, name)
		assert.Equal(t, res.Explanations()[0], c.Failure.Text)
	}
}
