//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/campaign"
	"github.com/faultline/faultline/results"
)

// runCampaign runs a campaign file (or, as "zoo", the shipped bug zoo): many runs, one
// table, one exit code (results.CampaignIndex.Exit).
func runCampaign(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) results.ExitCode {
	if cmd == "faultline campaign" && len(args) > 0 && args[0] == "merge" {
		return runMerge(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var path string
	if cmd == "faultline campaign" {
		fs.StringVar(&path, "f", "", "the campaign file (docs/campaigns.md)")
	}
	var o campaign.Overrides
	fs.IntVar(&o.Runs, "runs", 0, "seeds per scenario (default: the file's)")
	fs.Int64Var(&o.Seed, "seed", 0, "the first seed (default: the file's)")
	parallel := fs.Int("parallel", 0, "runs at a time (default: the file's, else 1)")
	shard := fs.String("shard", "", "run only share i/n of the plan (e.g. 2/4); 'faultline campaign merge' joins the shards")
	failfast := fs.Bool("failfast", false, "stop starting runs after the first that fails its expectation")
	resultsDir := fs.String("results", results.DefaultDir, "where the campaign directory is made")
	junit := fs.String("junit", "", "also copy the campaign's JUnit report (a case per run) here")
	dry := fs.Bool("dry-run", false, "print the runs this campaign (or shard) would make, and make none")
	set := map[string]string{}
	for _, key := range []string{"runtime", "time-limit", "nodes", "nemesis-interval", "target"} {
		fs.Func(key, "set every scenario's "+key, func(v string) error { set[key] = v; return nil })
	}
	for _, f := range harness.TargetFlags() { // every target's own: --etcd-version, --unsafe, ...
		key := f.Name
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			fs.BoolFunc(key, "set every scenario's "+key+": "+f.Usage, func(v string) error { set[key] = v; return nil })
			continue
		}
		fs.Func(key, "set every scenario's "+key+": "+f.Usage, func(v string) error { set[key] = v; return nil })
	}
	fs.Func("set", "KEY=VALUE: set a spec key of every scenario (repeatable), e.g. --set concurrency=20", func(v string) error {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" {
			return fmt.Errorf("want KEY=VALUE, got %q", v)
		}
		set[k] = val
		return nil
	})
	fs.Usage = func() {
		synopsis := "faultline campaign -f FILE [--shard i/n] [--parallel N] [--failfast] [flags]\n       faultline campaign merge [-o DIR] SHARDDIR..."
		if cmd == "faultline zoo" {
			synopsis = "faultline zoo [--runs N] [--time-limit D] [--shard i/n] [--parallel N] [flags]   (harness/campaign/zoo.yaml)"
		}
		fmt.Fprintf(stderr, "usage: %s\n\nmany runs, one table and one exit code (docs/campaigns.md); flags:\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			name, help := flag.UnquoteUsage(f)
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-"
			}
			fmt.Fprintf(stderr, "  %s%s %s\n    \t%s\n", dash, f.Name, name, help)
		})
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return results.ExitValid
		}
		return results.ExitUsage
	}
	usage := func(err error) results.ExitCode { fmt.Fprintf(stderr, "%s: %v\n", cmd, err); return results.ExitUsage }
	if fs.NArg() > 0 {
		return usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	o.Set = set
	var c *campaign.Campaign
	var err error
	switch {
	case cmd == "faultline zoo":
		c, err = campaign.Parse(campaign.Zoo, o)
	case path == "":
		return usage(errors.New("-f FILE: which campaign?"))
	default:
		c, err = campaign.Load(path, o)
	}
	if err != nil {
		return usage(err)
	}
	opts := campaign.Options{Results: *resultsDir, Parallel: max(*parallel, c.Parallel), Failfast: *failfast, Out: stdout}
	if *shard != "" {
		if opts.Shard, opts.Of, err = campaign.ParseShard(*shard); err != nil {
			return usage(err)
		}
	}
	if *dry {
		plan := c.Plan()
		if opts.Of > 0 {
			plan = campaign.Shard(plan, opts.Shard, opts.Of)
		}
		fmt.Fprintf(stdout, "campaign %s (plan %s): %d of %d runs\n", c.Name, c.PlanID(), len(plan), len(c.Plan()))
		for _, p := range plan {
			fmt.Fprintf(stdout, "%4d  %s  seed %d\n", p.Index, c.Scenarios[p.Scenario].Name, p.Seed)
		}
		return results.ExitValid
	}
	if code, done := intoUserNS(ctx, c.Scenarios[0].Spec, cmd, stderr); done {
		return code
	}
	if err := c.Check(ctx); err != nil { // every scenario planned before any run starts
		fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
		return harness.Outcome{Err: err}.ExitCode()
	}
	return runPlan(ctx, c, opts, *junit, stderr)
}

// runCount is `faultline test --count N`: the test as a campaign of one scenario that
// must be valid in every run (the exit code is the worst run's) — or, for a spec with a
// known-unsafe setting, caught in a campaign's default share of its runs.
func runCount(ctx context.Context, spec harness.Spec, stdout, stderr io.Writer) results.ExitCode {
	sc := campaign.Scenario{Name: spec.Name, Spec: spec, Expect: results.ExpectValid}
	if spec.Options().KnownUnsafe() != "" {
		sc.Expect, sc.MinDetection = results.ExpectInvalid, campaign.DefaultMinDetection
	}
	c := &campaign.Campaign{Name: spec.Name, Runs: spec.Count, Seed: spec.Seed, Scenarios: []campaign.Scenario{sc}}
	return runPlan(ctx, c, campaign.Options{Results: spec.Results, Parallel: 1, Failfast: spec.Failfast, Out: stdout}, spec.JUnit, stderr)
}

func runPlan(ctx context.Context, c *campaign.Campaign, opts campaign.Options, junit string, stderr io.Writer) results.ExitCode {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ix, dir, err := c.Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "campaign %s: %v\n", c.Name, err)
		return results.ExitError
	}
	if junit != "" {
		if err := copyFile(dir+"/"+results.CampaignJUnitFile, junit); err != nil {
			fmt.Fprintf(stderr, "campaign %s: junit: %v\n", c.Name, err)
			return results.ExitError
		}
	}
	return ix.Exit()
}

// runMerge joins shard directories into one campaign directory.
func runMerge(args []string, stdout, stderr io.Writer) results.ExitCode {
	fs := flag.NewFlagSet("faultline campaign merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "the merged campaign directory (default: merged-<name> beside the first shard)")
	junit := fs.String("junit", "", "also copy the merged JUnit report here")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: faultline campaign merge [-o DIR] SHARDDIR...\n\njoins the directories of a campaign's shards into one table, index and JUnit")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return results.ExitValid
		}
		return results.ExitUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "faultline campaign merge: which shard directories?")
		return results.ExitUsage
	}
	dirs := fs.Args()
	if *out == "" {
		first, err := results.ReadCampaign(dirs[0])
		if err != nil {
			fmt.Fprintf(stderr, "faultline campaign merge: %v\n", err)
			return results.ExitUsage
		}
		*out = dirs[0] + "/../merged-" + first.Name
	}
	ix, err := results.MergeCampaigns(*out, dirs)
	if err != nil {
		fmt.Fprintf(stderr, "faultline campaign merge: %v\n", err)
		return results.ExitUsage
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintf(stderr, "faultline campaign merge: %v\n", err)
		return results.ExitError
	}
	if err := results.WriteCampaign(*out, ix); err != nil {
		fmt.Fprintf(stderr, "faultline campaign merge: %v\n", err)
		return results.ExitError
	}
	fmt.Fprintf(stdout, "campaign %s: merged %d shards (%s) into %s\n\n", ix.Name, len(dirs), strings.Join(ix.Shards, ", "), *out)
	results.PrintCampaignTable(stdout, ix)
	if *junit != "" {
		if err := copyFile(*out+"/"+results.CampaignJUnitFile, *junit); err != nil {
			fmt.Fprintf(stderr, "faultline campaign merge: junit: %v\n", err)
			return results.ExitError
		}
	}
	return ix.Exit()
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}
