package harness

import (
	"go.yaml.in/yaml/v3"

	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// check judges the recorded history, writes results.json (and the views of a violation)
// and report.html, prints the summary and the JUnit report, and returns the verdict, when the first
// violation happened (negative: none named) and what could not be written.
//
// The verdict written is the run's, not only the checker's: a run that was interrupted
// or ended in an error proves less than its history seems to, so a valid check becomes
// unknown, with the reason in results.json (unknown_because) and the JUnit report; an
// invalid one stays invalid (a violation found is real). A results.json that cannot be
// written is an error of the run: a gate must not pass on files that are not there.
// check checks the run's history and writes results.json, the report and the JUnit
// file; it returns out with the verdict, the first violation, the stats and the
// anomalies' kinds set, and the error of writing what it writes joined to its Err.
func (r *run) check(ctx context.Context, out Outcome) Outcome {
	out.Verdict, out.Violation = checker.Unknown, -1
	if r.rec == nil {
		return out
	}
	r.phase = "checking"
	events, herr := r.history()
	h := checker.Pair(events)
	res := checker.CheckHistory(ctx, h, checker.Options{Model: modelOf(r.spec.Workload), Timeout: r.spec.CheckTimeout.D(),
		MinAvailability: r.spec.MinAvailability})
	if h.Events() > checker.SmallHistory {
		runtime.GC() // the check's garbage is dead: the report's GC target starts from the history (see cmd/faultline check)
	}
	if c := r.consistency; c != nil {
		v := checker.Unknown
		if c.Valid != nil && *c.Valid {
			v = checker.Valid
		} else if c.Valid != nil {
			v = checker.Invalid
		}
		res.AddExternal(checker.External{Name: c.Name, Verdict: v, Detail: c.Detail})
	}
	if out.Interrupted {
		res.MakeUnknown(checker.ReasonInterrupted, "the run was interrupted: its history stops where it was cut")
	}
	if out.Err != nil {
		res.MakeUnknown(checker.ReasonRunError, "the run ended in an error: "+out.Err.Error())
	}
	var errs []error
	if herr != nil {
		res.MakeUnknown(checker.ReasonRunError, herr.Error())
		errs = append(errs, herr)
	}
	if err := results.WriteCheck(r.dir, res); err != nil {
		errs = append(errs, fmt.Errorf("write results: %w", err))
	}
	report, err := results.WriteReport(r.dir, res, h, results.ReportOptions{})
	if err != nil {
		errs = append(errs, fmt.Errorf("write report: %w", err))
	}
	if r.spec.JUnit != "" {
		if err := results.WriteJUnit(r.spec.JUnit, res, results.JUnitInfo{Suite: r.spec.Name, Report: report,
			Results: filepath.Join(r.dir, results.ResultsFile), Time: time.Since(r.base)}); err != nil {
			errs = append(errs, err)
		}
	}
	werr := errors.Join(errs...)
	if werr != nil {
		r.logf("%v", werr)
		out.Err = errors.Join(out.Err, werr)
	}
	if at, ok := res.FirstViolation(events); ok && res.Verdict == checker.Invalid {
		out.Violation = at
	}
	r.summary(out, res, res.Verdict, events)
	out.Verdict, out.Stats, out.Anomalies = res.Verdict, res.Stats, res.AnomalyKinds()
	for _, w := range res.Warnings {
		out.Warnings = append(out.Warnings, w.Code)
	}
	return out
}

// history reads the run's history back from history.jsonl (the recorder streams it there
// and keeps nothing) and checks that it holds every event recorded: a history the disk
// lost part of is no evidence.
func (r *run) history() ([]history.Event, error) {
	events, _, err := history.ReadFile(filepath.Join(r.dir, "history.jsonl"))
	if err != nil {
		return events, fmt.Errorf("read the history back: %w", err)
	}
	if n := r.rec.Len(); int64(len(events)) != n {
		return events, fmt.Errorf("the history file holds %d of the %d events recorded", len(events), n)
	}
	return events, nil
}

func (r *run) summary(out Outcome, res checker.Result, verdict checker.Verdict, events []history.Event) {
	w := r.env.Stdout
	counts := map[history.Type]int{}
	faults := map[string]int{}
	for _, e := range events {
		if e.IsNemesis() {
			if d, start, ok := nemesis.ByEvent(e.F); e.Type == history.OK && ok && start {
				faults[string(d.Kind)]++
			} else if e.Type == history.OK && strings.Contains(e.F, nemesis.ComboSep) && !strings.HasPrefix(e.F, "heal-") {
				faults[e.F]++ // a combination
			}
			continue
		}
		counts[e.Type]++
	}
	fmt.Fprintf(w, "\nverdict: %s\n", strings.ToUpper(string(verdict)))
	if out.Err != nil {
		fmt.Fprintf(w, "error:   %v\n", out.Err)
	}
	if out.Interrupted {
		fmt.Fprintf(w, "note:    the run was interrupted; its history is kept\n")
	}
	fmt.Fprintf(w, "ops:     %d invoked, %d ok, %d fail, %d info\n", counts[history.Invoke], counts[history.OK], counts[history.Fail], counts[history.Info])
	fmt.Fprintf(w, "%s\n", res.Summary())
	if out.Violation >= 0 {
		fmt.Fprintf(w, "first:   the earliest operation blamed was invoked %v into the run\n", out.Violation.Round(time.Millisecond))
	}
	keys := make([]string, 0, len(faults))
	for k := range faults {
		keys = append(keys, fmt.Sprintf("%s×%d", k, faults[k]))
	}
	slices.Sort(keys)
	if len(keys) == 0 {
		keys = []string{"none"}
	}
	fmt.Fprintf(w, "faults:  %s\n", strings.Join(keys, " "))
	if r.cl != nil {
		if exits := r.cl.Exits(); len(exits) > 0 {
			fmt.Fprintf(w, "exits:   nodes that exited by themselves: %s (see their logs)\n", strings.Join(exits, ", "))
		}
	}
	fmt.Fprintf(w, "results: %s\n", r.dir)
	fmt.Fprintf(w, "replay:  %s\n", ReplayCommand(r.spec))
}

// ReplayCommand is the command line that runs the same test again with the same seed.
func ReplayCommand(s Spec) string {
	args := replayArgs(s)
	for i, a := range args {
		args[i] = shellQuote(a)
	}
	return "faultline test " + strings.Join(args, " ")
}

// replayArgs are the flags of ReplayCommand, unquoted.
func replayArgs(s Spec) []string {
	nem := strings.Join(s.Nemesis, ",")
	if len(s.Nemesis) == 0 {
		nem = "none"
	}
	args := []string{"--target", s.Target, "--runtime", s.Runtime,
		"--nodes", fmt.Sprint(s.Nodes), "--workload", string(s.Workload), "--nemesis", nem,
		"--nemesis-interval", s.NemesisInterval.String(), "--time-limit", s.TimeLimit.String(),
		"--concurrency", fmt.Sprint(s.Concurrency), "--keys", fmt.Sprint(s.Keys),
		"--ops-per-key", fmt.Sprint(s.OpsPerKey), "--op-timeout", s.OpTimeout.String(),
		"--recovery", s.Recovery.String(), "--check-timeout", s.CheckTimeout.String(), "--seed", fmt.Sprint(s.Seed)}
	if s.Rate > 0 {
		args = append(args, "--rate", fmt.Sprint(s.Rate))
	}
	if s.Clock != "" {
		args = append(args, "--clock", s.Clock)
	}
	if s.CompactInterval > 0 {
		args = append(args, "--compact-interval", s.CompactInterval.String())
	}
	if o := s.Options(); o != nil {
		args = append(args, o.Args()...)
	}
	return args
}

// SpecFile renders s as a spec file (faultline test -f reads it back as s): its flags as
// YAML keys, a flag given bare as true.
func SpecFile(s Spec) ([]byte, error) {
	args := replayArgs(s)
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i < len(args); i++ {
		k, v, eq := strings.Cut(strings.TrimPrefix(args[i], "--"), "=")
		if !eq {
			v = "true"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
				v, i = args[i+1], i+1
			}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, &yaml.Node{Kind: yaml.ScalarNode, Value: v})
	}
	return yaml.Marshal(n)
}

// modelOf is the check a workload's histories get.
func modelOf(k workload.Kind) checker.Model {
	if d, ok := workload.Lookup(k); ok {
		return d.Model
	}
	return ""
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// progressLoop calls env.Progress about once a second until ctx ends; the returned func
// waits for the loop to stop.
func (r *run) progressLoop(ctx context.Context) func() {
	if r.env.Progress == nil {
		return func() {}
	}
	done, stop := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }() // progress is a view: losing it must not end the run
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start := time.Now()
		var lastOps int64
		lastT := start
		leader := ""
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-stop:
				return
			case now := <-t.C:
				ok, fail, info := r.prog.Counts()
				total := ok + fail + info
				if i%3 == 0 {
					lctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
					leader, _ = r.target.Leader(lctx)
					cancel()
				}
				rate := float64(total-lastOps) / now.Sub(lastT).Seconds()
				lastOps, lastT = total, now
				r.env.Progress(Status{Elapsed: now.Sub(start), Limit: r.spec.TimeLimit.D(), OK: ok, Fail: fail,
					Info: info, OpsPerSec: rate, Fault: r.sched.Active(), Leader: leader, Phase: r.phase})
			}
		}
	}()
	return func() { close(stop); <-done }
}
