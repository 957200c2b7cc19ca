package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/faultline/faultline/checker/sim"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/internal/procstat"
)

// proc is one whole-process measurement.
type proc struct {
	took   time.Duration
	maxRSS int64 // KiB
	code   int
	out    string
}

// measure runs the command to its end and returns its wall time, peak RSS and exit code.
//
// The peak is the child's own VmHWM, read from /proc while it runs (every 2 ms; the high
// water mark only rises, so the last reading is the peak but for the child's final
// milliseconds). Not its rusage: Go starts a child with vfork, and at exec Linux carries
// the parent's peak into the child's ru_maxrss, so a small process measured by a bench
// holding a million events read as big as the bench.
func measure(ctx context.Context, args ...string) (proc, error) {
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return proc{}, fmt.Errorf("%s: %w", quoted(args), err)
	}
	done := make(chan struct{})
	peak := make(chan int64, 1)
	go func() {
		var hwm int64
		for {
			if kb := procstat.PeakRSS(cmd.Process.Pid); kb > 0 {
				hwm = kb
			}
			select {
			case <-done:
				peak <- hwm
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	err := cmd.Wait()
	p := proc{took: time.Since(t0), out: out.String()}
	close(done)
	p.maxRSS = <-peak
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		p.code = ee.ExitCode()
	case err != nil:
		return p, fmt.Errorf("%s: %w", quoted(args), err)
	}
	return p, nil
}

// porcupineDir finds the Porcupine module's directory (its test_data holds the Jepsen
// histories).
func porcupineDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/anishathalye/porcupine").Output()
	if err != nil {
		return "", fmt.Errorf("go list porcupine: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// pair measures faultline check and the reference on one file, alternating which goes
// first, and returns both with whether their verdicts agree.
func pair(ctx context.Context, o Options, file string, i int, fargs ...string) (ours, ref proc, agree bool, err error) {
	fl := append([]string{o.Faultline, "check", "--out", filepath.Join(o.Dir, "out"), "--timeout", "10m"}, fargs...)
	fl = append(fl, file)
	raw := []string{o.RefCheck, file}
	run := func(first, second []string) (proc, proc, error) {
		a, err := measure(ctx, first...)
		if err != nil {
			return a, proc{}, err
		}
		b, err := measure(ctx, second...)
		return a, b, err
	}
	if i%2 == 0 {
		ours, ref, err = run(fl, raw)
	} else {
		ref, ours, err = run(raw, fl)
	}
	if err != nil {
		return ours, ref, false, err
	}
	if ours.code > 2 || ref.code > 2 {
		return ours, ref, false, fmt.Errorf("%s: faultline check exited %d (%s), the reference %d (%s)", file, ours.code,
			strings.TrimSpace(ours.out), ref.code, strings.TrimSpace(ref.out))
	}
	return ours, ref, ours.code == ref.code, nil
}

func checkerRows(ctx context.Context, o Options) ([]Row, error) {
	var rows []Row
	pdir, err := porcupineDir(ctx)
	if err != nil {
		return rows, err
	}
	all, _ := filepath.Glob(filepath.Join(pdir, "test_data", "jepsen", "*.log"))
	var logs, empty []string
	for _, f := range all {
		if fi, err := os.Stat(f); err == nil && fi.Size() == 0 {
			empty = append(empty, filepath.Base(f)) // etcd_095.log: no history to check
			continue
		}
		logs = append(logs, f)
	}
	if o.Quick && len(logs) > 10 {
		logs = logs[:10]
	}
	logf(o, "checker: %d Jepsen histories, faultline check and Porcupine, whole process each", len(logs))
	var ours, ref time.Duration
	var oursRSS, refRSS int64
	agree := 0
	for i, f := range logs {
		a, b, ok, err := pair(ctx, o, f, i, "--format", "jepsen-log")
		if err != nil {
			return rows, err
		}
		ours, ref = ours+a.took, ref+b.took
		oursRSS, refRSS = max(oursRSS, a.maxRSS), max(refRSS, b.maxRSS)
		if ok {
			agree++
		}
	}
	if len(logs) > 0 {
		name := fmt.Sprintf("Jepsen corpus (Porcupine's test_data), %d histories (verdicts agree: %d)", len(logs), agree)
		if len(empty) > 0 {
			name += fmt.Sprintf("; %d empty file left out (%s)", len(empty), strings.Join(empty, ", "))
		}
		rows = append(rows, Row{Section: "checker", Name: name,
			Ours: secs(ours) + ", " + mib(oursRSS), Ref: secs(ref) + ", " + mib(refRSS), Ratio: ours.Seconds() / ref.Seconds(),
			Goal: "≤ 1.2x", Command: "faultline check --format jepsen-log FILE  vs  porcheck FILE, each of " + filepath.Join(pdir, "test_data/jepsen/*.log")})
	}
	type gen struct{ ops, clients int }
	gens := []gen{{10_000, 10}, {10_000, 100}, {100_000, 10}, {100_000, 100}, {1_000_000, 10}, {1_000_000, 100}}
	if o.Quick {
		gens = gens[:2]
	}
	for i, g := range gens {
		file := filepath.Join(o.Dir, fmt.Sprintf("register-%d-%d.jsonl", g.ops, g.clients))
		if err := writeSim(file, sim.Config{Seed: uint64(i + 1), Ops: g.ops, Procs: g.clients, Info: 0.05, Keys: 8, OpsPerKey: 200}); err != nil {
			return rows, err
		}
		name := fmt.Sprintf("register %s ops, %d clients, 8 keys rotated every 200 ops, 5%% indeterminate", count(g.ops), g.clients)
		logf(o, "checker: %s", name)
		row := Row{Section: "checker", Name: name, Goal: "≤ 1.0x",
			Command: "faultline check --workload register FILE  vs  porcheck FILE (FILE from checker/sim)"}
		switch {
		case g.ops >= 1_000_000 && g.clients >= 100:
			row.Goal = "≤ 60 s, ≤ 2 GB"
		case g.ops >= 1_000_000:
			row.Goal = "≤ 0.5x, ≤ 2 s, ≤ porcheck's memory"
		case g.ops >= 100_000:
			row.Goal = "≤ 0.5x"
		}
		if g.ops >= 1_000_000 && g.clients >= 100 {
			// Porcupine alone needs minutes and tens of GB here: faultline only.
			a, err := measure(ctx, o.Faultline, "check", "--out", filepath.Join(o.Dir, "out"), "--timeout", "5m", "--workload", "register", file)
			if err != nil {
				return rows, err
			}
			row.Ours, row.Ref = fmt.Sprintf("%s, %s (exit %d)", secs(a.took), mib(a.maxRSS), a.code), "not run (minutes, tens of GB)"
			rows = append(rows, row)
			_ = os.Remove(file)
			continue
		}
		a, b, ok, err := pair(ctx, o, file, i, "--workload", "register")
		if err != nil {
			return rows, err
		}
		row.Ours, row.Ref = secs(a.took)+", "+mib(a.maxRSS), secs(b.took)+", "+mib(b.maxRSS)
		row.Ratio = a.took.Seconds() / b.took.Seconds()
		if !ok || a.code != 0 {
			row.Name += fmt.Sprintf(" — VERDICTS DIFFER (faultline exit %d, reference exit %d)", a.code, b.code)
		}
		rows = append(rows, row)
		_ = os.Remove(file)
	}
	row, err := txnRow(ctx, o)
	if err != nil {
		return rows, err
	}
	rows = append(rows, row)
	if row, err = keyspaceRow(ctx, o); err != nil {
		return rows, err
	}
	return append(rows, row), nil
}

// keyspaceRow checks a keyspace history the size of a 60 s, 10-client kubernetes run
// (a sim's: creates, conditional updates and deletes, gets, list pages; 5%
// indeterminate) against the register check of a history of as many operations.
func keyspaceRow(ctx context.Context, o Options) (Row, error) {
	n := 60_000
	if o.Quick {
		n = 10_000
	}
	var files [2]string
	for i, w := range []string{"keyspace", ""} { // "": the sim's registers
		files[i] = filepath.Join(o.Dir, fmt.Sprintf("sim%d-%d.jsonl", i, n))
		if err := writeSim(files[i], sim.Config{Seed: 41, Ops: n, Procs: 10, Info: 0.05, Keys: 8, OpsPerKey: 200, Workload: w}); err != nil {
			return Row{}, err
		}
		defer os.Remove(files[i])
	}
	logf(o, "checker: keyspace and register, %s operations each", count(n))
	a, err := measure(ctx, o.Faultline, "check", "--out", filepath.Join(o.Dir, "out"), "--workload", "kubernetes", files[0])
	if err != nil {
		return Row{}, err
	}
	b, err := measure(ctx, o.Faultline, "check", "--out", filepath.Join(o.Dir, "out"), "--workload", "register", files[1])
	if err != nil {
		return Row{}, err
	}
	name := fmt.Sprintf("keyspace (kubernetes) %s ops, 10 clients, 5%% indeterminate, against register of as many", count(n))
	if a.code != 0 || b.code != 0 {
		name += fmt.Sprintf(" — NOT VALID (exits %d, %d)", a.code, b.code)
	}
	return Row{Section: "checker", Name: name, Ours: secs(a.took) + ", " + mib(a.maxRSS), Ref: secs(b.took) + ", " + mib(b.maxRSS),
		Ratio: a.took.Seconds() / b.took.Seconds(), Goal: "seconds",
		Command: "faultline check --workload kubernetes FILE  vs  faultline check --workload register FILE2 (both from checker/sim)"}, nil
}

// elleRate is Elle's published checking rate on the JVM, in transactions a second
// (100-160 thousand, Kingsbury and Alvaro, VLDB 2020): the reference for the txn row,
// as no JVM is here to run it.
const elleRate = 130_000

// txnRow checks a generated list-append history of a million transactions (100
// thousand with Quick) and compares the time with what Elle's rate would take.
func txnRow(ctx context.Context, o Options) (Row, error) {
	n := 1_000_000
	if o.Quick {
		n = 100_000
	}
	file := filepath.Join(o.Dir, fmt.Sprintf("txn-%d.jsonl", n))
	if err := writeSim(file, sim.Config{Seed: 31, Ops: n, Procs: 10, Info: 0.01, Keys: 8, OpsPerKey: 64, Workload: "txn"}); err != nil {
		return Row{}, err
	}
	defer os.Remove(file)
	logf(o, "checker: txn, %s transactions", count(n))
	a, err := measure(ctx, o.Faultline, "check", "--out", filepath.Join(o.Dir, "out"), "--workload", "txn", file)
	if err != nil {
		return Row{}, err
	}
	elle := time.Duration(float64(n) / elleRate * float64(time.Second))
	name := fmt.Sprintf("txn (list-append, Elle-style) %s transactions of 1-4 micro-ops, 10 clients, 8 keys rotated every 64 micro-ops", count(n))
	if a.code != 0 {
		name += fmt.Sprintf(" — NOT VALID (exit %d)", a.code)
	}
	return Row{Section: "checker", Name: name, Ours: secs(a.took) + ", " + mib(a.maxRSS),
		Ref: secs(elle) + " (Elle's published 100-160k txn/s on the JVM, at 130k)", Ratio: a.took.Seconds() / elle.Seconds(),
		Goal: "≤ 10 s, ≤ 2 GB", Command: "faultline check --workload txn FILE (FILE from checker/sim)"}, nil
}

func count(n int) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000:
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// writeSim writes a simulated history as JSONL, then collects the bench's own garbage
// and returns it to the OS: the simulation of a million operations leaves the bench a
// heap of a gigabyte or more, and a collection or the scavenger working through it
// beside the first checker measured took both cores' time from it (the check of 1M
// operations took 2.0-2.6 s as the bench's first measurement, 1.2 s as the next). The
// txn row did this on its own; now every generated history gets it.
func writeSim(path string, cfg sim.Config) error {
	w, err := history.CreateWriter(path, time.Hour)
	if err != nil {
		return err
	}
	for _, e := range sim.Simulate(cfg) {
		if err := w.Append(e); err != nil {
			w.Close()
			return err
		}
	}
	err = w.Close()
	debug.FreeOSMemory()
	return err
}
