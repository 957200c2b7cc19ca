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

// runBisect is `faultline bisect`: the first of an ordered list of releases (values of
// one spec key) at which a scenario stops meeting its expectation.
func runBisect(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	fs := flag.NewFlagSet("faultline bisect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	spec := fs.String("f", "", "the scenario: a spec file, as faultline test -f reads it")
	key := fs.String("key", "etcd-version", "the spec key that varies (etcd-version; target-var for binaries a target file's var names)")
	values := fs.String("values", "", "its values, oldest first, comma-separated (e.g. v3.5.4,v3.5.5,v3.5.6,v3.5.7,v3.5.8; for target-var, bin=/opt/x-1.0;bin=/opt/x-1.1 separated by ';')")
	runs := fs.Int("runs", 3, "runs (seeds) per value tried")
	seed := fs.Int64("seed", 1, "the first seed")
	expect := fs.String("expect", results.ExpectValid, "what the first value does: valid (find the first release that breaks) or invalid (find the first where the bug is no longer caught)")
	resultsDir := fs.String("results", results.DefaultDir, "where each value's runs go (a campaign directory each)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: faultline bisect -f SPEC.yaml --values A,B,C,... [--key etcd-version] [--runs 3] [--expect valid|invalid]")
		fmt.Fprintln(stderr, "\nthe first value at which the scenario stops meeting its expectation, halving the range; each value tried gets --runs seeds, and its detection rate is printed (docs/regressions.md)")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return results.ExitValid
		}
		return results.ExitUsage
	}
	usage := func(err error) results.ExitCode {
		fmt.Fprintf(stderr, "faultline bisect: %v\n", err)
		return results.ExitUsage
	}
	if fs.NArg() > 0 {
		return usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *spec == "" {
		return usage(errors.New("-f SPEC.yaml: which scenario?"))
	}
	base, err := os.ReadFile(*spec)
	if err != nil {
		return usage(err)
	}
	sep := ","
	if strings.Contains(*values, ";") {
		sep = ";"
	}
	var vs []string
	for _, v := range strings.Split(*values, sep) {
		if v = strings.TrimSpace(v); v != "" {
			vs = append(vs, v)
		}
	}
	b := campaign.Bisection{Base: base, Key: *key, Values: vs, Runs: *runs, Seed: *seed, Expect: *expect}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	prepare := func(ctx context.Context, s harness.Spec) error {
		return s.Options().Prepare(ctx, func(line string) { fmt.Fprintln(stderr, line) })
	}
	res, err := b.Bisect(ctx, campaign.Options{Results: *resultsDir, Parallel: 1, Out: stdout}, prepare)
	if err != nil {
		fmt.Fprintf(stderr, "faultline bisect: %v\n", err)
		return harness.Outcome{Err: err}.ExitCode()
	}
	return res.Exit()
}
