package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	wl "github.com/faultline/faultline/workload"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
)

// DefaultCheckTimeout bounds the linearizability search of faultline check.
const DefaultCheckTimeout = 5 * time.Minute

type checkArgs struct {
	workload, format, out, path string
	junit                       string
	timeout                     time.Duration
	minEvidence                 int
	minAvailability             float64
}

// runCheck implements
//
//	faultline check [--workload W] [--format jsonl|jepsen-edn|jepsen-log] [--out DIR] [--junit FILE] [--timeout D] [--min-evidence N] [--min-availability F] FILE|RUNDIR
//
// It prints the verdict (with why, when it is unknown) and a summary, writes
// results.json, report.html (and linearizability.html for a violation) next to the
// history or into --out, and the JUnit report to --junit, and returns the exit code.
func runCheck(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	a, code := parseCheckArgs(args, stderr)
	if code >= 0 {
		return code
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	file, workload, err := locateHistory(a.path, a.workload)
	if err != nil {
		fmt.Fprintf(stderr, "faultline check: %v\n", err)
		return results.ExitUsage
	}
	var model checker.Model
	if d, ok := wl.Lookup(wl.Kind(workload)); ok {
		model = d.Model
	}
	// A register history (named so: by --workload or the run's test.json) is read,
	// checked and reported without a collection (see collectLater); the other checks
	// make garbage of their own (a txn graph, a keyspace's states), and a history whose
	// model is not named may be any.
	register := model == checker.Register
	if register || smallFile(file) {
		defer collectLater()()
	}
	h, info, err := readHistory(file, a.format)
	if err != nil {
		fmt.Fprintf(stderr, "faultline check: %s: %v\n", file, err)
		return results.ExitUsage
	}
	fmt.Fprintf(stdout, "faultline check %s: %d events\n", file, h.Events())
	if !register && !smallFile(file) {
		boundHeap()
	}
	if info.Torn {
		fmt.Fprintf(stdout, "note:    the last line was torn (a crash mid-write) and was dropped; the rest is checked\n")
	}
	res := checker.CheckHistory(ctx, h, checker.Options{Model: model, Timeout: a.timeout, MinEvidence: a.minEvidence, MinAvailability: a.minAvailability})
	if ctx.Err() != nil {
		res.MakeUnknown(checker.ReasonInterrupted, "the check was interrupted")
	}
	for _, c := range results.Caveats(filepath.Dir(file), h.Nemesis()) {
		res.MakeUnknown(c.Code, c.Detail)
	}
	printCheck(stdout, res)
	if !register && h.Events() > checker.SmallHistory {
		// The check's garbage (pairings, Porcupine's entries) is dead now; collecting it
		// here sets the report's GC target from what is live (the history), not from the
		// check's peak: 1M operations peaked at 1490 MB without this, 1260 MB with it.
		runtime.GC()
		boundHeap()
	}
	// A register history's read, check and report make so little garbage that a
	// collection would only mark the history to free nothing: 1M operations, one forced
	// collection marking 593 MB to free 93 took 0.8 s of CPU (see collectLater).
	dir := a.out
	if dir == "" {
		dir = filepath.Dir(file)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(stderr, "faultline check: %v\n", err)
		return results.ExitError
	}
	if err := results.WriteCheck(dir, res); err != nil {
		fmt.Fprintf(stderr, "faultline check: %v\n", err)
		return results.ExitError
	}
	fmt.Fprintf(stdout, "results: %s\n", filepath.Join(dir, results.ResultsFile))
	report, err := results.WriteReport(dir, res, h, results.ReportOptions{RunDir: filepath.Dir(file), History: file})
	if err != nil {
		fmt.Fprintf(stderr, "faultline check: %v\n", err)
		return results.ExitError
	}
	fmt.Fprintf(stdout, "report:  %s\n", report)
	if a.junit != "" {
		suite := filepath.Base(file)
		if ti, ok, _ := results.ReadTestInfo(filepath.Dir(file)); ok && ti.Name != "" {
			suite = ti.Name
		}
		if err := results.WriteJUnit(a.junit, res, results.JUnitInfo{Suite: suite, Report: report,
			Results: filepath.Join(dir, results.ResultsFile), Time: res.Elapsed}); err != nil {
			fmt.Fprintf(stderr, "faultline check: %v\n", err)
			return results.ExitError
		}
		fmt.Fprintf(stdout, "junit:   %s\n", a.junit)
	}
	if res.CanVisualize() {
		fmt.Fprintf(stdout, "view:    %s\n", filepath.Join(dir, results.VisualizationFile))
	}
	if res.Txn != nil && res.Txn.Malformed != "" && res.Verdict != checker.Invalid {
		fmt.Fprintf(stderr, "faultline check: %s is not a list-append history: %s\n", file, res.Txn.Malformed)
		return results.ExitUsage
	}
	return results.ExitFor(res.Verdict)
}

// parseCheckArgs parses flags and the one path, which may come before or after them. It
// returns an exit code >= 0 when the command should stop there.
func parseCheckArgs(args []string, stderr io.Writer) (checkArgs, results.ExitCode) {
	var a checkArgs
	fs := flag.NewFlagSet("faultline check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a.workload, "workload", "", strings.Join(wl.Names(), "|")+" (default: from the run's test.json, or guessed from the operations)")
	fs.StringVar(&a.format, "format", "", "jsonl|jepsen-edn|jepsen-log (default: from the file's extension)")
	fs.StringVar(&a.out, "out", "", "write results.json and report.html here (default: next to the history)")
	fs.StringVar(&a.junit, "junit", "", "also write a JUnit XML report here: a case per checker, and the verdict")
	fs.DurationVar(&a.timeout, "timeout", DefaultCheckTimeout, "bound on the linearizability search; expiry gives unknown")
	fs.IntVar(&a.minEvidence, "min-evidence", checker.DefaultMinEvidence, "least number of acknowledged updates, and of acknowledged reads, for any verdict but unknown (at least 1)")
	fs.Float64Var(&a.minAvailability, "min-availability", checker.DefaultMinAvailability, "warn when the system answered less than this share of the operations that completed (negative: never)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: faultline check [--workload W] [--format jsonl|jepsen-edn|jepsen-log] [--out DIR] [--junit FILE] [--timeout D] [--min-evidence N] [--min-availability F] FILE|RUNDIR")
		fs.PrintDefaults()
	}
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return a, 0
			}
			return a, results.ExitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		paths, args = append(paths, fs.Arg(0)), fs.Args()[1:]
	}
	switch {
	case len(paths) != 1:
		fmt.Fprintf(stderr, "faultline check: want one FILE or RUNDIR, got %d\n", len(paths))
	case a.workload != "" && !known(a.workload):
		fmt.Fprintf(stderr, "faultline check: --workload %q is not one of %s\n", a.workload, strings.Join(wl.Names(), ", "))
	case !slices.Contains([]string{"", "jsonl", "jepsen-edn", "jepsen-log"}, a.format):
		fmt.Fprintf(stderr, "faultline check: --format %q is not jsonl, jepsen-edn or jepsen-log\n", a.format)
	case a.timeout < 0:
		fmt.Fprintf(stderr, "faultline check: --timeout must not be negative\n")
	case a.minAvailability > 1:
		fmt.Fprintf(stderr, "faultline check: --min-availability %v is a share: at most 1\n", a.minAvailability)
	case a.minEvidence < 1:
		fmt.Fprintf(stderr, "faultline check: --min-evidence must be at least 1: no evidence is never a pass\n")
	default:
		a.path = paths[0]
		return a, -1
	}
	return a, results.ExitUsage
}

// locateHistory resolves a run directory to its history.jsonl and, unless given, the
// workload its test.json names.
func locateHistory(path, workload string) (string, string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", "", err
	}
	if !st.IsDir() {
		return path, workload, nil
	}
	file := filepath.Join(path, "history.jsonl")
	if _, err := os.Stat(file); err != nil {
		return "", "", fmt.Errorf("%s is a directory without a history.jsonl", path)
	}
	if workload == "" {
		if info, ok, _ := results.ReadTestInfo(path); ok && known(info.Workload) {
			workload = info.Workload
		}
	}
	return file, workload, nil
}

// known reports whether w names a workload.
func known(w string) bool { _, ok := wl.Lookup(wl.Kind(w)); return ok }

// readHistory reads a history in the given format, or the one its extension suggests,
// and pairs its operations. A JSONL history is paired as it is read, never held whole.
func readHistory(file, format string) (*checker.History, history.ReadInfo, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".edn":
			format = "jepsen-edn"
		case ".log", ".txt":
			format = "jepsen-log"
		default:
			format = "jsonl"
		}
	}
	if format == "jsonl" {
		p := checker.NewPairer(eventsIn(file))
		info, err := history.ReadFileEach(file, func(b []history.Event) error { p.Add(b); return nil })
		return p.History(), info, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, history.ReadInfo{}, err
	}
	defer f.Close()
	read := history.ReadJepsenLog
	if format == "jepsen-edn" {
		read = history.ReadJepsenEDN
	}
	events, info, err := read(f)
	return checker.Pair(events), info, err
}

// eventsIn estimates the events of a JSONL history from its size and its first
// megabyte's lines, a tenth over: the pairing's array is made that large once. Too
// large is not free — the collector counts the array whole, and sets its targets by
// it (a million transactions peaked 470 MB higher when it was sized for lines of 64
// bytes) — and too small costs a copy of the array.
func eventsIn(file string) int {
	f, err := os.Open(file)
	if err != nil {
		return 0
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0
	}
	buf := make([]byte, 1<<20)
	n, _ := io.ReadFull(f, buf)
	lines := bytes.Count(buf[:n], []byte{'\n'})
	if n == 0 || lines == 0 {
		return 0
	}
	return int(float64(st.Size())/float64(n)*float64(lines)*1.1) + 1024
}

// printCheck prints the verdict, with why on the same line when it is unknown
// ("verdict: UNKNOWN — no acknowledged read: …"), then the summary and the first notes.
func printCheck(w io.Writer, res checker.Result) {
	fmt.Fprintf(w, "model:   %s\n", res.Model)
	summary := res.Summary()
	if why := res.Why(); why != "" {
		fmt.Fprintf(w, "verdict: %s — %s\n", strings.ToUpper(string(res.Verdict)), why)
		// The summary opens with the same reasons: they are on the verdict line already.
		if _, rest, ok := strings.Cut(summary, "\n"); ok && strings.HasPrefix(summary, "unknown: ") {
			summary = rest
		}
	} else {
		fmt.Fprintf(w, "verdict: %s\n", strings.ToUpper(string(res.Verdict)))
	}
	fmt.Fprintln(w, summary)
	for i, n := range res.Notes {
		if i == 5 {
			fmt.Fprintf(w, "note:    … and %d more notes (see results.json)\n", len(res.Notes)-5)
			break
		}
		fmt.Fprintf(w, "note:    %s\n", n)
	}
}

// collectLater turns the collector off while a register history is read, checked and
// reported, under a memory limit of half the machine's memory, and returns what turns
// it back on. Reading makes little garbage (the decoded batches are reused; what the
// pairing keeps of them stays live), and the register check not much more (its workers
// reuse their memory from key to key), so cycles as the heap grows free little and
// rescan all the history each time: a million operations spent a third of their CPU on
// them. Settings the user made (GOGC, GOMEMLIMIT) are kept.
func collectLater() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	limit := int64(1 << 30)
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %d kB", &kb); err == nil {
			limit = max(limit, kb<<10/2)
		}
	}
	old := debug.SetMemoryLimit(limit)
	gc := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(old)
	}
}

// smallFileBytes is the size up to which a history file of any model is read, checked
// and reported without a collection (see collectLater): its garbage is tens of MB at
// most, and the one collection a 170-line Jepsen log used to trigger was a tenth of its
// whole check's CPU.
const smallFileBytes = 4 << 20

// smallFile reports whether path is a file no larger than smallFileBytes.
func smallFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Size() <= smallFileBytes
}

// boundHeap sets a soft memory limit once the history is read: what the heap holds
// then (the history, nearly all of it, live until the report is written) plus as much
// again, and at least 1 GiB more, for the check. The collector's default headroom is
// as large as everything live, history included: a history of a million transactions
// (0.9 GB) then took the process to 2.3 GB, though the check never needed more than
// 0.6 GB besides it. The limit leaves GOGC as it is, so a small history's check
// collects as before; a limit the user set (GOMEMLIMIT) is kept.
func boundHeap() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h := int64(ms.HeapAlloc)
	debug.SetMemoryLimit(h + max(h, 1<<30))
}
