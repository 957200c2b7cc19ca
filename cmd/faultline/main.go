// Command faultline is a Jepsen-style fault-injection test harness for Raft systems.
// It is a thin main: flags and exit codes here, everything else in the packages.
//
// It builds two ways. By default (go build ./cmd/faultline) it is the whole harness in
// one static binary, which also runs faultline's own node when called by that node
// program's name (sut.RegisterProgram; the harness links it so). Built with the lean tag
// (make build's bin/faultline), it carries only the commands that read stored files
// (check, version, help), which then start as fast as a small program, and hands every
// other command to the whole binary beside it, faultline-full (see lean.go).
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/faultline/faultline/results"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// command runs one subcommand with its arguments and returns its exit code.
type command func(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode

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

// run dispatches a command and returns its exit code: check, version and help here, the
// others through harnessCommands (none in the lean build, whose main hands them over
// before run is called).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return results.ExitUsage
	}
	switch args[0] {
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "faultline", version)
		return results.ExitValid
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return results.ExitValid
	}
	if cmd, ok := harnessCommands[args[0]]; ok {
		return cmd(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "faultline: unknown command %q\n\n%s", args[0], usage)
	return results.ExitUsage
}

// leanCommand says whether run does args' command itself, with no harness: the lean
// build runs those, and hands every other to the whole binary.
func leanCommand(args []string) bool {
	if len(args) == 0 {
		return true
	}
	switch args[0] {
	case "check", "version", "--version", "help", "-h", "--help":
		return true
	}
	return false
}
