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
// packages' initialization (GODEBUG=inittrace=1).
func startupRows(ctx context.Context, o Options) ([]Row, error) {
	n := 21
	if o.Quick {
		n = 5
	}
	empty := filepath.Join(o.Dir, "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		return nil, err
	}
	logf(o, "start-up: faultline version and porcheck of an empty history, %d each", n)
	var ours, ref []time.Duration
	for i := range n {
		a, b := []string{o.Faultline, "version"}, []string{o.RefCheck, empty}
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
	inits, pkgs, err := initTime(ctx, o.Faultline)
	if err != nil {
		return nil, err
	}
	mo, mr := medianD(ours), medianD(ref)
	return []Row{{Section: "start-up", Name: fmt.Sprintf("whole process, median of %d (faultline's package inits: %d packages, %s)", n, pkgs, ms(inits)),
		Ours: ms(mo), Ref: ms(mr), Ratio: mo.Seconds() / mr.Seconds(), Goal: "(in every whole-process row)",
		Command: "faultline version  vs  porcheck EMPTY; GODEBUG=inittrace=1 faultline version"}}, nil
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
