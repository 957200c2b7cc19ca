package campaign

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
)

// Shrinking looks for a smaller test that still finds what an invalid run found: fewer
// faults, fewer nodes and clients, a shorter run, one variant of a fault in place of
// all its variants (kill:all for kill). Each candidate is one step smaller
// than the smallest kept so far and is run Runs times (seeds from the run's own); the
// anomaly is probabilistic, so a candidate is kept only when it is caught in at least
// half its runs. It stops when no step is kept, or before a candidate that would not
// fit in the budget.
type Shrinking struct {
	// Spec is the invalid run's (harness.LoadReplay).
	Spec harness.Spec
	// Runs is how many runs each candidate gets; Budget bounds the whole search.
	Runs   int
	Budget time.Duration
	// now is the clock the budget is spent on (nil: time.Now): a seam for tests.
	now func() time.Time
}

// Candidate is one test tried and what its runs found.
type Candidate struct {
	Spec harness.Spec
	// Change is what makes it smaller than the one it came from ("" for the run given).
	Change        string
	Runs, Invalid int
	Kept          bool
	// Dir is its campaign directory; Report an invalid run's report, if one was.
	Dir, Report string
}

// ShrinkResult is what a shrinking tried, in order, and the smallest test kept (the
// run given, when nothing smaller reproduced); Stopped says why it ended early, if it
// did (the budget, an interrupt, a broken run).
type ShrinkResult struct {
	Tried    []Candidate
	Smallest Candidate
	Stopped  string
}

// steps are the ways one test is made one step smaller, most effective first: each
// returns the smaller spec and what changed, or false when it cannot shrink s further.
var steps = []func(s harness.Spec) []shrinkStep{
	func(s harness.Spec) []shrinkStep { // drop one fault entry
		if len(s.Nemesis) < 2 {
			return nil
		}
		var out []shrinkStep
		for i, f := range s.Nemesis {
			t := s
			t.Nemesis = slices.Delete(slices.Clone(s.Nemesis), i, i+1)
			out = append(out, shrinkStep{t, "without " + f})
		}
		return out
	},
	func(s harness.Spec) []shrinkStep { // halve the run
		if s.TimeLimit.D() < 20*time.Second {
			return nil
		}
		t := s
		t.TimeLimit = harness.Duration(s.TimeLimit.D() / 2)
		return []shrinkStep{{t, "time limit " + t.TimeLimit.String()}}
	},
	func(s harness.Spec) []shrinkStep { // two nodes fewer (a majority still survives one fault)
		if s.Nodes < 5 {
			return nil
		}
		t := s
		t.Nodes = s.Nodes - 2
		return []shrinkStep{{t, fmt.Sprintf("%d nodes", t.Nodes)}}
	},
	func(s harness.Spec) []shrinkStep { // half the clients
		if s.Concurrency < 2 {
			return nil
		}
		t := s
		t.Concurrency = s.Concurrency / 2
		return []shrinkStep{{t, fmt.Sprintf("%d clients", t.Concurrency)}}
	},
	func(s harness.Spec) []shrinkStep { // one variant of a fault in place of all of them
		var out []shrinkStep
		for i, f := range s.Nemesis {
			if strings.ContainsAny(f, ":+") {
				continue // a variant already, or a combination
			}
			d, ok := nemesis.Lookup(nemesis.Kind(f))
			if !ok || len(d.VariantNames()) < 2 {
				continue
			}
			for _, v := range d.VariantNames() {
				t := s
				t.Nemesis = slices.Clone(s.Nemesis)
				t.Nemesis[i] = f + ":" + v
				out = append(out, shrinkStep{t, "only " + t.Nemesis[i]})
			}
		}
		return out
	},
}

type shrinkStep struct {
	spec   harness.Spec
	change string
}

// Shrink runs the search under o.Results (a directory of its own: each candidate a
// campaign directory in it), printing a line per candidate to o.Out, and writes the
// smallest test kept as a spec file (shrunk.yaml) beside them. It stops when ctx ends,
// after the runs in flight. dir is the search's directory.
func (sh Shrinking) Shrink(ctx context.Context, o Options) (res ShrinkResult, dir string, err error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if sh.Runs < 1 {
		return res, "", &harness.UsageError{Msg: fmt.Sprintf("shrink: --runs %d: want at least 1", sh.Runs)}
	}
	dir, err = results.NewRunDir(o.Results, sh.Spec.Name+"-shrink", time.Now())
	if err != nil {
		return res, "", err
	}
	now := sh.now
	if now == nil {
		now = time.Now
	}
	start := now()
	res.Smallest = Candidate{Spec: sh.Spec, Runs: 1, Invalid: 1, Kept: true}
	fmt.Fprintf(out, "shrinking %s: %s\n  %d runs a candidate, kept when caught in at least half; budget %v; %s\n",
		sh.Spec.Name, describeSpec(sh.Spec), sh.Runs, sh.Budget, dir)
	// a candidate's cost: its runs, each the time limit and the run's own overhead
	cost := func(s harness.Spec) time.Duration {
		return time.Duration(sh.Runs) * (s.TimeLimit.D() + s.Recovery.D() + 20*time.Second)
	}
	try := func(st shrinkStep) (Candidate, bool) {
		c := Candidate{Spec: st.spec, Change: st.change}
		name := fmt.Sprintf("candidate-%02d", len(res.Tried)+1)
		spec := st.spec
		spec.Name = name
		camp := &Campaign{Name: name, Runs: sh.Runs, Seed: sh.Spec.Seed, Parallel: 1,
			Scenarios: []Scenario{{Name: name, Spec: spec, Expect: results.ExpectInvalid, MinDetection: 0.5}}}
		po := o
		po.Results, po.Out, po.Failfast = dir, io.Discard, false
		ix, cdir, err := camp.Run(ctx, po)
		c.Dir = cdir
		if err != nil {
			res.Stopped = err.Error()
			return c, false
		}
		for _, r := range ix.Runs {
			c.Runs++
			if r.Exit == results.ExitInvalid {
				c.Invalid++
				if c.Report == "" {
					c.Report = filepath.Join(cdir, r.Dir, results.ReportFile)
				}
			}
		}
		c.Kept = c.Runs == sh.Runs && 2*c.Invalid >= c.Runs && c.Invalid > 0
		res.Tried = append(res.Tried, c)
		mark := "dropped"
		if c.Kept {
			mark = "KEPT"
		}
		fmt.Fprintf(out, "  %-32s caught %d/%d  %-7s  %s\n", st.change, c.Invalid, c.Runs, mark, cdir)
		return c, true
	}
	for progress := true; progress && res.Stopped == ""; {
		progress = false
	search:
		for _, step := range steps {
			for _, st := range step(res.Smallest.Spec) {
				switch {
				case ctx.Err() != nil:
					res.Stopped = "interrupted: " + context.Cause(ctx).Error()
					break search
				case sh.Budget > 0 && now().Sub(start)+cost(st.spec) > sh.Budget:
					res.Stopped = fmt.Sprintf("the budget (%v) has no room for another candidate", sh.Budget)
					break search
				}
				c, ok := try(st)
				if !ok {
					break search
				}
				if ctx.Err() != nil {
					res.Stopped = "interrupted: " + context.Cause(ctx).Error()
					break search
				}
				if c.Kept {
					res.Smallest, progress = c, true
					break search // shrink from the new smallest, from the first step again
				}
			}
		}
	}
	if res.Stopped != "" {
		fmt.Fprintf(out, "stopped: %s\n", res.Stopped)
	}
	b, err := harness.SpecFile(res.Smallest.Spec)
	if err != nil {
		return res, dir, err
	}
	path := filepath.Join(dir, "shrunk.yaml")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return res, dir, fmt.Errorf("shrink: %w", err)
	}
	fmt.Fprintf(out, "smallest: %s", describeSpec(res.Smallest.Spec))
	if res.Smallest.Change != "" {
		fmt.Fprintf(out, " (caught %d/%d)\n", res.Smallest.Invalid, res.Smallest.Runs)
	} else {
		fmt.Fprintf(out, " (the run given: nothing smaller was caught often enough)\n")
	}
	fmt.Fprintf(out, "spec:     %s\nreplay:   faultline test -f %s\n", path, path)
	if res.Smallest.Report != "" {
		fmt.Fprintf(out, "report:   %s\n", res.Smallest.Report)
	}
	return res, dir, nil
}

// describeSpec is what shrinking changes of a spec, in a line.
func describeSpec(s harness.Spec) string {
	nem := strings.Join(s.Nemesis, ",")
	if nem == "" {
		nem = "none"
	}
	return fmt.Sprintf("nemesis %s, %d nodes, %d clients, %v", nem, s.Nodes, s.Concurrency, s.TimeLimit)
}
