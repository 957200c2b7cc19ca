// Package bench is `make bench`: faultline measured side by side with the best
// reference for each part, in one run on one machine, printed as one table of ratios
// with the command of every row. Each comparison alternates the two sides, so that the
// machine's noise falls on both.
//
//   - start-up: `faultline version` against a small program's (the reference checker
//     of an empty history), whole process each;
//   - checker: `faultline check` against Porcupine called directly (package refcheck, a
//     program of its own that links nothing of faultline's) on the same histories,
//     whole process each: the Jepsen histories that ship with Porcupine, and generated
//     register histories (package checker/sim);
//   - recorder: the harness's clients (workload.Run, recording to a history file)
//     against a bare client loop that records nothing, same cluster, same concurrency;
//   - node: faultline's own node against a reference system (Options.Ours and
//     Reference: targets of the registry), writes and reads, 3 nodes, fsync on, with
//     the clients spread over every member (as real clients are) and all on the leader;
//   - bring-up: a test's start to its first acknowledged operation, process and docker;
//   - memory: the recorder's memory per recorded operation over 1M operations.
package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Options say what to measure and with which programs.
type Options struct {
	// Faultline is the faultline binary (bin/faultline); Self this program (it records
	// in a process of its own as `Self record`); RefCheck the reference checker
	// (harness/bench/ref/porcheck).
	Faultline, Self, RefCheck string
	// Dir is a scratch directory.
	Dir string
	// Only names the sections to run (startup, checker, recorder, node, bringup, memory); empty:
	// all. Quick makes every measurement shorter (a smoke test of the bench).
	Only  []string
	Quick bool
	// Ours and Reference are the targets of the recorder and node rows, as the flags of
	// `faultline test` name them (--target etcd --etcd-version v3.7.3): the system
	// faultline ships, and the one it is measured against.
	Ours, Reference []string
	// Log gets a line as each measurement starts.
	Log io.Writer
}

// Row is one line of the table.
type Row struct {
	Section, Name string
	// Ours and Ref are what faultline and the reference measured; Ratio ours/ref in the
	// sense Goal gives (time: lower is better; throughput: higher is better).
	Ours, Ref string
	Ratio     float64
	Goal      string
	Command   string
}

// Run measures every section asked for and returns the rows. A section that cannot run
// here (no docker, no reference system) says so in a row rather than failing the bench.
func Run(ctx context.Context, o Options) ([]Row, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	want := func(s string) bool {
		if len(o.Only) == 0 {
			return true
		}
		for _, x := range o.Only {
			if x == s {
				return true
			}
		}
		return false
	}
	var rows []Row
	for _, s := range []struct {
		name string
		run  func(context.Context, Options) ([]Row, error)
	}{{"startup", startupRows}, {"checker", checkerRows}, {"recorder", recorderRows}, {"node", nodeRows}, {"bringup", bringupRows}, {"memory", memoryRows}} {
		if !want(s.name) {
			continue
		}
		dir, err := os.MkdirTemp(o.Dir, s.name+"-")
		if err != nil {
			return rows, err
		}
		// The node rows fsync thousands of times: flush what the sections before left
		// dirty, so that its writeback does not slow the next section (bring-up in
		// docker measured 2.04 s after the node rows, 1.42 s alone).
		syscall.Sync()
		so := o
		so.Dir = dir
		r, err := s.run(ctx, so)
		rows = append(rows, r...)
		if err != nil {
			return rows, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return rows, nil
}

// Print writes the table: a row per measurement, then the commands.
func Print(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "section\tmeasurement\tfaultline\treference\tratio\tgoal")
	for _, r := range rows {
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Section, r.Name, r.Ours, r.Ref, ratio, r.Goal)
	}
	_ = tw.Flush()
	fmt.Fprintln(w, "\ncommands:")
	seen := map[string]bool{}
	for _, r := range rows {
		if r.Command != "" && !seen[r.Command] {
			seen[r.Command] = true
			fmt.Fprintf(w, "  %-9s %s\n", r.Section+":", r.Command)
		}
	}
}

func logf(o Options, format string, args ...any) {
	fmt.Fprintf(o.Log, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func mib(kib int64) string { return fmt.Sprintf("%.0f MiB", float64(kib)/1024) }

func secs(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f s", d.Seconds())
}

func quoted(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if strings.ContainsAny(a, " \t") {
			out[i] = "'" + a + "'"
		}
	}
	return strings.Join(out, " ")
}
