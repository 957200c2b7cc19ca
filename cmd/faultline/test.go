//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/faultline/faultline/results"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/internal/netns"
)

// runTest is `faultline test`: the spec parsed and the run planned before anything is
// made, so that every usage error is one line and exit 4 with nothing written; then
// the run (or the runs of --count), whose outcome is the exit code.
func runTest(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	spec, ta, err := harness.ParseTest(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return results.ExitValid
	}
	if err != nil {
		fmt.Fprintf(stderr, "faultline test: %v\n", err)
		return results.ExitUsage
	}
	if code, done := intoUserNS(ctx, spec, "faultline test", stderr); done {
		return code
	}
	plan, err := harness.NewPlan(ctx, spec)
	if err != nil {
		fmt.Fprintf(stderr, "faultline test: %v\n", err)
		return harness.Outcome{Err: err}.ExitCode()
	}
	if ta.DryRun {
		plan.Print(stdout)
		return results.ExitValid
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills at once (nodes die with us; 'faultline clean' sweeps the rest)
	}()
	if spec.Count > 1 {
		return runCount(ctx, spec, stdout, stderr)
	}
	out := harness.RunPlan(ctx, plan, harness.Env{Stdout: stdout, Stderr: stderr, Progress: progressRenderer(stderr), Version: version})
	if out.Err != nil && out.Dir == "" {
		fmt.Fprintf(stderr, "faultline test: %v\n", out.Err) // nothing was made: no run log says it
	}
	return out.ExitCode()
}

// intoUserNS puts an unprivileged faultline into a user namespace of its own, where the
// process runtime can make network namespaces: it sets the namespace up when this is
// the re-executed child, or re-executes the command there and returns its exit code
// (done). Where that cannot be, it says why and goes on: the nodes share loopback.
func intoUserNS(ctx context.Context, spec harness.Spec, cmd string, stderr io.Writer) (code results.ExitCode, done bool) {
	switch {
	case netns.InUserNS():
		if err := netns.SetupUserNS(); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
			return results.ExitError, true
		}
	case harness.WantUserNS(ctx, spec):
		code, started, err := netns.RunInUserNS()
		if started {
			if err != nil {
				fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
				return results.ExitError, true
			}
			return results.ExitCode(code), true
		}
		fmt.Fprintf(stderr, "%s: not root, and %v: the nodes share loopback\n", cmd, err)
	}
	return results.ExitValid, false
}

// progressRenderer redraws one line on a terminal, and prints a compact line every
// 5 seconds elsewhere (CI logs).
func progressRenderer(w io.Writer) func(harness.Status) {
	tty := isTerminal(w)
	var last time.Time
	return func(s harness.Status) {
		line := fmt.Sprintf("%5.0fs/%.0fs  ok %d  fail %d  info %d  %6.1f op/s  leader %s  fault %s",
			s.Elapsed.Seconds(), s.Limit.Seconds(), s.OK, s.Fail, s.Info, s.OpsPerSec, orDash(s.Leader), orDash(s.Fault))
		if tty {
			fmt.Fprintf(w, "\r\033[K%s", line)
			if s.Elapsed >= s.Limit-time.Second {
				fmt.Fprintln(w)
			}
			return
		}
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintln(w, line)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runClean(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	fs := flag.NewFlagSet("faultline clean", flag.ContinueOnError)
	fs.SetOutput(stderr)
	images := fs.Bool("images", false, "also remove the docker runtime's node images (a cache)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return results.ExitValid
		}
		return results.ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "faultline clean: unexpected argument %q\n", fs.Arg(0))
		return results.ExitUsage
	}
	removed, err := harness.Clean(ctx, *images)
	for _, r := range removed {
		fmt.Fprintln(stdout, "removed", r)
	}
	if err != nil {
		fmt.Fprintf(stderr, "faultline clean: %v\n", err)
		return results.ExitError
	}
	if len(removed) == 0 {
		fmt.Fprintln(stdout, "nothing to clean")
	}
	return results.ExitValid
}
