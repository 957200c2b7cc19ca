package results

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
)

// JUnitInfo is what a JUnit report says besides the result: whose it is and where the
// rest of the run is.
type JUnitInfo struct {
	// Suite names the test suite (the test's name, or the history checked); it is also
	// each case's classname.
	Suite string
	// Report and Results are the paths of report.html and results.json, given as
	// properties ("" leaves them out).
	Report, Results string
	// Time is how long the run, or the check, took.
	Time time.Duration
}

type junitSuite struct {
	XMLName    xml.Name        `xml:"testsuite"`
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Time       float64         `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name       string          `xml:"name,attr"`
	Class      string          `xml:"classname,attr"`
	Time       float64         `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property,omitempty"`
	Failure    *junitFailure   `xml:"failure,omitempty"`
	Error      *junitFailure   `xml:"error,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes res to path as a JUnit XML test suite: a test case per checker
// (linearizability, set, append, lease, txn, and each check made outside the history, such as
// etcd-hashkv), failed with the explanations of what it found — one a line — or in
// error with why it could not tell; and a last case, "verdict", for the verdict as a
// whole: it fails for an invalid verdict and is in error for an unknown one, with the
// reasons no checker owns (too little evidence, an interrupted run, a run error), so a
// CI gate that reads only JUnit never passes a run that did not pass. The report's path
// is a property of the suite and of every case.
func WriteJUnit(path string, res checker.Result, info JUnitInfo) error {
	var props []junitProperty
	if info.Report != "" {
		props = append(props, junitProperty{"report", info.Report})
	}
	suite := junitSuite{Name: info.Suite, Time: info.Time.Seconds()}
	if info.Results != "" {
		suite.Properties = append(suite.Properties, junitProperty{"results", info.Results})
	}
	suite.Properties = append(suite.Properties, props...)
	for _, c := range checkerCases(res) {
		c.Class, c.Properties = info.Suite, props
		suite.Cases = append(suite.Cases, c)
	}
	v := junitCase{Name: "verdict", Class: info.Suite, Time: info.Time.Seconds(), Properties: props}
	for _, w := range res.Warnings { // a pass that saw little says so where CI shows it
		suite.Properties = append(suite.Properties, junitProperty{"warning", w.Detail})
		v.Properties = append(slices.Clone(v.Properties), junitProperty{"warning", w.Detail})
	}
	switch res.Verdict {
	case checker.Valid:
	case checker.Invalid:
		v.Failure = &junitFailure{Message: "invalid: a safety violation was found", Text: strings.Join(res.Explanations(), "\n")}
	default:
		v.Error = &junitFailure{Message: "unknown: " + res.Why(), Text: res.Summary()}
	}
	suite.Cases = append(suite.Cases, v)
	for _, c := range suite.Cases {
		suite.Tests++
		if c.Failure != nil {
			suite.Failures++
		}
		if c.Error != nil {
			suite.Errors++
		}
	}
	b, err := xml.MarshalIndent(suite, "", "  ")
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}

// checkerCases makes a case of each checker's own verdict.
func checkerCases(res checker.Result) []junitCase {
	var out []junitCase
	judge := func(name string, v checker.Verdict, took time.Duration, explained []string, unknown string) {
		c := junitCase{Name: name, Time: took.Seconds()}
		switch v {
		case checker.Valid:
		case checker.Invalid:
			c.Failure = &junitFailure{Message: fmt.Sprintf("%s: %d %s", name, len(explained), plural(len(explained), "anomaly", "anomalies")),
				Text: strings.Join(explained, "\n")}
		default:
			c.Error = &junitFailure{Message: name + " could not tell: " + unknown}
		}
		out = append(out, c)
	}
	if l := res.Linearizability; l != nil {
		var ex []string
		for _, f := range l.Failures {
			ex = append(ex, f.Explanation)
		}
		judge("linearizability", l.Verdict, time.Duration(l.Elapsed), ex, fmt.Sprintf("%d keys undecided %s, %d keys never read %s, %d operations malformed",
			len(l.UnknownKeys), brief(l.UnknownKeys), len(l.UnreadKeys), brief(l.UnreadKeys), l.Ignored))
	}
	if s := res.Set; s != nil {
		judge("set", s.Verdict, 0, s.Anomalies, fmt.Sprintf("%d keys without a read %s, %d operations malformed", len(s.NoFinalRead), brief(s.NoFinalRead), s.Ignored))
	}
	if a := res.Append; a != nil {
		judge("append", a.Verdict, 0, a.Anomalies, "")
	}
	if l := res.Lease; l != nil {
		judge("lease", l.Verdict, 0, l.Anomalies, l.Line())
	}
	if x := res.Txn; x != nil {
		judge("txn", x.Verdict, 0, x.Anomalies, x.Line())
	}
	if x := res.Keyspace; x != nil {
		judge("keyspace", x.Verdict, 0, x.Anomalies, x.Line())
	}
	if x := res.Watch; x != nil {
		judge("watch", x.Verdict, 0, x.Anomalies, x.Line())
	}
	if x := res.Revision; x != nil {
		judge("revision", x.Verdict, 0, x.Anomalies, x.Line())
	}
	for _, e := range res.External {
		judge(e.Name, e.Verdict, 0, []string{e.Detail}, e.Detail)
	}
	return out
}

// brief lists a few keys, in brackets ("" for none).
func brief(keys []string) string {
	switch {
	case len(keys) == 0:
		return ""
	case len(keys) > 5:
		return "[" + strings.Join(keys[:5], " ") + " …]"
	}
	return "[" + strings.Join(keys, " ") + "]"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
