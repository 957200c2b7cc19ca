package campaign

import (
	"context"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

// Bisection is a search for the first of an ordered list of values of one spec key (a
// target's release: etcd-version; binaries named by a target var: target-var) at which
// a scenario stops meeting its expectation: the release that broke what the older
// ones did right (expect valid), or the one where a bug stopped being caught (expect
// invalid).
type Bisection struct {
	// Base is a spec file's text (as faultline test -f reads it): the scenario.
	Base []byte
	// Key is the spec key that varies (as in a spec file: etcd-version, target-var);
	// Values its values, oldest first.
	Key    string
	Values []string
	// Runs is how many seeds each value gets, from Seed; Expect what the scenario
	// expects of the first value (valid or invalid).
	Runs   int
	Seed   int64
	Expect string
}

// Probe is what one value's runs found.
type Probe struct {
	Value string
	// Runs counts the runs made, Invalid those judged invalid; Detection is
	// Invalid/Runs. Fails says that the value does not meet the expectation: for expect
	// valid, a run was invalid; for expect invalid, the bug was caught in fewer runs
	// than DefaultMinDetection asks. Errors counts runs that ended in a harness error
	// (the probe decides nothing then).
	Runs, Invalid, Unknown, Errors int
	Detection                      float64
	Fails                          bool
	// Dir is the probe's campaign directory.
	Dir string
}

// BisectResult is what a bisection found: every probe in the order made, and the
// first value that fails with the last that meets the expectation before it (First is
// "" when there is no such boundary: Why says why).
type BisectResult struct {
	Probes      []Probe
	First, Last string
	Why         string
}

// Exit is the bisection's exit code: 0 when it found the first failing value, 2 when
// the values have no boundary (the first already fails, or the last still meets the
// expectation: nothing to find), 3 when a run broke or the bisection was interrupted.
func (r BisectResult) Exit() results.ExitCode {
	switch {
	case r.First != "":
		return results.ExitValid
	case strings.HasPrefix(r.Why, "interrupted") || strings.HasPrefix(r.Why, "a run"):
		return results.ExitError
	}
	return results.ExitUnknown
}

// plan resolves the bisection: one scenario per value, every spec checked, before
// anything runs. A bad key, value or spec is a *harness.UsageError naming it.
func (b Bisection) plan() (*Campaign, error) {
	usage := func(format string, args ...any) error { return &harness.UsageError{Msg: fmt.Sprintf(format, args...)} }
	switch {
	case b.Key == "":
		return nil, usage("bisect: --key: name the spec key that varies (etcd-version, target-var, …)")
	case len(b.Values) < 2:
		return nil, usage("bisect: --values: want at least two, oldest first (got %d)", len(b.Values))
	case b.Runs < 1:
		return nil, usage("bisect: --runs %d: want at least 1", b.Runs)
	case b.Expect != results.ExpectValid && b.Expect != results.ExpectInvalid:
		return nil, usage("bisect: --expect %q: want valid or invalid", b.Expect)
	}
	var base yaml.Node
	if err := yaml.Unmarshal(b.Base, &base); err != nil {
		return nil, usage("bisect: the spec: %v", err)
	}
	f := file{Name: "bisect-" + scenarioName(b.Key), Runs: b.Runs, Seed: b.Seed}
	if len(base.Content) > 0 {
		f.Base = *base.Content[0]
	}
	seen := map[string]bool{}
	for _, v := range b.Values {
		name := scenarioName(v)
		if seen[name] {
			return nil, usage("bisect: --values: %s twice", v)
		}
		seen[name] = true
		n, err := overrideNode(map[string]string{b.Key: v})
		if err != nil {
			return nil, usage("bisect: %s=%s: %v", b.Key, v, err)
		}
		f.Scenarios = append(f.Scenarios, fileScenario{Name: name, Spec: *n, Expect: b.Expect})
	}
	c, err := build(f, Overrides{})
	if err != nil {
		return nil, usage("bisect: %v", err)
	}
	return c, nil
}

// scenarioName makes a value fit to name a directory.
func scenarioName(v string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r == '=' || r == ',' {
			return '_'
		}
		return r
	}, strings.Trim(v, "/ "))
}

// Bisect checks every value's spec and prepares it (a release that does not exist is
// named, exit 4, before any run: preparing builds what the runs need), then probes the
// first value (it must meet the expectation), the last (it must not), and halves the
// range between until the first failing value is next to the last that meets it. Each
// probe is a campaign of Runs seeds in o.Results, its line printed to o.Out as it ends.
// ctx's end stops it after the runs in flight, with what was found so far.
func (b Bisection) Bisect(ctx context.Context, o Options, prepare func(context.Context, harness.Spec) error) (BisectResult, error) {
	var res BisectResult
	c, err := b.plan()
	if err != nil {
		return res, err
	}
	if err := c.Check(ctx); err != nil {
		return res, err
	}
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	if prepare != nil {
		for _, s := range c.Scenarios {
			if err := prepare(ctx, s.Spec); err != nil {
				return res, err
			}
		}
	}
	fmt.Fprintf(out, "bisect %s over %d values, %d runs each, expecting %s of the first\n", b.Key, len(b.Values), b.Runs, b.Expect)
	probed := map[int]Probe{}
	probe := func(i int) (Probe, error) {
		if p, ok := probed[i]; ok {
			return p, nil
		}
		sub := &Campaign{Name: c.Name + "-" + c.Scenarios[i].Name, Runs: c.Runs, Seed: c.Seed, Parallel: 1, Scenarios: c.Scenarios[i : i+1]}
		po := o
		po.Out, po.Failfast = io.Discard, false
		ix, dir, err := sub.Run(ctx, po)
		p := Probe{Value: b.Values[i], Dir: dir}
		if len(ix.Rows()) > 0 {
			row := ix.Rows()[0]
			p.Runs, p.Invalid, p.Unknown, p.Errors = row.Runs, row.Invalid, row.Unknown, row.Errors
			p.Detection = row.Detection
			p.Fails = row.Failed != ""
		}
		probed[i] = p
		res.Probes = append(res.Probes, p)
		verdict := "meets it"
		if p.Fails {
			verdict = "FAILS"
		}
		fmt.Fprintf(out, "  %-20s %d runs: %d invalid (%.0f%%), %d unknown, %d errors — %s  %s\n",
			p.Value, p.Runs, p.Invalid, 100*p.Detection, p.Unknown, p.Errors, verdict, dir)
		switch {
		case err != nil:
			return p, err
		case ctx.Err() != nil:
			return p, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		case p.Errors > 0 || p.Runs < c.Runs:
			return p, fmt.Errorf("a run of %s=%s broke (see %s): the bisection cannot trust this value", b.Key, p.Value, dir)
		}
		return p, nil
	}
	stop := func(err error) (BisectResult, error) {
		res.Why = err.Error()
		fmt.Fprintf(out, "stopped: %s\n", res.Why)
		if strings.HasPrefix(res.Why, "interrupted") || strings.HasPrefix(res.Why, "a run") {
			return res, nil
		}
		return res, err
	}
	lo, hi := 0, len(b.Values)-1
	if p, err := probe(lo); err != nil {
		return stop(err)
	} else if p.Fails {
		res.Why = fmt.Sprintf("the first value, %s, already fails the expectation (%s): nothing before it to compare", p.Value, b.Expect)
		fmt.Fprintln(out, res.Why)
		return res, nil
	}
	if p, err := probe(hi); err != nil {
		return stop(err)
	} else if !p.Fails {
		res.Why = fmt.Sprintf("the last value, %s, still meets the expectation (%s): no value fails it", p.Value, b.Expect)
		fmt.Fprintln(out, res.Why)
		return res, nil
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		p, err := probe(mid)
		if err != nil {
			return stop(err)
		}
		if p.Fails {
			hi = mid
		} else {
			lo = mid
		}
	}
	res.First, res.Last = b.Values[hi], b.Values[lo]
	fmt.Fprintf(out, "first failing: %s=%s (the last meeting the expectation: %s)\n", b.Key, res.First, res.Last)
	return res, nil
}
