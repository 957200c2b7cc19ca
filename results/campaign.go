package results

import (
	"cmp"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
)

// The files of a campaign directory.
const (
	// CampaignIndexFile lists every run of the campaign (or shard): the contract that
	// merge and CI read.
	CampaignIndexFile = "campaign.json"
	// CampaignTableFile is the table, as printed.
	CampaignTableFile = "table.txt"
	// CampaignJUnitFile has one test case per run.
	CampaignJUnitFile = "junit.xml"
)

// What a scenario expects of its runs.
const (
	// ExpectValid: every run must be valid (a correct system: no false alarm allowed).
	ExpectValid = "valid"
	// ExpectInvalid: runs must be found invalid, in at least MinDetection of them (a
	// deliberate bug: the harness must still catch it).
	ExpectInvalid = "invalid"
)

// CampaignIndex is campaign.json: what a campaign (or one shard of it) planned and what
// each run found. Merging the indexes of every shard gives the index of the whole.
type CampaignIndex struct {
	Name string `json:"name"`
	// Plan identifies the campaign's expanded plan (scenarios, specs and seeds): shards
	// merge only when their plans are the same.
	Plan string `json:"plan"`
	// Shard is "i/n", or "" for the whole campaign; Shards lists the shards a merged
	// index joined.
	Shard  string   `json:"shard,omitempty"`
	Shards []string `json:"shards,omitempty"`
	// Total is how many runs the whole campaign has; Planned the indexes of those this
	// directory was to run.
	Total     int                `json:"total"`
	Planned   []int              `json:"planned"`
	Scenarios []CampaignScenario `json:"scenarios"`
	Runs      []CampaignRun      `json:"runs"`
	// Interrupted is set when the campaign was stopped (a signal) before every planned
	// run was made: the campaign proves less than it planned (exit 3). StoppedEarly is
	// set when --failfast stopped it after a run that failed: the exit code is that
	// failure's.
	Interrupted  string `json:"interrupted,omitempty"`
	StoppedEarly string `json:"stopped_early,omitempty"`
}

// CampaignScenario is one row of the campaign: a spec run with several seeds.
type CampaignScenario struct {
	Name   string `json:"name"`
	Expect string `json:"expect"`
	// MinDetection is the share of runs an invalid scenario must be caught in.
	MinDetection float64 `json:"min_detection,omitempty"`
	// Anomaly, for an invalid scenario, is the kind of anomaly a run must show to count
	// as caught (checker.Result.AnomalyKinds: a bug's own symptom, e.g. watch-order),
	// or several, comma-separated, any of which will do (one bug, seen by two checks);
	// "": any invalid run is caught.
	Anomaly string `json:"anomaly,omitempty"`
	// Spec is the scenario's resolved spec (its seed the first run's).
	Spec map[string]any `json:"spec,omitempty"`
}

// CampaignRun is one run of a campaign.
type CampaignRun struct {
	// Index is the run's place in the whole campaign's plan (shards split by it).
	Index    int    `json:"index"`
	Scenario string `json:"scenario"`
	Seed     int64  `json:"seed"`
	// Dir is the run directory, relative to the campaign directory when it is inside it.
	Dir     string   `json:"dir"`
	Verdict string   `json:"verdict"`
	Exit    ExitCode `json:"exit_code"`
	Error   string   `json:"error,omitempty"`
	// FirstAnomaly is when the earliest operation blamed was invoked, since the run's
	// start (invalid runs that name one; else absent).
	FirstAnomaly *Seconds `json:"first_anomaly_s,omitempty"`
	// Anomalies are the kinds of anomaly the run's check found, sorted; Warnings the
	// codes of its warnings (low_availability: a pass that saw little).
	Anomalies []string `json:"anomalies,omitempty"`
	Warnings  []string `json:"warnings,omitempty"`
	Ops       int      `json:"ops"`
	OpsPerSec float64  `json:"ops_per_sec"`
	Duration  Seconds  `json:"duration_s"`
}

// LowAvailability says whether the run's system answered too little for its verdict to
// rest on much (checker.WarnLowAvailability).
func (r CampaignRun) LowAvailability() bool {
	return slices.Contains(r.Warnings, checker.WarnLowAvailability)
}

// Caught says whether the run caught what scenario s expects caught: it was invalid,
// with one of s's anomalies among its kinds when s names them.
func (r CampaignRun) Caught(s CampaignScenario) bool {
	return r.Exit == ExitInvalid && (s.Anomaly == "" ||
		slices.ContainsFunc(strings.Split(s.Anomaly, ","), func(k string) bool { return slices.Contains(r.Anomalies, k) }))
}

// Seconds is a duration written as seconds.
type Seconds float64

// D returns it as a time.Duration.
func (s Seconds) D() time.Duration { return time.Duration(float64(s) * float64(time.Second)) }

// CampaignRow is what the runs of one scenario found.
type CampaignRow struct {
	CampaignScenario
	Runs, Valid, Invalid, Unknown, Errors int
	// Caught counts the runs that caught what the scenario expects (CampaignRun.Caught);
	// LowAvailability the runs whose system answered too little (their passes say
	// little).
	Caught          int
	LowAvailability int
	// Detection is Caught/Runs; MedianFirstAnomaly the median of the invalid runs'
	// first anomalies (0: none).
	Detection          float64
	MedianFirstAnomaly time.Duration
	// OpsPerSec is the mean over the runs that made operations.
	OpsPerSec float64
	// Failed says why the row fails its expectation ("" when it meets it).
	Failed string
}

// Rows sums the runs per scenario, in the scenarios' order.
func (ix CampaignIndex) Rows() []CampaignRow {
	rows := make([]CampaignRow, len(ix.Scenarios))
	at := map[string]int{}
	for i, s := range ix.Scenarios {
		rows[i].CampaignScenario, at[s.Name] = s, i
	}
	anomalies := make([][]time.Duration, len(rows))
	measured := make([]int, len(rows)) // runs with operations: a run that broke at start has no rate
	for _, r := range ix.Runs {
		i, ok := at[r.Scenario]
		if !ok {
			continue
		}
		row := &rows[i]
		row.Runs++
		if r.Caught(row.CampaignScenario) {
			row.Caught++
		}
		if r.LowAvailability() {
			row.LowAvailability++
		}
		if r.Ops > 0 {
			row.OpsPerSec += r.OpsPerSec
			measured[i]++
		}
		switch r.Exit {
		case 0:
			row.Valid++
		case 1:
			row.Invalid++
			if r.FirstAnomaly != nil {
				anomalies[i] = append(anomalies[i], r.FirstAnomaly.D())
			}
		case 2:
			row.Unknown++
		default:
			row.Errors++
		}
	}
	for i := range rows {
		r := &rows[i]
		if r.Runs > 0 {
			r.Detection = float64(r.Caught) / float64(r.Runs)
		}
		if measured[i] > 0 {
			r.OpsPerSec /= float64(measured[i])
		}
		r.MedianFirstAnomaly = medianDuration(anomalies[i])
		r.Failed = r.failed()
	}
	return rows
}

func (r CampaignRow) failed() string {
	switch {
	case r.Runs == 0:
		return ""
	case r.Expect == ExpectInvalid && r.Detection+1e-9 < r.MinDetection:
		with := ""
		if r.Anomaly != "" {
			with = fmt.Sprintf(" with %s (invalid in %d)", r.Anomaly, r.Invalid)
		}
		return fmt.Sprintf("caught%s in %d of %d runs (%.0f%%), fewer than the %.0f%% expected", with, r.Caught, r.Runs, 100*r.Detection, 100*r.MinDetection)
	case r.Expect != ExpectInvalid && r.Invalid > 0:
		return fmt.Sprintf("judged invalid in %d of %d runs", r.Invalid, r.Runs)
	}
	return ""
}

// Exit is the campaign's exit code: 1 when a scenario failed its expectation (a run of
// a scenario that must be valid was invalid, or a scenario that must be caught was
// caught in too few runs), else 3 when a run ended in a harness error or the campaign
// did not make every run it planned, else 2 when a run of a scenario that must be valid
// was unknown (no green without evidence), else 0. Unknown runs of a scenario that
// must be caught count only as not caught.
func (ix CampaignIndex) Exit() ExitCode {
	rows := ix.Rows()
	if slices.ContainsFunc(rows, func(r CampaignRow) bool { return r.Failed != "" }) {
		return ExitInvalid
	}
	incomplete := ix.StoppedEarly == "" && len(ix.Missing()) > 0
	if ix.Interrupted != "" || incomplete || slices.ContainsFunc(rows, func(r CampaignRow) bool { return r.Errors > 0 }) {
		return ExitError
	}
	if slices.ContainsFunc(rows, func(r CampaignRow) bool { return r.Expect != ExpectInvalid && r.Unknown > 0 }) {
		return ExitUnknown
	}
	return ExitValid
}

// Missing lists the planned runs that have no result.
func (ix CampaignIndex) Missing() []int {
	have := map[int]bool{}
	for _, r := range ix.Runs {
		have[r.Index] = true
	}
	var out []int
	for _, i := range ix.Planned {
		if !have[i] {
			out = append(out, i)
		}
	}
	return out
}

// PrintCampaignTable prints the table: a row per scenario, then what the gate says.
func PrintCampaignTable(w io.Writer, ix CampaignIndex) {
	rows := ix.Rows()
	width := len("scenario")
	for _, r := range rows {
		width = max(width, len(r.Name))
	}
	fmt.Fprintf(w, "%-*s  %-7s  %4s  %5s  %7s  %7s  %6s  %9s  %13s  %8s\n", width, "scenario", "expect", "runs", "valid", "invalid", "unknown", "errors",
		"detection", "first anomaly", "ops/s")
	empty := 0
	for _, r := range rows {
		if r.Runs == 0 {
			empty++ // another shard's, or not reached
			continue
		}
		first := "-"
		if r.MedianFirstAnomaly > 0 {
			first = r.MedianFirstAnomaly.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%-*s  %-7s  %4d  %5d  %7d  %7d  %6d  %8.0f%%  %13s  %8.0f\n", width, r.Name, r.Expect, r.Runs, r.Valid, r.Invalid, r.Unknown,
			r.Errors, 100*r.Detection, first, r.OpsPerSec)
	}
	if empty > 0 {
		fmt.Fprintf(w, "(%d of %d scenarios have no run here)\n", empty, len(rows))
	}
	for _, r := range rows {
		if r.Failed != "" {
			fmt.Fprintf(w, "FAILS: %s (expect %s): %s\n", r.Name, r.Expect, r.Failed)
		}
	}
	for _, r := range rows {
		if r.LowAvailability > 0 {
			fmt.Fprintf(w, "WARNING: %s: %d of %d runs had low availability (the system answered less than half its operations): their verdicts rest on little\n",
				r.Name, r.LowAvailability, r.Runs)
		}
	}
	if m := ix.Missing(); len(m) > 0 {
		fmt.Fprintf(w, "INCOMPLETE: %d of %d planned runs have no result", len(m), len(ix.Planned))
		if why := ix.Interrupted + ix.StoppedEarly; why != "" {
			fmt.Fprintf(w, " (%s)", why)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "exit code %d\n", int(ix.Exit()))
}

// WriteCampaign writes campaign.json, table.txt and junit.xml into dir, each through a
// temporary file, so that a reader (or a crash) never leaves half of one.
func WriteCampaign(dir string, ix CampaignIndex) error {
	slices.SortFunc(ix.Runs, func(a, b CampaignRun) int { return a.Index - b.Index })
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("campaign: %w", err)
	}
	if err := WriteJSON(dir, CampaignIndexFile, ix); err != nil {
		return err
	}
	var table strings.Builder
	PrintCampaignTable(&table, ix)
	if err := writeAtomic(dir, CampaignTableFile, []byte(table.String())); err != nil {
		return err
	}
	b, err := campaignJUnit(ix)
	if err != nil {
		return err
	}
	return writeAtomic(dir, CampaignJUnitFile, b)
}

// ReadCampaign reads dir/campaign.json.
func ReadCampaign(dir string) (CampaignIndex, error) {
	var ix CampaignIndex
	b, err := os.ReadFile(filepath.Join(dir, CampaignIndexFile))
	if err != nil {
		return ix, fmt.Errorf("campaign %s: %w", dir, err)
	}
	if err := json.Unmarshal(b, &ix); err != nil {
		return ix, fmt.Errorf("campaign %s: %s: %w", dir, CampaignIndexFile, err)
	}
	return ix, nil
}

// MergeCampaigns joins the indexes of a campaign's shards (each read from its
// directory) into one, whose runs' directories are given relative to out. The shards
// must share a plan and no run may appear twice.
func MergeCampaigns(out string, dirs []string) (CampaignIndex, error) {
	var merged CampaignIndex
	seen := map[int]string{}
	for i, d := range dirs {
		ix, err := ReadCampaign(d)
		if err != nil {
			return merged, err
		}
		if i == 0 {
			merged = CampaignIndex{Name: ix.Name, Plan: ix.Plan, Total: ix.Total, Scenarios: ix.Scenarios}
		} else if ix.Plan != merged.Plan {
			return merged, fmt.Errorf("merge: %s is of another campaign plan than %s (%s, not %s): shards merge only with the same file, seeds and flags",
				d, dirs[0], ix.Plan, merged.Plan)
		}
		merged.Shards = append(merged.Shards, cmp.Or(ix.Shard, "whole"))
		merged.Planned = append(merged.Planned, ix.Planned...)
		if ix.Interrupted != "" {
			merged.Interrupted = strings.TrimPrefix(merged.Interrupted+"; "+d+": "+ix.Interrupted, "; ")
		}
		if ix.StoppedEarly != "" {
			merged.StoppedEarly = strings.TrimPrefix(merged.StoppedEarly+"; "+d+": "+ix.StoppedEarly, "; ")
		}
		for _, r := range ix.Runs {
			if prev, dup := seen[r.Index]; dup {
				return merged, fmt.Errorf("merge: run %d (%s seed %d) is in both %s and %s", r.Index, r.Scenario, r.Seed, prev, d)
			}
			seen[r.Index] = d
			r.Dir = rebase(d, r.Dir, out)
			merged.Runs = append(merged.Runs, r)
		}
	}
	slices.Sort(merged.Planned)
	merged.Planned = slices.Compact(merged.Planned)
	if n := len(merged.Planned); n != merged.Total {
		return merged, fmt.Errorf("merge: the shards given plan %d of the campaign's %d runs: a shard is missing", n, merged.Total)
	}
	return merged, nil
}

// rebase makes dir (relative to from, or absolute) relative to to where it can.
func rebase(from, dir, to string) string {
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(from, dir)
	}
	abs, err1 := filepath.Abs(dir)
	absTo, err2 := filepath.Abs(to)
	if err1 != nil || err2 != nil {
		return dir
	}
	if rel, err := filepath.Rel(absTo, abs); err == nil {
		return rel
	}
	return abs
}

// campaignJUnit makes a test suite per scenario and a case per run: a run that fails
// its scenario's expectation is a failure, a run in error an error; a run of a scenario
// that must be valid that ended unknown is an error too (no green without evidence).
func campaignJUnit(ix CampaignIndex) ([]byte, error) {
	type suites struct {
		XMLName xml.Name     `xml:"testsuites"`
		Name    string       `xml:"name,attr"`
		Suites  []junitSuite `xml:"testsuite"`
	}
	expect := map[string]string{}
	scenario := map[string]CampaignScenario{}
	for _, s := range ix.Scenarios {
		expect[s.Name], scenario[s.Name] = s.Expect, s
	}
	all := suites{Name: ix.Name}
	at := map[string]int{}
	for _, s := range ix.Scenarios {
		at[s.Name] = len(all.Suites)
		all.Suites = append(all.Suites, junitSuite{Name: ix.Name + "/" + s.Name})
	}
	for _, r := range ix.Runs {
		i, ok := at[r.Scenario]
		if !ok {
			continue
		}
		s := &all.Suites[i]
		c := junitCase{Name: fmt.Sprintf("seed %d", r.Seed), Class: s.Name, Time: float64(r.Duration),
			Properties: []junitProperty{{"dir", r.Dir}, {"verdict", r.Verdict}}}
		msg := fmt.Sprintf("%s (exit %d), expected %s: %s", r.Verdict, int(r.Exit), expect[r.Scenario], r.Dir)
		switch e := expect[r.Scenario]; {
		case r.Exit >= 3:
			c.Error = &junitFailure{Message: "harness error: " + r.Error, Text: msg}
		case r.Exit == 1 && e != ExpectInvalid:
			c.Failure = &junitFailure{Message: "invalid: a safety violation was found", Text: msg}
		case e == ExpectInvalid && !r.Caught(scenario[r.Scenario]):
			why := "the deliberate bug was not caught in this run"
			if a := scenario[r.Scenario].Anomaly; r.Exit == 1 && a != "" {
				why = fmt.Sprintf("invalid, but without the anomaly expected (%s): %s", a, strings.Join(r.Anomalies, ", "))
			}
			c.Failure = &junitFailure{Message: why, Text: msg}
		case r.Exit == 2:
			c.Error = &junitFailure{Message: "unknown: the run proves nothing", Text: msg}
		}
		s.Cases = append(s.Cases, c)
		s.Tests++
		s.Time += c.Time
		if c.Failure != nil {
			s.Failures++
		}
		if c.Error != nil {
			s.Errors++
		}
	}
	for i := range all.Suites {
		all.Suites[i].Time = math.Round(all.Suites[i].Time*1000) / 1000
	}
	b, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return nil, errors.Join(errors.New("campaign junit"), err)
	}
	return append([]byte(xml.Header), append(b, '\n')...), nil
}

func medianDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
