package harness

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/results"
)

// ZooCase is one row of the bug zoo: one of raftnode's deliberate bugs and the faults
// that should expose it. Unsafe "" is the correct node, which must never be invalid.
type ZooCase struct {
	Unsafe  string   `json:"unsafe"`
	Nemesis []string `json:"nemesis"`
}

// ZooCases are the zoo's rows: each unsafe mode with the fault that exposes it (see
// package node), and the correct node under every fault there is.
var ZooCases = []ZooCase{
	{Unsafe: "stale-read", Nemesis: []string{"partition"}},
	{Unsafe: "lease-read", Nemesis: []string{"clock", "pause"}},
	{Unsafe: "ack-before-commit", Nemesis: []string{"partition"}},
	{Unsafe: "ack-before-fsync", Nemesis: []string{"kill"}},
	{Unsafe: "", Nemesis: []string{"all"}},
}

// ZooRow is what the runs of one case found.
type ZooRow struct {
	ZooCase
	Runs    int `json:"runs"`
	Invalid int `json:"invalid"`
	Unknown int `json:"unknown"`
	Errors  int `json:"errors"`
	// Detections are the times into each invalid run at which the earliest operation
	// blamed was invoked; Median is their median (zero: none).
	Detections []time.Duration `json:"detections_ns"`
	Median     time.Duration   `json:"median_detection_ns"`
	Dirs       []string        `json:"dirs"`
}

// Zoo runs every case runs times, with seeds base.Seed, base.Seed+1, ..., the rest of each
// run's spec from base; it writes zoo.json into a directory of its own under
// base.Results, prints a line per run and the table to w, and returns the rows. It stops
// early only when ctx ends.
func Zoo(ctx context.Context, base Spec, cases []ZooCase, runs int, w io.Writer) ([]ZooRow, string, error) {
	for _, c := range cases { // every case is checked before anything runs
		spec := base
		spec.Unsafe, spec.Nemesis, spec.Name = c.Unsafe, c.Nemesis, zooName(c)
		if _, err := spec.Resolve(); err != nil {
			return nil, "", err
		}
	}
	dir, err := results.NewRunDir(base.Results, "zoo", time.Now())
	if err != nil {
		return nil, "", err
	}
	rows := make([]ZooRow, len(cases))
	for i, c := range cases {
		rows[i] = ZooRow{ZooCase: c}
	}
	for run := range runs {
		for i, c := range cases {
			if ctx.Err() != nil {
				return rows, dir, ctx.Err()
			}
			spec := base
			spec.Unsafe, spec.Nemesis, spec.Seed = c.Unsafe, c.Nemesis, base.Seed+int64(run)
			spec.Name, spec.Results = zooName(c), dir
			spec, err := spec.Resolve()
			if err != nil {
				return rows, dir, err
			}
			out := Run(ctx, spec, Env{Stdout: io.Discard, Stderr: io.Discard})
			rows[i].add(out)
			fmt.Fprintf(w, "%-20s run %2d/%d seed %-6d %s\n", zooName(c), run+1, runs, spec.Seed, describe(out))
		}
	}
	for i := range rows {
		rows[i].Median = median(rows[i].Detections)
	}
	PrintZoo(w, rows)
	return rows, dir, results.WriteJSON(dir, "zoo.json", rows)
}

func zooName(c ZooCase) string {
	if c.Unsafe == "" {
		return "correct"
	}
	return c.Unsafe
}

func (r *ZooRow) add(out Outcome) {
	r.Runs++
	r.Dirs = append(r.Dirs, out.Dir)
	switch code := out.ExitCode(); code {
	case ExitInvalid:
		r.Invalid++
		if out.Violation >= 0 {
			r.Detections = append(r.Detections, out.Violation)
		}
	case ExitUnknown:
		r.Unknown++
	case ExitValid:
	default:
		r.Errors++
	}
}

func describe(out Outcome) string {
	s := strings.ToUpper(string(out.Verdict))
	switch {
	case out.Verdict == checker.Invalid && out.Violation >= 0:
		s += fmt.Sprintf(" (first violation at %v)", out.Violation.Round(100*time.Millisecond))
	case out.Err != nil:
		s = fmt.Sprintf("ERROR: %v", out.Err)
	}
	return s + "  " + out.Dir
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// PrintZoo prints the zoo's table: for each case, how many runs found a violation and how
// soon.
func PrintZoo(w io.Writer, rows []ZooRow) {
	fmt.Fprintf(w, "\n%-20s %-16s %6s %9s %8s %7s %17s\n", "mode", "nemesis", "runs", "invalid", "unknown", "errors", "median detection")
	for _, r := range rows {
		det := "-"
		if len(r.Detections) > 0 {
			det = r.Median.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(w, "%-20s %-16s %6d %9s %8d %7d %17s\n", zooName(r.ZooCase), strings.Join(r.Nemesis, ","), r.Runs,
			fmt.Sprintf("%d/%d", r.Invalid, r.Runs), r.Unknown, r.Errors, det)
	}
}

// ZooPassed reports whether the zoo proved what it claims: every unsafe mode found
// invalid in at least min of its runs, and the correct node never invalid (and, since a
// pass must be earned, never erroring).
func ZooPassed(rows []ZooRow, min int) (bool, []string) {
	var why []string
	for _, r := range rows {
		switch {
		case r.Unsafe == "" && r.Invalid > 0:
			why = append(why, fmt.Sprintf("the correct node was judged invalid in %d of %d runs", r.Invalid, r.Runs))
		case r.Unsafe == "" && r.Errors > 0:
			why = append(why, fmt.Sprintf("the correct node's runs ended in a harness error %d times", r.Errors))
		case r.Unsafe != "" && r.Invalid < min:
			why = append(why, fmt.Sprintf("%s was caught in %d of %d runs, fewer than %d", r.Unsafe, r.Invalid, r.Runs, min))
		}
	}
	return len(why) == 0, why
}
