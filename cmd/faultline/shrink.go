//go:build !lean

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/campaign"
	"github.com/faultline/faultline/results"
)

// runShrink is `faultline shrink RUNDIR`: a smaller test that still finds what an
// invalid run found (campaign.Shrinking).
func runShrink(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	fs := flag.NewFlagSet("faultline shrink", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 2, "runs per candidate; a candidate is kept when caught in at least half")
	budget := fs.Duration("budget", 30*time.Minute, "bound on the whole search (a candidate that would not fit is not started)")
	resultsDir := fs.String("results", results.DefaultDir, "where the search's directory is made")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: faultline shrink [--runs 2] [--budget 30m] [--results DIR] RUNDIR")
		fmt.Fprintln(stderr, "\nfrom an invalid run, a smaller test that still finds its anomaly: fewer faults, a shorter run, fewer nodes and clients; prints a spec file and its replay command")
		fs.PrintDefaults()
	}
	var dirs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return results.ExitValid
			}
			return results.ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		dirs, args = append(dirs, fs.Arg(0)), fs.Args()[1:]
	}
	usage := func(format string, a ...any) results.ExitCode {
		fmt.Fprintf(stderr, "faultline shrink: "+format+"\n", a...)
		return results.ExitUsage
	}
	switch {
	case len(dirs) != 1:
		return usage("want one RUNDIR, got %d", len(dirs))
	case *runs < 1:
		return usage("--runs %d: want at least 1", *runs)
	case *budget <= 0:
		return usage("--budget %v: want a positive duration", *budget)
	}
	dir := dirs[0]
	spec, err := harness.LoadReplay(dir)
	if err != nil {
		return usage("%v", err)
	}
	var prior struct {
		Valid checker.Verdict `json:"valid"`
	}
	b, err := os.ReadFile(filepath.Join(dir, results.ResultsFile))
	if err != nil || json.Unmarshal(b, &prior) != nil {
		return usage("%s has no readable %s: a run that was not checked has nothing to shrink", dir, results.ResultsFile)
	}
	if prior.Valid != checker.Invalid {
		return usage("%s is %s: only an invalid run has an anomaly to keep while shrinking", dir, prior.Valid)
	}
	if spec, err = spec.Resolve(); err != nil {
		return usage("%v", err)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sh := campaign.Shrinking{Spec: spec, Runs: *runs, Budget: *budget}
	res, _, err := sh.Shrink(ctx, campaign.Options{Results: *resultsDir, Parallel: 1, Out: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "faultline shrink: %v\n", err)
		return harness.Outcome{Err: err}.ExitCode()
	}
	if res.Stopped != "" && res.Smallest.Change == "" && len(res.Tried) == 0 {
		return results.ExitError // nothing was tried
	}
	return results.ExitInvalid // the smallest test found still finds the anomaly
}
