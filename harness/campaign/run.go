package campaign

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

// Options say how a campaign runs.
type Options struct {
	// Results is the directory the campaign directory is made in.
	Results string
	// Parallel is how many runs go at once (at least 1).
	Parallel int
	// Shard and Of select the share Shard/Of of the plan (0/0: all of it).
	Shard, Of int
	// Failfast stops starting runs after the first that fails its scenario's
	// expectation (the runs in flight finish).
	Failfast bool
	// Out gets a line per run as it ends, and the table.
	Out io.Writer
	// Run runs one test (harness.Run when nil): a seam for tests.
	Run func(ctx context.Context, spec harness.Spec, env harness.Env) harness.Outcome
}

// Run makes the campaign's directory under o.Results and runs its plan (or shard) into
// it, writing the index, table and JUnit after every run. It returns the index and the
// directory; the index's Exit is the campaign's exit code. It stops early only when ctx
// ends (the index then says so) or, with Failfast, after a failing run.
func (c *Campaign) Run(ctx context.Context, o Options) (results.CampaignIndex, string, error) {
	plan, shard := c.Plan(), ""
	if o.Of > 0 {
		plan, shard = Shard(plan, o.Shard, o.Of), fmt.Sprintf("%d/%d", o.Shard, o.Of)
	}
	ix := c.Index(plan, shard)
	name := c.Name
	if shard != "" {
		name += fmt.Sprintf("-shard-%d-of-%d", o.Shard, o.Of)
	}
	dir, err := results.NewRunDir(o.Results, name, time.Now())
	if err != nil {
		return ix, "", err
	}
	if err := results.WriteCampaign(dir, ix); err != nil {
		return ix, dir, err
	}
	run := o.Run
	if run == nil {
		run = harness.Run
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	fmt.Fprintf(out, "campaign %s: %d scenarios × %d seeds from %d = %d runs", c.Name, len(c.Scenarios), c.Runs, c.Seed, len(c.Plan()))
	if shard != "" {
		fmt.Fprintf(out, ", shard %s: %d of them", shard, len(plan))
	}
	fmt.Fprintf(out, ", %d at a time\n  %s\n", max(o.Parallel, 1), dir)

	var (
		mu      sync.Mutex
		werr    error
		stopped bool
		wg      sync.WaitGroup
	)
	slots := make(chan struct{}, max(o.Parallel, 1))
	width := 0
	for _, s := range c.Scenarios {
		width = max(width, len(s.Name))
	}
	for _, p := range plan {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		mu.Lock()
		halt := stopped || ctx.Err() != nil
		mu.Unlock()
		if halt {
			if ctx.Err() == nil {
				<-slots
			}
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			sc := c.Scenarios[p.Scenario]
			spec := sc.Spec
			spec.Seed, spec.Results, spec.JUnit = p.Seed, dir, ""
			outc := run(ctx, spec, harness.Env{Stdout: io.Discard, Stderr: io.Discard})
			r := entry(dir, p, sc, outc)
			mu.Lock()
			defer mu.Unlock()
			ix.Runs = append(ix.Runs, r)
			fails := failsExpectation(sc.Expect, r.Exit)
			if o.Failfast && fails && ix.StoppedEarly == "" {
				stopped = true
				ix.StoppedEarly = fmt.Sprintf("--failfast after %s seed %d: %s", sc.Name, p.Seed, r.Verdict)
			}
			mark := ""
			switch {
			case fails:
				mark = "  ✗ expected " + sc.Expect
			case r.Exit == results.ExitInvalid && !r.Caught(results.CampaignScenario{Anomaly: sc.Anomaly}):
				mark = "  (not caught: no " + sc.Anomaly + ")"
			}
			if r.Error != "" {
				mark += "  " + firstLine(r.Error, 160)
			}
			fmt.Fprintf(out, "%4d/%d  %-*s seed %-6d %-8s %s%s\n", len(ix.Runs), len(plan), width, sc.Name, p.Seed, describe(r), r.Dir, mark)
			if err := results.WriteCampaign(dir, ix); err != nil && werr == nil {
				werr = err
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil && len(ix.Missing()) > 0 {
		ix.Interrupted = "interrupted: " + context.Cause(ctx).Error()
	}
	if err := results.WriteCampaign(dir, ix); err != nil && werr == nil {
		werr = err
	}
	fmt.Fprintln(out)
	results.PrintCampaignTable(out, ix)
	return ix, dir, werr
}

// failsExpectation says whether one run already fails what its scenario expects: any
// run that is not valid, for a scenario that must be valid; a run that broke, for one
// that must be caught (a single miss does not fail a detection rate).
func failsExpectation(expect string, exit results.ExitCode) bool {
	if expect == results.ExpectInvalid {
		return exit >= results.ExitError
	}
	return exit != results.ExitValid
}

func entry(dir string, p Planned, sc Scenario, o harness.Outcome) results.CampaignRun {
	r := results.CampaignRun{Index: p.Index, Scenario: sc.Name, Seed: p.Seed, Dir: o.Dir,
		Verdict: string(o.Verdict), Exit: o.ExitCode(), OpsPerSec: o.Stats.OpsPerSec, Duration: results.Seconds(o.Duration.Seconds()),
		Anomalies: o.Anomalies, Warnings: o.Warnings}
	if rel, err := filepath.Rel(dir, o.Dir); err == nil && o.Dir != "" && !strings.HasPrefix(rel, "..") {
		r.Dir = rel
	}
	if o.Err != nil {
		r.Error = o.Err.Error()
	}
	if o.Violation >= 0 && r.Exit == results.ExitInvalid {
		s := results.Seconds(o.Violation.Seconds())
		r.FirstAnomaly = &s
	}
	for _, byType := range o.Stats.Counts {
		for _, n := range byType {
			r.Ops += n
		}
	}
	return r
}

func describe(r results.CampaignRun) string {
	switch {
	case r.Exit >= results.ExitError:
		return "ERROR"
	case r.FirstAnomaly != nil:
		return fmt.Sprintf("INVALID@%v", r.FirstAnomaly.D().Round(100*time.Millisecond))
	case r.LowAvailability():
		return strings.ToUpper(r.Verdict) + " (low availability)"
	}
	return strings.ToUpper(r.Verdict)
}

// firstLine is s's first line, at most n bytes of it.
func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}
