package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// startupRows measures start-up alone: `faultline version` against the reference
// checker of an empty history (a small program that reads a file and exits), whole
// process each, alternating, median of n; and how much of faultline's is its
// packages' initialization (GODEBUG=inittrace=1). A lean bin/faultline (make build)
// runs check and version itself and hands every other command to faultline-full beside
// it: that one's start-up, which every run pays, is a row of its own.
func startupRows(ctx context.Context, o Options) ([]Row, error) {
	n := 21
	if o.Quick {
		n = 5
	}
	empty := filepath.Join(o.Dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, err
	}
	progs := []struct{ path, name string }{{o.Faultline, "faultline"}}
	if full := filepath.Join(filepath.Dir(o.Faultline), "faultline-full"); isFile(full) {
		progs[0].name = "faultline (lean: check and version)"
		progs = append(progs, struct{ path, name string }{full, "faultline-full (every other command)"})
	}
	var rows []Row
	for _, p := range progs {
		logf(o, "start-up: %s version and porcheck of an empty history, %d each", filepath.Base(p.path), n)
		var ours, ref []time.Duration
		for i := range n {
			a, b := []string{p.path, "version"}, []string{o.RefCheck, empty}
			if i%2 == 1 {
				a, b = b, a
			}
			pa, err := measure(ctx, a...)
			if err != nil {
				return nil, err
			}
			pb, err := measure(ctx, b...)
			if err != nil {
				return nil, err
			}
			if i%2 == 1 {
				pa, pb = pb, pa
			}
			ours, ref = append(ours, pa.took), append(ref, pb.took)
		}
		inits, pkgs, err := initTime(ctx, p.path)
		if err != nil {
			return nil, err
		}
		mo, mr := median(ours), median(ref)
		rows = append(rows, Row{Section: "start-up",
			Name: fmt.Sprintf("%s, whole process, median of %d (package inits: %d packages, %s)", p.name, n, pkgs, ms(inits)),
			Ours: ms(mo), Ref: ms(mr), Ratio: mo.Seconds() / mr.Seconds(), Goal: "(in every whole-process row)",
			Command: filepath.Base(p.path) + " version  vs  porcheck EMPTY; GODEBUG=inittrace=1 " + filepath.Base(p.path) + " version"})
	}
	return rows, nil
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// initTime runs the program's version with GODEBUG=inittrace=1 and sums its packages'
// initialization clocks.
func initTime(ctx context.Context, prog string) (time.Duration, int, error) {
	cmd := exec.CommandContext(ctx, prog, "version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, 0, fmt.Errorf("%s version: %w", prog, err)
	}
	var sum time.Duration
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		// init PKG @T ms, C ms clock, B bytes, A allocs
		f := strings.Fields(sc.Text())
		if len(f) >= 7 && f[0] == "init" && f[6] == "clock," {
			if v, err := strconv.ParseFloat(f[4], 64); err == nil {
				sum += time.Duration(v * float64(time.Millisecond))
				n++
			}
		}
	}
	return sum, n, nil
}
