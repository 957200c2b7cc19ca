package campaign

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/faultline/faultline/node"
	"github.com/faultline/faultline/workload"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

const matrixFile = `
name: nightly
runs: 3
seed: 100
base: {time-limit: 20s, runtime: process}
scenarios:
  - name: stale
    spec: {unsafe: stale-read, nemesis: partition}
    min-detection: 0.5
matrix:
  axes:
    workload: [register, append]
    nemesis: [partition, [kill, pause]]
`

func TestParseExpandsTheMatrixAndDefaultsExpectations(t *testing.T) {
	c, err := Parse([]byte(matrixFile), Overrides{Set: map[string]string{"time-limit": "7s"}})
	require.NoError(t, err)
	var names []string
	for _, s := range c.Scenarios {
		names = append(names, s.Name)
	}
	assert.Equal(t, []string{"stale", "register-partition", "register-kill,pause", "append-partition", "append-kill,pause"}, names)
	assert.Equal(t, results.ExpectInvalid, c.Scenarios[0].Expect, "an unsafe mode must be caught")
	assert.InDelta(t, 0.5, c.Scenarios[0].MinDetection, 1e-9)
	assert.Equal(t, results.ExpectValid, c.Scenarios[1].Expect)
	assert.Equal(t, harness.List{"kill", "pause"}, c.Scenarios[2].Spec.Nemesis)
	assert.Equal(t, workload.Append, c.Scenarios[3].Spec.Workload)
	for _, s := range c.Scenarios {
		assert.Equal(t, 7*time.Second, s.Spec.TimeLimit.D(), "the override wins over base")
		assert.Equal(t, "process", s.Spec.Runtime, "base applies to every scenario")
	}
	assert.Len(t, c.Plan(), 15)
}

func TestParseNamesWhatIsWrong(t *testing.T) {
	for want, f := range map[string]string{
		"scenario bad":           "name: x\nscenarios: [{name: bad, spec: {workload: queue}}]",
		"unknown key \"nemsis\"": "name: x\nscenarios: [{name: a, spec: {nemsis: kill}}]",
		"expect \"maybe\"":       "name: x\nscenarios: [{name: a, expect: maybe}]",
		"no scenarios":           "name: x\n",
		"two scenarios":          "name: x\nscenarios: [{name: a}, {name: a}]",
		"min-detection 2":        "name: x\nscenarios: [{name: a, expect: invalid, min-detection: 2}]",
		"want a list":            "name: x\nmatrix: {axes: {workload: register}}",
		"without spaces":         "name: a b\nscenarios: [{name: a}]",
		"only a scenario expected invalid names the anomaly": "name: x\nscenarios: [{name: a, anomaly: watch-order}]",
		`anomaly "watch-backwards" is not one of`:            "name: x\nscenarios: [{name: a, expect: invalid, anomaly: watch-backwards}]",
	} {
		_, err := Parse([]byte(f), Overrides{})
		require.Error(t, err, f)
		assert.Contains(t, err.Error(), want)
	}
}

func TestShardsSplitThePlanExactly(t *testing.T) {
	c, err := Parse([]byte(matrixFile), Overrides{})
	require.NoError(t, err)
	plan := c.Plan()
	for _, n := range []int{1, 2, 3, 4, 7, 20} {
		var union []int
		for i := 1; i <= n; i++ {
			for _, p := range Shard(plan, i, n) {
				union = append(union, p.Index)
			}
		}
		slices.Sort(union)
		require.Len(t, union, len(plan), "n=%d", n)
		for i, idx := range union {
			assert.Equal(t, i, idx, "n=%d: every run once", n)
		}
	}
	_, _, err = ParseShard("3/2")
	assert.Error(t, err)
	i, n, err := ParseShard("2/4")
	require.NoError(t, err)
	assert.Equal(t, []int{2, 4}, []int{i, n})
}

// fakeRun judges a run by its spec alone, as a deterministic system would: the stale
// scenario is caught on even seeds, the append/kill,pause cell is unknown on seed 101.
func fakeRun(calls *atomic.Int64) func(context.Context, harness.Spec, harness.Env) harness.Outcome {
	return func(_ context.Context, s harness.Spec, _ harness.Env) harness.Outcome {
		calls.Add(1)
		dir := filepath.Join(s.Results, s.Name, "run-"+strings.TrimLeft(time.Duration(s.Seed).String(), "0"))
		_ = os.MkdirAll(dir, 0o755)
		o := harness.Outcome{Dir: dir, Verdict: checker.Valid, Violation: -1, Duration: time.Second}
		o.Stats.OpsPerSec = 100
		switch {
		case s.Options().KnownUnsafe() != "" && s.Seed%2 == 0:
			o.Verdict, o.Violation = checker.Invalid, time.Duration(s.Seed-99)*time.Second
		case s.Options().KnownUnsafe() != "":
		case s.Name == "append-kill,pause" && s.Seed == 101:
			o.Verdict = checker.Unknown
		}
		return o
	}
}

func verdictsBySeed(ix results.CampaignIndex) map[string]string {
	out := map[string]string{}
	for _, r := range ix.Runs {
		out[r.Scenario+"/"+time.Duration(r.Seed).String()] = r.Verdict
	}
	return out
}

func TestShardsMergedAreTheWholeCampaign(t *testing.T) {
	c, err := Parse([]byte(matrixFile), Overrides{})
	require.NoError(t, err)
	var calls atomic.Int64
	root := t.TempDir()
	whole, _, err := c.Run(context.Background(), Options{Results: root, Parallel: 3, Run: fakeRun(&calls)})
	require.NoError(t, err)
	assert.EqualValues(t, 15, calls.Load())
	var dirs []string
	for i := 1; i <= 2; i++ {
		_, dir, err := c.Run(context.Background(), Options{Results: filepath.Join(root, "shard"), Shard: i, Of: 2, Run: fakeRun(&calls)})
		require.NoError(t, err)
		dirs = append(dirs, dir)
	}
	assert.EqualValues(t, 30, calls.Load(), "the shards together run the plan once")
	out := filepath.Join(root, "merged")
	merged, err := results.MergeCampaigns(out, dirs)
	require.NoError(t, err)
	require.NoError(t, results.WriteCampaign(out, merged))
	back, err := results.ReadCampaign(out)
	require.NoError(t, err)
	assert.Equal(t, verdictsBySeed(whole), verdictsBySeed(back))
	assert.Equal(t, whole.Rows(), back.Rows())
	assert.Equal(t, whole.Exit(), back.Exit())
	for _, r := range back.Runs {
		assert.DirExists(t, filepath.Join(out, r.Dir), "a merged run's directory is found from the merged index")
	}
	// stale is caught on seeds 100 and 102 (2 of 3, over 0.5), at 1 s and 3 s.
	rows := whole.Rows()
	assert.Equal(t, 2, rows[0].Invalid)
	assert.Empty(t, rows[0].Failed)
	assert.Equal(t, 2*time.Second, rows[0].MedianFirstAnomaly, "the median of 1 s and 3 s")
	assert.Equal(t, results.ExitUnknown, whole.Exit(), "one unknown run of a scenario that must be valid: no green")

	_, err = results.MergeCampaigns(out, dirs[:1])
	assert.ErrorContains(t, err, "a shard is missing")
	_, err = results.MergeCampaigns(out, []string{dirs[0], dirs[0]})
	assert.ErrorContains(t, err, "is in both")
	other, err := Parse([]byte(strings.Replace(matrixFile, "seed: 100", "seed: 7", 1)), Overrides{})
	require.NoError(t, err)
	_, odir, err := other.Run(context.Background(), Options{Results: root, Shard: 2, Of: 2, Run: fakeRun(&calls)})
	require.NoError(t, err)
	_, err = results.MergeCampaigns(out, []string{dirs[0], odir})
	assert.ErrorContains(t, err, "another campaign plan")
}

func TestExitGatesBothWays(t *testing.T) {
	mk := func(expect string, exits ...results.ExitCode) results.CampaignIndex {
		ix := results.CampaignIndex{Scenarios: []results.CampaignScenario{{Name: "s", Expect: expect, MinDetection: 0.8}}}
		for i, e := range exits {
			ix.Planned = append(ix.Planned, i)
			ix.Runs = append(ix.Runs, results.CampaignRun{Index: i, Scenario: "s", Exit: e})
		}
		return ix
	}
	assert.Equal(t, results.ExitValid, mk(results.ExpectValid, 0, 0).Exit())
	assert.Equal(t, results.ExitInvalid, mk(results.ExpectValid, 0, 1).Exit(), "a false green is the worst: one invalid fails")
	assert.Equal(t, results.ExitUnknown, mk(results.ExpectValid, 0, 2).Exit())
	assert.Equal(t, results.ExitError, mk(results.ExpectValid, 0, 3, 2).Exit())
	assert.Equal(t, results.ExitValid, mk(results.ExpectInvalid, 1, 1, 1, 1, 2).Exit(), "4 of 5 caught meets 80%; the unknown is a miss")
	assert.Equal(t, results.ExitInvalid, mk(results.ExpectInvalid, 1, 1, 1, 0, 2).Exit(), "3 of 5 is under 80%")
	ix := mk(results.ExpectValid, 0)
	ix.Planned = append(ix.Planned, 1)
	assert.Equal(t, results.ExitError, ix.Exit(), "a run planned and not made: the campaign proves less than it says")
	ix.StoppedEarly = "--failfast"
	assert.Equal(t, results.ExitValid, ix.Exit())
}

// A scenario that names its bug's anomaly counts as caught only the invalid runs that
// show it: another bug in the same release is not a detection of this one.
func TestAScenarioThatNamesItsAnomalyCountsOnlyRunsThatShowIt(t *testing.T) {
	c, err := Parse([]byte("name: x\nscenarios: [{name: a, expect: invalid, anomaly: watch-order, min-detection: 0.5}]"), Overrides{})
	require.NoError(t, err)
	assert.Equal(t, "watch-order", c.Scenarios[0].Anomaly)
	ix := c.Index(c.Plan(), "")
	ix.Runs = nil
	require.Equal(t, "watch-order", ix.Scenarios[0].Anomaly, "campaign.json says what was expected")
	for i, kinds := range [][]string{{"watch-order", "watch-progress"}, {"watch-progress"}, {"watch-progress"}, nil} {
		exit := results.ExitInvalid
		if kinds == nil {
			exit = results.ExitValid
		}
		ix.Runs = append(ix.Runs, results.CampaignRun{Index: i, Scenario: "a", Exit: exit, Anomalies: kinds})
	}
	row := ix.Rows()[0]
	assert.Equal(t, 3, row.Invalid)
	assert.Equal(t, 1, row.Caught)
	assert.InDelta(t, 0.25, row.Detection, 1e-9)
	assert.Contains(t, row.Failed, "caught with watch-order (invalid in 3) in 1 of 4 runs")
	assert.Equal(t, results.ExitInvalid, ix.Exit(), "1 of 4 is under the 50% asked")
	ix.Runs[1].Anomalies = []string{"watch-order"}
	assert.Equal(t, results.ExitValid, ix.Exit(), "2 of 4 meets it")

	// One bug seen by two checks: either kind is a detection of it.
	c, err = Parse([]byte("name: x\nscenarios: [{name: a, expect: invalid, anomaly: 'linearizability,revision-order'}]"), Overrides{})
	require.NoError(t, err)
	ix = c.Index(c.Plan(), "")
	ix.Runs = []results.CampaignRun{{Index: 0, Scenario: "a", Exit: results.ExitInvalid, Anomalies: []string{"revision-order"}},
		{Index: 1, Scenario: "a", Exit: results.ExitInvalid, Anomalies: []string{"linearizability"}},
		{Index: 2, Scenario: "a", Exit: results.ExitInvalid, Anomalies: []string{"watch-order"}}}
	assert.Equal(t, 2, ix.Rows()[0].Caught)
	_, err = Parse([]byte("name: x\nscenarios: [{name: a, expect: invalid, anomaly: 'linearizability,nope'}]"), Overrides{})
	assert.ErrorContains(t, err, `anomaly "nope" is not one of`)
}

// A pass whose system answered little is marked in the table and in campaign.json.
func TestLowAvailabilityRunsAreMarked(t *testing.T) {
	ix := results.CampaignIndex{Scenarios: []results.CampaignScenario{{Name: "s", Expect: results.ExpectValid}}, Planned: []int{0, 1}}
	ix.Runs = []results.CampaignRun{{Index: 0, Scenario: "s", Exit: results.ExitValid},
		{Index: 1, Scenario: "s", Verdict: "valid", Exit: results.ExitValid, Warnings: []string{checker.WarnLowAvailability}}}
	assert.Equal(t, results.ExitValid, ix.Exit(), "a warning does not change the verdict")
	assert.Equal(t, 1, ix.Rows()[0].LowAvailability)
	var b bytes.Buffer
	results.PrintCampaignTable(&b, ix)
	assert.Contains(t, b.String(), "WARNING: s: 1 of 2 runs had low availability")
	assert.Equal(t, "VALID (low availability)", describe(ix.Runs[1]))
}

func TestFailfastStopsAfterTheFirstFailingRun(t *testing.T) {
	c, err := Parse([]byte("name: ff\nruns: 5\nscenarios: [{name: a, spec: {target: raftnode}}]"), Overrides{})
	require.NoError(t, err)
	var calls atomic.Int64
	run := func(ctx context.Context, s harness.Spec, e harness.Env) harness.Outcome {
		o := fakeRun(&calls)(ctx, s, e)
		if s.Seed == 2 {
			o.Verdict = checker.Invalid
		}
		return o
	}
	var out bytes.Buffer
	ix, _, err := c.Run(context.Background(), Options{Results: t.TempDir(), Failfast: true, Run: run, Out: &out})
	require.NoError(t, err)
	assert.EqualValues(t, 2, calls.Load(), "no run starts after seed 2 failed")
	assert.Equal(t, results.ExitInvalid, ix.Exit())
	assert.Contains(t, out.String(), "FAILS: a (expect valid): judged invalid in 1 of 2 runs")
	assert.Contains(t, out.String(), "INCOMPLETE: 3 of 5 planned runs have no result (--failfast after a seed 2")
}

func TestTheZooIsACampaign(t *testing.T) {
	c, err := Parse(Zoo, Overrides{})
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, s := range c.Scenarios {
		u := s.Spec.Options().KnownUnsafe()
		seen[u] = true
		if u == "" {
			assert.Equal(t, results.ExpectValid, s.Expect)
		} else {
			assert.Equal(t, results.ExpectInvalid, s.Expect, s.Name)
			assert.GreaterOrEqual(t, s.MinDetection, 0.8, s.Name)
		}
	}
	for _, m := range append(slices.Clone(node.UnsafeModes), "") {
		assert.True(t, seen[string(m)], "the zoo has a row for %q", m)
	}
}

// docs/campaigns.md names every anomaly kind a scenario may expect.
func TestTheDocsNameEveryAnomalyKind(t *testing.T) {
	doc, err := os.ReadFile("../../docs/campaigns.md")
	require.NoError(t, err)
	for _, k := range checker.AnomalyKindNames() {
		if base, ok := strings.CutSuffix(k, "-realtime"); ok {
			k = base // "each cycle also -realtime"
		}
		assert.Contains(t, string(doc), "`"+k+"`", "docs/campaigns.md names %s", k)
	}
}

// The shipped campaign files resolve, and the CI examples parse. They are run from the
// top of the repository (make regressions, the README), where a target file's path in
// them (examples/nats.yaml) resolves.
func TestShippedCampaignsAndCIExamples(t *testing.T) {
	t.Chdir("../..")
	bin := t.TempDir() // the programs the NATS target file names, stood in for by stubs
	for _, p := range []string{"nats-server-v2.10.22", "nats-server-v2.15.3", "nats-kv-shim"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	files, err := filepath.Glob("examples/campaigns/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	catalogue, err := filepath.Glob("examples/campaigns/regressions/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(catalogue), 4, "the catalogue of real bugs reproduced")
	doc, err := os.ReadFile("docs/regressions.md")
	require.NoError(t, err)
	for _, f := range catalogue {
		assert.Contains(t, string(doc), "regressions/"+filepath.Base(f), "docs/regressions.md has a row for %s", f)
	}
	files = append(files, catalogue...)
	for _, f := range files {
		c, err := Load(f, Overrides{})
		require.NoError(t, err, f)
		assert.NotEmpty(t, c.Plan(), f)
		assert.True(t, slices.ContainsFunc(c.Scenarios, func(s Scenario) bool { return s.Expect == results.ExpectInvalid }),
			"%s gates both ways: a scenario that must be caught proves the gate can fail", f)
	}
	ci, err := filepath.Glob("examples/ci/*/*.y*ml")
	require.NoError(t, err)
	require.Len(t, ci, 3)
	for _, f := range ci {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		var v map[string]any
		require.NoError(t, yaml.Unmarshal(b, &v), f)
		assert.Contains(t, string(b), "faultline campaign", f) // cmd/faultline's tests dry-run its command lines
	}
}
