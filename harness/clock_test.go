package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// probeTarget runs a clock probe (testdata/clockprobe) as its one node: a program with
// no clock hook, which prints the clocks it sees to its log.
type probeTarget struct {
	bin  string
	tail func(node string) string
}

func (p *probeTarget) Name() string     { return "clockprobe" }
func (p *probeTarget) Ports() []int     { return nil }
func (p *probeTarget) Peers() sut.Peers { return sut.Peers{} }
func (p *probeTarget) Node(runtime.NodeEnv) runtime.NodeCmd {
	return runtime.NodeCmd{Program: p.bin}
}
func (p *probeTarget) Ready(context.Context) error {
	if _, _, err := probeLine(p.tail("n1")); err != nil {
		return err
	}
	return nil
}
func (p *probeTarget) Leader(context.Context) (string, error) { return "n1", nil }
func (p *probeTarget) Opener(time.Duration) workload.Opener   { return nil }
func (p *probeTarget) Describe() results.TargetInfo           { return results.TargetInfo{Name: p.Name()} }

// probeLine reads the last "wall mono" line of a probe's log tail.
func probeLine(tail string) (wall, mono int64, err error) {
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) != 2 {
			continue
		}
		w, err1 := strconv.ParseInt(f[0], 10, 64)
		m, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 == nil && err2 == nil {
			return w, m, nil
		}
	}
	return 0, 0, fmt.Errorf("no clock line in %q", tail)
}

// clockProbes builds the probes: a static Go binary, and (where there is a C compiler)
// a dynamically linked C program.
func clockProbes(t *testing.T) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{"go-static": filepath.Join(dir, "clockprobe")}
	build := exec.Command("go", "build", "-o", out["go-static"], "./testdata/clockprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the Go probe: %v\n%s", err, b)
	}
	if cc, err := exec.LookPath("cc"); err == nil {
		bin := filepath.Join(dir, "clockprobe-c")
		if b, err := exec.Command(cc, "-O1", "-o", bin, "testdata/clockprobe/clockprobe.c").CombinedOutput(); err != nil {
			t.Fatalf("build the C probe: %v\n%s", err, b)
		}
		out["c-dynamic"] = bin
	} else {
		t.Log("no C compiler (cc): the C probe is left out")
	}
	return out
}

func trueNow(id int32) int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(id, &ts) // a syscall: the harness's own clocks are true
	return ts.Nano()
}

// The clock fault on a program with no clock hook (the runtime's per-process clocks),
// in a process and in a container, for a static Go binary and a dynamically linked C
// program: the probe sees the offset on its wall and monotonic clocks, sees it again
// after a restart while the fault is in force, and a true wall clock after the heal.
func TestClockFaultWithoutHook(t *testing.T) {
	t.Parallel()
	probes := clockProbes(t)
	bothRuntimes(t, func(t *testing.T, runtimeName string) {
		for name, bin := range probes {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				pt := &probeTarget{bin: bin}
				cl := testCluster(t, runtimeName, 1, false, func(env sut.Env) sut.Target {
					pt.tail = func(n string) string { return logTail(filepath.Join(env.Dir, "nodes", n), 5) }
					return pt
				})
				if !cl.rt.Abilities().Clock {
					t.Skip("no per-process clocks here: " + cl.rt.Abilities().ClockWhy)
				}
				require.NotNil(t, cl.powers.Clock, "the runtime gives the clock fault")
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				see := func(off, moff time.Duration, what string) {
					t.Helper()
					err := sut.Poll(ctx, 20*time.Millisecond, func(context.Context) error {
						w0, m0 := trueNow(unix.CLOCK_REALTIME), trueNow(unix.CLOCK_MONOTONIC)
						w, m, err := probeLine(pt.tail("n1"))
						if err != nil {
							return err
						}
						// The line was printed within the last second: its clocks are off
						// by off, give or take that second.
						dw, dm := time.Duration(w-w0), time.Duration(m-m0)
						if dw < off-time.Second || dw > off+time.Second || dm < moff-time.Second || dm > moff+time.Second {
							return fmt.Errorf("the probe's clocks are off by %v (wall) and %v (monotonic), want %v and %v", dw, dm, off, moff)
						}
						return nil
					})
					require.NoError(t, err, what)
				}
				see(0, 0, "true clocks at the start")
				require.NoError(t, cl.powers.Clock.SetClock(ctx, "n1", time.Hour, 1))
				see(time.Hour, time.Hour, "an hour ahead")
				require.NoError(t, cl.Kill(ctx, "n1"))
				require.NoError(t, cl.Start(ctx, "n1"))
				see(time.Hour, time.Hour, "still an hour ahead after a restart")
				// The heal: the true wall clock; the monotonic one keeps going from where it
				// is (it never runs backwards), and the probe keeps printing.
				require.NoError(t, cl.HealAll(ctx))
				see(0, time.Hour, "true wall clock after the heal")
			})
		}
	})
}
