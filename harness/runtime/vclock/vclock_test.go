//go:build linux && amd64

package vclock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	_ "unsafe" // go:linkname

	"golang.org/x/sys/unix"
)

//go:linkname nanotime runtime.nanotime
func nanotime() int64

// TestMain makes the test binary the Go clock probe when asked: for each line on stdin,
// a line with time.Now's wall clock and the runtime's monotonic clock, in ns; both
// come from the vDSO's clock_gettime, as in any Go program.
func TestMain(m *testing.M) {
	if os.Getenv("VCLOCK_PROBE") == "1" {
		if os.Getenv("VCLOCK_PROBE_COST") == "1" { // ns per time.Now, over a million
			sc := bufio.NewScanner(os.Stdin)
			for sc.Scan() {
				t0 := time.Now()
				for range 1_000_000 {
					_ = time.Now()
				}
				fmt.Println(time.Since(t0).Nanoseconds(), 0)
			}
			os.Exit(0)
		}
		if os.Getenv("VCLOCK_PROBE_SPIN") == "1" { // threads in the vDSO while it is patched
			for range 4 {
				go func() {
					for {
						_ = time.Now()
					}
				}()
			}
		}
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			fmt.Printf("%d %d\n", time.Now().UnixNano(), nanotime())
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe is a running clock probe.
type probe struct {
	t   *testing.T
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startProbe(t *testing.T, name string, args ...string) *probe {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "VCLOCK_PROBE=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &probe{t: t, cmd: cmd, in: in, out: bufio.NewScanner(out)}
	// The parent waits for its child all along, as the process runtime does: a wait
	// that would take ptrace's stops from the patch (hence the helper process).
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		<-exited
		Forget(cmd.Process.Pid)
	})
	p.read() // it runs
	return p
}

// reading is one line of a probe, and the true clocks just before and after it.
type reading struct {
	vals                     []int64 // wall, mono[, gettimeofday, time]
	wall0, wall1, mon0, mon1 int64
}

func now(id int32) int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(id, &ts) // a syscall: the harness's own clock is true
	return ts.Nano()
}

func (p *probe) read() reading {
	p.t.Helper()
	r := reading{wall0: now(unix.CLOCK_REALTIME), mon0: now(unix.CLOCK_MONOTONIC)}
	if _, err := io.WriteString(p.in, "\n"); err != nil {
		p.t.Fatal(err)
	}
	if !p.out.Scan() {
		p.t.Fatalf("probe exited: %v", p.out.Err())
	}
	r.wall1, r.mon1 = now(unix.CLOCK_REALTIME), now(unix.CLOCK_MONOTONIC)
	for _, f := range strings.Fields(p.out.Text()) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			p.t.Fatalf("probe said %q", p.out.Text())
		}
		r.vals = append(r.vals, v)
	}
	return r
}

// within checks that got is between lo and hi (slack allowed for the coarse ones).
func within(t *testing.T, what string, got, lo, hi, slack int64) {
	t.Helper()
	if got < lo-slack || got > hi+slack {
		t.Errorf("%s = %d, want within [%d, %d] (±%d): %+.3fs from the low end", what, got, lo, hi, slack,
			float64(got-lo)/1e9)
	}
}

// check checks a reading against clocks: every wall value (wall, gettimeofday, time)
// is the true wall clock moved by off, the monotonic one by moff.
func (r reading) check(t *testing.T, off, moff time.Duration) {
	t.Helper()
	m := moff.Nanoseconds()
	within(t, "monotonic", r.vals[1], r.mon0+m, r.mon1+m, 0)
	r.checkWall(t, off)
}

// checkWall checks a reading's wall values only.
func (r reading) checkWall(t *testing.T, off time.Duration) {
	t.Helper()
	o := off.Nanoseconds()
	within(t, "wall", r.vals[0], r.wall0+o, r.wall1+o, 0)
	if len(r.vals) == 4 {
		within(t, "gettimeofday", r.vals[2], r.wall0+o, r.wall1+o, 1000)
		within(t, "time", r.vals[3]*1e9, r.wall0+o, r.wall1+o, 1e9)
	}
}

func testProbe(t *testing.T, p *probe) {
	pid := p.cmd.Process.Pid
	p.read().check(t, 0, 0)

	// Monotonic time never runs backwards: a smaller offset, or the true clocks, keep
	// the monotonic clocks where they are (mono: the offset expected after each step).
	steps := []struct {
		name string
		c    Clocks
		mono time.Duration
	}{
		{"wall +1h", Clocks{Wall: Setting{Offset: time.Hour}}, 0},
		{"wall -90s, monotonic +30s", Clocks{Wall: Setting{Offset: -90 * time.Second}, Mono: Setting{Offset: 30 * time.Second}}, 30 * time.Second},
		{"monotonic -5s: no step back", Clocks{Mono: Setting{Offset: -5 * time.Second}}, 30 * time.Second},
		{"true again: monotonic stays ahead", Clocks{}, 30 * time.Second},
		{"monotonic +60s", Clocks{Mono: Setting{Offset: time.Minute}}, time.Minute},
	}
	for _, s := range steps {
		if err := Set(pid, s.c); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		t.Run(s.name, func(t *testing.T) { p.read().check(t, s.c.Wall.Offset, s.mono) })
	}

	// A clock ten times as fast: between two readings it moves ten times what the true
	// clock did, which lies between what the harness saw around them.
	if err := Set(pid, Clocks{Wall: Setting{Rate: 10}, Mono: Setting{Rate: 10}}); err != nil {
		t.Fatal(err)
	}
	a := p.read()
	time.Sleep(20 * time.Millisecond)
	b := p.read()
	for i, what := range []string{"wall", "monotonic"} {
		lo, hi := b.wall0-a.wall1, b.wall1-a.wall0
		if i == 1 {
			lo, hi = b.mon0-a.mon1, b.mon1-a.mon0
		}
		within(t, what+" at rate 10", b.vals[i]-a.vals[i], 10*lo, 10*hi, 10)
	}
	// Reset: the true wall clock; the monotonic ones at the true rate, from where they got.
	if err := Reset(pid); err != nil {
		t.Fatal(err)
	}
	a = p.read()
	time.Sleep(20 * time.Millisecond)
	b = p.read()
	b.checkWall(t, 0)
	within(t, "monotonic at rate 1 after the reset", b.vals[1]-a.vals[1], b.mon0-a.mon1, b.mon1-a.mon0, 10)
	if ahead := time.Duration(b.vals[1] - b.mon1); ahead < time.Minute {
		t.Errorf("monotonic is %v ahead after the reset, want at least the minute it was", ahead)
	}
	if _, ok := findPatch(pid); !ok {
		t.Error("the patch is gone after a reset")
	}
}

// TestGoProbe: a Go program (this test binary) sees each offset, rate and reset, on
// its wall clock (time.Now) and its runtime's monotonic clock (timers, sleeps).
func TestGoProbe(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	testProbe(t, startProbe(t, exe, "-test.run=^$"))
}

// spinningProbe returns the Go probe (this test binary), set to start with threads
// that read the clock in a loop, or skips the test where vclock does not work.
func spinningProbe(t *testing.T) string {
	t.Helper()
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("VCLOCK_PROBE_SPIN", "1")
	return exe
}

// TestPatchWhileReading: threads that read the clock in a loop while it is patched and
// set, again and again, keep running and read it right.
func TestPatchWhileReading(t *testing.T) {
	exe := spinningProbe(t)
	for i := range 5 {
		p := startProbe(t, exe, "-test.run=^$")
		pid := p.cmd.Process.Pid
		for j := range 20 {
			off := time.Duration(i*20+j+1) * time.Second
			if err := Set(pid, Clocks{Wall: Setting{Offset: off}, Mono: Setting{Offset: off}}); err != nil {
				t.Fatal(err)
			}
			p.read().check(t, off, off)
		}
	}
}

// TestHelperKilledMidPatch: a patch helper killed at any point of its work (as when the
// harness dies: Pdeathsig) leaves no thread of the process stopped under ptrace, and
// the process keeps running and reading its clock.
func TestHelperKilledMidPatch(t *testing.T) {
	exe := spinningProbe(t)
	for i := range 12 {
		p := startProbe(t, exe, "-test.run=^$")
		pid := p.cmd.Process.Pid
		h := exec.Command(exe)
		h.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(pid))
		if err := h.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i) * 3 * time.Millisecond) // from before the attach to after the patch
		_ = h.Process.Kill()
		_ = h.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for {
			traced := tracedThreads(pid)
			if len(traced) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("helper killed after %d ms: threads %v of the probe are still traced", 3*i, traced)
			}
			time.Sleep(10 * time.Millisecond)
		}
		p.read().check(t, 0, 0) // it runs, and its clocks are true (a patch, if made, is at rest)
	}
}

// tracedThreads lists the threads of pid that have a tracer.
func tracedThreads(pid int) []string {
	var out []string
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, e := range ents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name()))
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "TracerPid:"); ok && strings.TrimSpace(v) != "0" {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// TestCProbe: a dynamically linked C program sees them through libc's clock_gettime,
// gettimeofday and time.
func TestCProbe(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler (cc) to build the C probe")
	}
	bin := filepath.Join(t.TempDir(), "probe")
	if out, err := exec.Command(cc, "-O1", "-o", bin, "testdata/probe.c").CombinedOutput(); err != nil {
		t.Fatalf("build the C probe: %v\n%s", err, out)
	}
	if out, _ := exec.Command("file", bin).Output(); len(out) > 0 && !bytes.Contains(out, []byte("dynamically linked")) {
		t.Logf("the C probe is not dynamically linked: %s", out)
	}
	testProbe(t, startProbe(t, bin))
}

// TestCodeMatchesSource assembles testdata/fake_amd64.S again and compares it with the
// code vclock maps.
func TestCodeMatchesSource(t *testing.T) {
	as, err1 := exec.LookPath("as")
	objcopy, err2 := exec.LookPath("objcopy")
	if err1 != nil || err2 != nil {
		t.Skip("no as/objcopy (binutils) to assemble testdata/fake_amd64.S")
	}
	dir := t.TempDir()
	obj, bin := filepath.Join(dir, "fake.o"), filepath.Join(dir, "fake.bin")
	if out, err := exec.Command(as, "--64", "-o", obj, "testdata/fake_amd64.S").CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", obj, bin).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < len(fakeCode) || !bytes.Equal(b[:len(fakeCode)], fakeCode) {
		t.Fatal("code_amd64.go is not testdata/fake_amd64.S assembled: regenerate it")
	}
	if rest := bytes.TrimRight(b[len(fakeCode):dataOff], "\x00"); len(rest) > 0 {
		t.Fatalf("the source has %d bytes of code past what code_amd64.go holds", len(rest))
	}
}

// BenchmarkTimeNowPatched reports what a patched process pays per time.Now: the code
// asks the kernel by syscall (two calls: wall and monotonic), where the vDSO answers
// from memory. Run: go test -run '^$' -bench TimeNowPatched ./harness/runtime/vclock
func BenchmarkTimeNowPatched(b *testing.B) {
	if err := Supported(); err != nil {
		b.Skip(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "VCLOCK_PROBE=1", "VCLOCK_PROBE_COST=1")
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { in.Close(); _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	sc := bufio.NewScanner(out)
	cost := func() float64 {
		var best int64 = math.MaxInt64
		for range 5 {
			_, _ = io.WriteString(in, "\n")
			if !sc.Scan() {
				b.Fatal("the probe exited")
			}
			n, _ := strconv.ParseInt(strings.Fields(sc.Text())[0], 10, 64)
			best = min(best, n)
		}
		return float64(best) / 1e6
	}
	b.ReportMetric(cost(), "ns/now-unpatched")
	if err := Set(cmd.Process.Pid, Clocks{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(cost(), "ns/now-patched")
}

// TestCleanOrphans: a process marked as a patch helper whose parent is not the program
// it runs (its harness is gone) is killed by CleanOrphans, and named.
func TestCleanOrphans(t *testing.T) {
	if err := Supported(); err != nil {
		t.Skip(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep to stand for a helper")
	}
	cmd := exec.Command(sleep, "60")
	cmd.Env = append(os.Environ(), helperEnv+"=0")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	out := CleanOrphans()
	want := fmt.Sprintf("clock patch helper pid %d", cmd.Process.Pid)
	if !slices.Contains(out, want) { // another test binary's faultline clean may have been first
		t.Logf("CleanOrphans() = %v, without %q", out, want)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the orphan helper still runs")
	}
}

// The trampoline makes its call where syscall expects it and jumps to the thread's
// rip; a thread stopped in an interrupted call makes that call again when it goes on.
func TestTrampolineLayoutAndResume(t *testing.T) {
	to := unix.PtraceRegs{Rip: 0x1122334455667788, Rax: 7}
	b := trampoline(unix.SYS_MMAP, []uint64{1, 2}, to)
	if len(b) != trampolineLen {
		t.Fatalf("trampoline is %d bytes, want %d", len(b), trampolineLen)
	}
	if b[trampolineCall-2] != 0x0f || b[trampolineCall-1] != 0x05 {
		t.Fatalf("no syscall instruction before offset %d: % x", trampolineCall, b[trampolineCall-2:trampolineCall])
	}
	if got := binary.LittleEndian.Uint64(b[len(b)-8:]); got != to.Rip {
		t.Fatalf("jumps to %#x, want %#x", got, to.Rip)
	}
	in := unix.PtraceRegs{Orig_rax: unix.SYS_READ, Rax: neg(errRestartSys), Rip: 0x1000}
	if r := resumed(in); r.Rax != unix.SYS_READ || r.Rip != 0xffe {
		t.Fatalf("an interrupted read resumes at %#x with rax %d, want the read again at 0xffe", r.Rip, r.Rax)
	}
	in.Rax = neg(errRestartRestartBlk)
	if r := resumed(in); r.Rax != unix.SYS_RESTART_SYSCALL || r.Rip != 0xffe {
		t.Fatalf("a restart block resumes with rax %d, want restart_syscall", r.Rax)
	}
	done := unix.PtraceRegs{Orig_rax: unix.SYS_READ, Rax: 5, Rip: 0x1000}
	if r := resumed(done); r != done {
		t.Fatal("a finished call is left as it is")
	}
	if r := resumed(unix.PtraceRegs{Orig_rax: math.MaxUint64, Rax: neg(errRestartSys)}); r.Rax != neg(errRestartSys) {
		t.Fatal("outside a system call nothing is made again")
	}
}

// neg is the register value of a system call's negative return -e.
func neg(e int64) uint64 { return uint64(-e) }
