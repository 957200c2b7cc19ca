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
)

// runZoo runs the bug zoo: each of raftnode's unsafe modes under the fault that should
// expose it, and the correct node under every fault, several times each. It exits 0 when
// every mode was caught in at least --min runs and the correct node never failed, 1 when
// not, 3 on a harness error.
func runZoo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("faultline zoo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	runs := fs.Int("runs", 10, "runs of each case")
	min := fs.Int("min", -1, "runs in which each unsafe mode must be caught (default: 80% of --runs)")
	base := harness.DefaultSpec()
	base.Seed = 1
	fs.StringVar(&base.Runtime, "runtime", base.Runtime, "where nodes run: auto|docker|process")
	fs.IntVar(&base.Nodes, "nodes", base.Nodes, "cluster size")
	fs.Var(&base.TimeLimit, "time-limit", "how long each run's workload runs")
	fs.Var(&base.NemesisInterval, "nemesis-interval", "mean time from one fault's start to the next")
	fs.Int64Var(&base.Seed, "seed", base.Seed, "seed of each case's first run (the next ones count up)")
	fs.StringVar(&base.Results, "results", base.Results, "results directory")
	var cases caseList
	fs.Var(&cases, "case", "MODE=NEMESIS, e.g. stale-read=partition or correct=partition,kill,pause\n(repeatable; default: the zoo's own cases)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return harness.ExitUsage
	}
	if *min == -1 {
		*min = (*runs*8 + 9) / 10
	}
	if fs.NArg() > 0 || *runs < 1 || *min < 0 || *min > *runs {
		fmt.Fprintln(stderr, "faultline zoo: want --runs >= 1 and 0 <= --min <= --runs, and no arguments")
		return harness.ExitUsage
	}
	if _, err := base.Resolve(); err != nil {
		fmt.Fprintf(stderr, "faultline zoo: %v\n", err)
		return harness.ExitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(cases) == 0 {
		cases = harness.ZooCases
	}
	rows, dir, err := harness.Zoo(ctx, base, cases, *runs, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "faultline zoo: %v\n", err)
		return harness.ExitError
	}
	fmt.Fprintf(stdout, "results: %s\n", dir)
	if ok, why := harness.ZooPassed(rows, *min); !ok {
		for _, w := range why {
			fmt.Fprintf(stdout, "FALLS SHORT: %s\n", w)
		}
		return harness.ExitInvalid
	}
	fmt.Fprintf(stdout, "every unsafe mode caught in at least %d of %d runs; the correct node never invalid\n", *min, *runs)
	return 0
}

// caseList is the repeatable --case flag.
type caseList []harness.ZooCase

func (l *caseList) String() string { return fmt.Sprint(*l) }

func (l *caseList) Set(v string) error {
	mode, nem, ok := strings.Cut(v, "=")
	if !ok || mode == "" || nem == "" {
		return fmt.Errorf("want MODE=NEMESIS, got %q", v)
	}
	if mode == "correct" {
		mode = ""
	}
	*l = append(*l, harness.ZooCase{Unsafe: mode, Nemesis: strings.Split(nem, ",")})
	return nil
}
