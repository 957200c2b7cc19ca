// Command faultline is a Jepsen-style fault-injection test harness for Raft systems.
// It is a thin main: flags and exit codes here, everything else in the packages.
//
// Called by the name of a node program a target registered (sut.RegisterProgram; the
// harness links it so), it runs that program: one static binary carries the harness
// and faultline's own node.
package main

import (
	"context"
	"fmt"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
	"io"
	"os"
	"path/filepath"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if prog, ok := sut.Program(filepath.Base(os.Args[0])); ok {
		os.Exit(profiled(os.Stderr, func() int { return prog(os.Args[1:]) }))
	}
	os.Exit(profiled(os.Stderr, func() int { return int(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }))
}

const usage = `usage: faultline <command> [flags]

commands:
  test   [-f spec.yaml] [flags]   run one test; the exit code is the verdict
  check  [flags] FILE|RUNDIR      judge a stored history
  serve  [--results DIR] [--addr 127.0.0.1:8080]
                                  browse the runs and their reports in a browser
  clean                           remove every node, container, network, namespace and
                                  rule that runs left behind
  image                           build the docker runtime's node image (cached by content)
  test   --replay RUNDIR          the run again: same spec, seed and fault schedule
  test   --count N [--failfast]   the test N times, seeds counting up; one table
  campaign -f FILE [--shard i/n] [--parallel N]
                                  many runs (scenarios or a matrix × seeds), one table,
                                  one exit code gating "valid" and "still caught"
  campaign merge [-o DIR] DIR...  join a campaign's shards into one table and JUnit
  zoo    [flags]                  the shipped bug-zoo campaign: every unsafe mode under
                                  its fault (caught), the correct node under all (valid)
  shrink [--budget 30m] RUNDIR    from an invalid run, a smaller test that still finds
                                  its anomaly: a spec file and its replay command
  bisect -f SPEC --values A,B,... the first release (value of --key, etcd-version by
                                  default) at which the scenario stops meeting its
                                  expectation; each value tried gets --runs seeds
  version                         print the version

exit codes: 0 valid, 1 invalid, 2 unknown, 3 harness error, 4 bad usage
run 'faultline <command> -h' for a command's flags
`

// run dispatches a command and returns its exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return results.ExitUsage
	}
	switch args[0] {
	case "test":
		return runTest(ctx, args[1:], stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "clean":
		return runClean(ctx, args[1:], stdout, stderr)
	case "image":
		return runImage(ctx, args[1:], stdout, stderr)
	case "campaign":
		return runCampaign(ctx, "faultline campaign", args[1:], stdout, stderr)
	case "zoo":
		return runCampaign(ctx, "faultline zoo", args[1:], stdout, stderr)
	case "bisect":
		return runBisect(ctx, args[1:], stdout, stderr)
	case "shrink":
		return runShrink(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "faultline", version)
		return results.ExitValid
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return results.ExitValid
	}
	fmt.Fprintf(stderr, "faultline: unknown command %q\n\n%s", args[0], usage)
	return results.ExitUsage
}
