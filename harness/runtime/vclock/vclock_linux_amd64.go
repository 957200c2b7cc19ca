package vclock

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/faultline/faultline/internal/procstat"
)

// Supported returns nil where vclock works: amd64 Linux with ptrace allowed.
func Supported() error {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err == nil && strings.TrimSpace(string(b)) == "3" {
		return errors.New("vclock: ptrace is disabled on this host (kernel.yama.ptrace_scope = 3)")
	}
	return nil
}

// Layout of the two pages mapped into a process (see testdata/fake_amd64.S).
const (
	pageSize  = 0x1000
	dataOff   = 0x1000 // the data page, after the code page
	seqOff    = dataOff
	group0Off = dataOff + 0x10 // wall: base, off, num, den
	group1Off = dataOff + 0x30 // monotonic
	jumpLen   = 12             // movabs rax, imm64; jmp rax
	rateDen   = 1_000_000
)

// The vDSO functions replaced, and where each goes in the code page.
var replaced = []struct {
	names []string
	off   uint64
}{
	{[]string{"__vdso_clock_gettime", "clock_gettime"}, offClockGettime},
	{[]string{"__vdso_gettimeofday", "gettimeofday"}, offGettimeofday},
	{[]string{"__vdso_time", "time"}, offTime},
}

// pages remembers, per process, where its pages are: a process is patched once.
var (
	pagesMu sync.Mutex
	pages   = map[int]uint64{}
)

// Set gives process pid the clocks c, patching it first if it is not yet. It stops the
// process's threads for the patch (a few milliseconds), never for a later Set.
func Set(pid int, c Clocks) error {
	page, err := patched(pid)
	if err != nil {
		return err
	}
	return writeClocks(pid, page, c)
}

// Reset gives pid its true wall clock back and its monotonic clocks their true rate
// (see Clocks); a process never patched, or gone, is left as it is.
func Reset(pid int) error {
	pagesMu.Lock()
	page, ok := pages[pid]
	pagesMu.Unlock()
	if !ok {
		if page, ok = findPatch(pid); !ok {
			return nil
		}
	}
	err := writeClocks(pid, page, Clocks{})
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// Forget drops what vclock remembers of pid (it exited; its pid may come again).
func Forget(pid int) {
	pagesMu.Lock()
	delete(pages, pid)
	pagesMu.Unlock()
}

// patched returns pid's page, patching the process if it is not yet.
func patched(pid int) (uint64, error) {
	pagesMu.Lock()
	page, ok := pages[pid]
	pagesMu.Unlock()
	if ok {
		if p, still := findPatch(pid); still && p == page {
			return page, nil
		}
	}
	page, err := patchByHelper(pid)
	if err != nil {
		return 0, err
	}
	pagesMu.Lock()
	pages[pid] = page
	pagesMu.Unlock()
	return page, nil
}

// writeClocks writes c into pid's data page under its sequence count.
func writeClocks(pid int, page uint64, c Clocks) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("vclock: %w", err)
	}
	defer f.Close()
	var cur [0x50]byte // seq, reserved, wall group, monotonic group
	if _, err := f.ReadAt(cur[:], int64(page+seqOff)); err != nil {
		return fmt.Errorf("vclock: read pid %d: %w", pid, err)
	}
	n := binary.LittleEndian.Uint64(cur[:])
	var prev [4]uint64
	for i := range prev {
		prev[i] = binary.LittleEndian.Uint64(cur[group1Off-seqOff+8*i:])
	}
	put := func(off uint64, words ...uint64) error {
		b := make([]byte, 8*len(words))
		for i, w := range words {
			binary.LittleEndian.PutUint64(b[8*i:], w)
		}
		_, err := f.WriteAt(b, int64(page+off))
		return err
	}
	wall, mono := group(c.Wall, unix.CLOCK_REALTIME), monoGroup(prev, c.Mono)
	steps := []func() error{
		func() error { return put(seqOff, n|1) }, // odd: readers wait
		func() error { return put(group0Off, wall[:]...) },
		func() error { return put(group1Off, mono[:]...) },
		func() error { return put(seqOff, (n|1)+1) },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return fmt.Errorf("vclock: write pid %d: %w", pid, err)
		}
	}
	return nil
}

// group is a Setting as the code reads it: base, off, num, den, base read now from
// the harness's own (true) clock id.
func group(s Setting, id int32) [4]uint64 {
	if s.True() {
		return [4]uint64{0, 0, 1, 1}
	}
	rate := s.Rate
	if rate == 0 {
		rate = 1
	}
	return [4]uint64{uint64(nowNS(id)), uint64(s.Offset.Nanoseconds()), uint64(math.Round(rate * rateDen)), rateDen}
}

// monoGroup is the monotonic group for s, given the one in force (prev): monotonic
// time never runs backwards, as the kernel promises it never does. It goes on from
// where it is, at s.Rate, jumping forward to s.Offset ahead of true time if that is
// further on; a smaller or negative offset, or the true Setting, only ends any jump
// and rate in force without a step back. (A step back would hold every timer of the
// program — a Go program's sleeps, tickers, timeouts — until its clock caught up.)
func monoGroup(prev [4]uint64, s Setting) [4]uint64 {
	now := nowNS(unix.CLOCK_MONOTONIC)
	cur := now // where the process's monotonic clock is now
	if base, off, num, den := int64(prev[0]), int64(prev[1]), int64(prev[2]), int64(prev[3]); den > 0 && num > 0 {
		cur = now + off
		if now >= base { // as the code's imul/idiv
			if hi, lo := bits.Mul64(uint64(now-base), uint64(num)); hi < uint64(den) {
				q, _ := bits.Div64(hi, lo, uint64(den))
				cur = base + off + int64(q)
			}
		}
	}
	off := max(cur-now, s.Offset.Nanoseconds())
	if s.True() {
		off = cur - now
	}
	rate := s.Rate
	if rate == 0 {
		rate = 1
	}
	return [4]uint64{uint64(now), uint64(off), uint64(math.Round(rate * rateDen)), rateDen}
}

func nowNS(id int32) int64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(id, &ts)
	return ts.Nano()
}

// findPatch returns the page pid's vDSO clock_gettime jumps to, if it is patched.
func findPatch(pid int) (uint64, bool) {
	v, err := readVDSO(pid)
	if err != nil {
		return 0, false
	}
	at, ok := v.syms[replaced[0].names[0]]
	if !ok {
		return 0, false
	}
	b := v.image[at-v.start:]
	if len(b) < jumpLen || b[0] != 0x48 || b[1] != 0xb8 || b[10] != 0xff || b[11] != 0xe0 {
		return 0, false
	}
	return binary.LittleEndian.Uint64(b[2:10]) - offClockGettime, true
}

// vdso is a process's vDSO: its mapping and the addresses of its symbols there.
type vdso struct {
	start, end uint64
	image      []byte
	syms       map[string]uint64
	// spare is the address of the vDSO's unused tail: past every segment, section and
	// header of its ELF image, up to its mapping's end.
	spare uint64
}

func readVDSO(pid int) (*vdso, error) {
	maps, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, fmt.Errorf("vclock: %w", err)
	}
	defer maps.Close()
	v := &vdso{}
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		if !strings.HasSuffix(sc.Text(), "[vdso]") {
			continue
		}
		lo, hi, _ := strings.Cut(strings.Fields(sc.Text())[0], "-")
		v.start, _ = strconv.ParseUint(lo, 16, 64)
		v.end, _ = strconv.ParseUint(hi, 16, 64)
	}
	if v.start == 0 || v.end <= v.start {
		return nil, ErrNoVDSO
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, fmt.Errorf("vclock: %w", err)
	}
	defer mem.Close()
	v.image = make([]byte, v.end-v.start)
	if _, err := mem.ReadAt(v.image, int64(v.start)); err != nil {
		return nil, fmt.Errorf("vclock: read the vDSO of pid %d: %w", pid, err)
	}
	f, err := elf.NewFile(bytes.NewReader(v.image))
	if err != nil {
		return nil, fmt.Errorf("vclock: the vDSO of pid %d: %w", pid, err)
	}
	var base uint64 = math.MaxUint64
	for _, p := range f.Progs {
		if p.Type == elf.PT_LOAD && p.Vaddr < base {
			base = p.Vaddr
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil || base == math.MaxUint64 {
		return nil, ErrNoVDSO
	}
	used := binary.LittleEndian.Uint64(v.image[0x28:]) + // section headers: e_shoff, e_shentsize × e_shnum
		uint64(binary.LittleEndian.Uint16(v.image[0x3a:]))*uint64(binary.LittleEndian.Uint16(v.image[0x3c:]))
	for _, p := range f.Progs {
		used = max(used, p.Off+p.Filesz)
	}
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_NOBITS {
			used = max(used, sec.Offset+sec.FileSize)
		}
	}
	v.spare = v.start + (used+15)&^15
	v.syms = map[string]uint64{}
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Value >= base {
			v.syms[s.Name] = v.start + s.Value - base
		}
	}
	return v, nil
}

// helperEnv asks a process started from this binary to patch the process it names,
// and nothing else (see init).
const helperEnv = "FAULTLINE_VCLOCK_PATCH"

// init makes any binary that holds this package the patching helper when started
// with helperEnv: it patches that pid, prints the page's address and exits. The patch
// is made by a helper, not by the harness, because the tracer must be the only one
// waiting for the process: the harness is the parent of its nodes and waits for them
// to exit (os/exec), and that wait would take the stops ptrace reports.
func init() {
	v := os.Getenv(helperEnv)
	if v == "" {
		return
	}
	pid, err := strconv.Atoi(v)
	if err == nil {
		var page uint64
		if page, err = patch(pid); err == nil {
			fmt.Printf("%#x\n", page)
			os.Exit(0)
		}
	}
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1) // the entry point of a helper process: its exit code is its answer
}

// patchByHelper patches pid from a helper process (see init) and returns the page.
func patchByHelper(pid int) (uint64, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("vclock: %w", err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(pid))
	// A harness that dies takes its helper along; the kernel then lets the helper's
	// tracees go on (a dead tracer's tracees are detached and resumed).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return 0, errors.New(msg)
		}
		return 0, fmt.Errorf("vclock: patch pid %d: %w", pid, err)
	}
	page, err := strconv.ParseUint(strings.TrimSpace(string(out)), 0, 64)
	if err != nil {
		return 0, fmt.Errorf("vclock: the helper said %q", out)
	}
	return page, nil
}

// patch maps the pages into pid and points the vDSO functions at them, with every
// thread of the process stopped.
func patch(pid int) (page uint64, err error) {
	v, err := readVDSO(pid)
	if err != nil {
		return 0, err
	}
	type site struct{ at, to uint64 }
	var sites []site
	for _, r := range replaced {
		for _, n := range r.names {
			if at, ok := v.syms[n]; ok {
				sites = append(sites, site{at: at, to: r.off})
				break
			}
		}
	}
	if len(sites) == 0 {
		return 0, ErrNoVDSO
	}
	if v.spare+trampolineLen > v.end {
		return 0, fmt.Errorf("vclock: the vDSO of pid %d has no room for a trampoline", pid)
	}
	err = traced(pid, func(t *tracer) error {
		if p, ok := findPatch(pid); ok { // patched by an earlier harness: keep its page
			page = p
			return nil
		}
		addr, err := t.syscall(unix.SYS_MMAP, v.spare, 0, 2*pageSize,
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, math.MaxUint64, 0)
		if err != nil {
			return fmt.Errorf("map pages: %w", err)
		}
		page = addr
		if err := t.write(page, fakeCode); err != nil {
			return err
		}
		if err := writeClocks(pid, page, Clocks{}); err != nil {
			return err
		}
		if _, err := t.syscall(unix.SYS_MPROTECT, v.spare, page, pageSize, unix.PROT_READ|unix.PROT_EXEC); err != nil {
			return fmt.Errorf("protect the code page: %w", err)
		}
		for _, s := range sites {
			if err := t.stepOut(s.at, s.at+jumpLen); err != nil {
				return err
			}
		}
		for _, s := range sites {
			j := make([]byte, jumpLen)
			j[0], j[1], j[10], j[11] = 0x48, 0xb8, 0xff, 0xe0
			binary.LittleEndian.PutUint64(j[2:10], page+s.to)
			if err := t.write(s.at, j); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("vclock: patch pid %d: %w", pid, err)
	}
	return page, nil
}

// tracer holds every thread of one process stopped under ptrace. Its methods run on
// the OS thread that attached (ptrace's rule).
type tracer struct {
	pid     int
	threads map[int]int // tid → the signal to give back when detaching
	mem     *os.File
}

// traced stops every thread of pid, runs f, and lets them all go, on one locked OS
// thread.
func traced(pid int, f func(*tracer) error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		t := &tracer{pid: pid, threads: map[int]int{}}
		err := t.attach()
		if err == nil {
			t.mem, err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0)
		}
		if err == nil {
			err = f(t)
		}
		if t.mem != nil {
			t.mem.Close()
		}
		done <- errors.Join(err, t.detach())
	}()
	return <-done
}

// attach seizes and stops every thread, again until no new one has appeared.
func (t *tracer) attach() error {
	for {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", t.pid))
		if err != nil {
			return fmt.Errorf("threads: %w", err)
		}
		grew := false
		for _, e := range ents {
			tid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if _, ok := t.threads[tid]; ok {
				continue
			}
			if err := unix.PtraceSeize(tid); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // exited meanwhile
				}
				return fmt.Errorf("seize thread %d: %w", tid, err)
			}
			t.threads[tid] = 0
			grew = true
			if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("interrupt thread %d: %w", tid, err)
			}
			if _, _, err := t.waitStop(tid); err != nil {
				return err
			}
		}
		if !grew {
			return nil
		}
	}
}

// stopWait bounds the wait for a thread to stop: a frozen process (a cgroup freezer)
// never does.
const stopWait = 3 * time.Second

// waitStop waits for tid to stop and returns how; a signal it stopped for is kept, to
// be delivered at the detach. A thread that exits is forgotten (stopped false).
func (t *tracer) waitStop(tid int) (ws unix.WaitStatus, stopped bool, err error) {
	deadline := time.Now().Add(stopWait)
	for {
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return ws, false, fmt.Errorf("wait for thread %d: %w", tid, err)
		case wpid == 0:
			if time.Now().After(deadline) {
				return ws, false, fmt.Errorf("thread %d did not stop in %v (is the process frozen?)", tid, stopWait)
			}
			time.Sleep(200 * time.Microsecond)
			continue
		}
		switch {
		case ws.Exited() || ws.Signaled():
			delete(t.threads, tid)
			return ws, false, nil
		case ws.Stopped():
			if sig := ws.StopSignal(); sig != unix.SIGTRAP && sig != unix.SIGSTOP && sig != syscallStop {
				t.threads[tid] = int(sig) // a signal-delivery stop: deliver it at the detach
			}
			return ws, true, nil
		}
	}
}

// detach lets every thread go, each with the signal it had stopped for.
func (t *tracer) detach() error {
	var errs []error
	for tid, sig := range t.threads {
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, uintptr(sig), 0, 0)
		if e != 0 && e != unix.ESRCH {
			errs = append(errs, fmt.Errorf("detach thread %d: %w", tid, e))
		}
	}
	return errors.Join(errs...)
}

// leader is the thread the tracer borrows: the process's main thread if it is still
// there, else any.
func (t *tracer) leader() (int, error) {
	if _, ok := t.threads[t.pid]; ok {
		return t.pid, nil
	}
	for tid := range t.threads {
		return tid, nil
	}
	return 0, errors.New("no thread left")
}

// No thread is ever single-stepped. A stepped thread keeps the CPU's trap flag until its
// tracer resumes it some other way, and the kernel does not clear it when the tracer
// dies: a helper killed mid-patch (its harness killed) left the process to die of
// SIGTRAP at its next instruction. syscall goes through system-call stops instead, and
// stepOut lets a thread run a moment and stops it again.

// syscallStop is how a system-call stop shows, under PTRACE_O_TRACESYSGOOD.
const syscallStop = unix.SIGTRAP | 0x80

// syscall makes the process run one system call, on a borrowed thread, from a
// trampoline written at at (the vDSO's spare tail). The trampoline sets the call's
// registers, makes the call, puts back every register the thread had, and jumps to
// where the thread was going: so this helper may die at any moment of the borrowing,
// and the thread then makes the call and goes on as if it had never been stopped.
// While the helper lives, it reads the result at the call's exit and gives the thread
// its registers back itself.
func (t *tracer) syscall(nr, at uint64, args ...uint64) (uint64, error) {
	tid, err := t.leader()
	if err != nil {
		return 0, err
	}
	if err := unix.PtraceSetOptions(tid, unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return 0, fmt.Errorf("options of %d: %w", tid, err)
	}
	var saved unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &saved); err != nil {
		return 0, fmt.Errorf("registers of %d: %w", tid, err)
	}
	if err := t.write(at, trampoline(nr, args, resumed(saved))); err != nil {
		return 0, err
	}
	r := saved
	r.Rip = at
	r.Orig_rax = math.MaxUint64 // not in a system call: nothing to restart
	if err := unix.PtraceSetRegs(tid, &r); err != nil {
		return 0, fmt.Errorf("set registers of %d: %w", tid, err)
	}
	defer unix.PtraceSetRegs(tid, &saved)
	if err := t.throughSyscall(tid); err != nil {
		return 0, err
	}
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return 0, fmt.Errorf("registers of %d: %w", tid, err)
	}
	if r.Rip != at+trampolineCall {
		return 0, fmt.Errorf("thread %d went to %#x, not past the syscall at %#x", tid, r.Rip, at+trampolineCall-2)
	}
	if int64(r.Rax) < 0 && int64(r.Rax) > -4096 {
		return 0, unix.Errno(-int64(r.Rax))
	}
	return r.Rax, nil
}

// The kernel's restart codes: a system call stopped by a signal (or by the tracer)
// that returns one of them is made again when the thread goes on with no handler.
const (
	errRestartSys        = 512
	errRestartNoIntr     = 513
	errRestartNoHand     = 514
	errRestartRestartBlk = 516
)

// resumed is what a stopped thread with registers r does when it goes on, no signal
// handled: the kernel makes an interrupted system call again (its number back in rax,
// rip back on the syscall instruction), as it would have after the stop.
func resumed(r unix.PtraceRegs) unix.PtraceRegs {
	if int64(r.Orig_rax) < 0 {
		return r
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand:
		r.Rax, r.Rip = r.Orig_rax, r.Rip-2
	case errRestartRestartBlk:
		r.Rax, r.Rip = unix.SYS_RESTART_SYSCALL, r.Rip-2
	}
	return r
}

// The trampoline: seven register loads (10 bytes each), the syscall, nine loads, and
// an indirect jump with its 8-byte target.
const (
	trampolineCall = 7*10 + 2
	trampolineLen  = trampolineCall + 9*10 + 6 + 8
)

// trampoline is the code that makes system call nr with args and then gives the thread
// back the registers of to and jumps to its rip. A system call changes only rax, rcx
// and r11 (which takes the flags, restored by the kernel on the way back); the
// trampoline's own loads change no flags.
func trampoline(nr uint64, args []uint64, to unix.PtraceRegs) []byte {
	var b []byte
	load := func(prefix, op byte, v uint64) {
		b = append(b, prefix, op)
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	var a [6]uint64
	copy(a[:], args)
	load(0x48, 0xb8, nr)      // mov rax
	load(0x48, 0xbf, a[0])    // mov rdi
	load(0x48, 0xbe, a[1])    // mov rsi
	load(0x48, 0xba, a[2])    // mov rdx
	load(0x49, 0xba, a[3])    // mov r10
	load(0x49, 0xb8, a[4])    // mov r8
	load(0x49, 0xb9, a[5])    // mov r9
	b = append(b, 0x0f, 0x05) // syscall
	load(0x48, 0xb8, to.Rax)
	load(0x48, 0xbf, to.Rdi)
	load(0x48, 0xbe, to.Rsi)
	load(0x48, 0xba, to.Rdx)
	load(0x49, 0xba, to.R10)
	load(0x49, 0xb8, to.R8)
	load(0x49, 0xb9, to.R9)
	load(0x48, 0xb9, to.Rcx)
	load(0x49, 0xbb, to.R11)
	b = append(b, 0xff, 0x25, 0, 0, 0, 0) // jmp [rip+0]
	return binary.LittleEndian.AppendUint64(b, to.Rip)
}

// throughSyscall resumes tid until it has entered and left one system call. It may
// first stop for something else (the interrupt still pending after a signal stop, a
// signal): it is resumed again.
func (t *tracer) throughSyscall(tid int) error {
	stops := 0
	for range 16 {
		if err := unix.PtraceSyscall(tid, 0); err != nil {
			return fmt.Errorf("resume %d to its system call: %w", tid, err)
		}
		ws, stopped, err := t.waitStop(tid)
		if err != nil {
			return err
		}
		if !stopped {
			return fmt.Errorf("thread %d exited", tid)
		}
		if ws.StopSignal() == syscallStop {
			if stops++; stops == 2 { // its entry, then its exit
				return nil
			}
		}
	}
	return fmt.Errorf("thread %d never went through its system call", tid)
}

// stepOut lets every thread whose next instruction is in [lo, hi) run a moment and
// stops it again, until it is out: the bytes there are about to change.
func (t *tracer) stepOut(lo, hi uint64) error {
	for tid := range t.threads {
		run := 20 * time.Microsecond
		for i := 0; ; i++ {
			var r unix.PtraceRegs
			if err := unix.PtraceGetRegs(tid, &r); err != nil {
				return fmt.Errorf("registers of %d: %w", tid, err)
			}
			if r.Rip < lo || r.Rip >= hi {
				break
			}
			if i == 64 {
				return fmt.Errorf("thread %d stays at %#x, in code about to change", tid, r.Rip)
			}
			if err := unix.PtraceCont(tid, 0); err != nil {
				return fmt.Errorf("resume %d: %w", tid, err)
			}
			time.Sleep(run)
			run = min(2*run, 10*time.Millisecond)
			if err := unix.PtraceInterrupt(tid); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("interrupt thread %d: %w", tid, err)
			}
			if _, stopped, err := t.waitStop(tid); err != nil {
				return err
			} else if !stopped {
				break // it exited
			}
		}
	}
	return nil
}

// write writes b at addr in the process (read-only pages included: /proc/PID/mem
// writes through protections, as a debugger's breakpoints do).
func (t *tracer) write(addr uint64, b []byte) error {
	if _, err := t.mem.WriteAt(b, int64(addr)); err != nil {
		return fmt.Errorf("write %d bytes at %#x: %w", len(b), addr, err)
	}
	return nil
}

// CleanOrphans kills patch helpers whose harness is gone (reparented to init or a
// subreaper), so that the processes they trace go on, and returns what it killed.
// Helpers die with their harness (Pdeathsig): this is for what that missed.
func CleanOrphans() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil || !bytes.Contains(env, []byte("\x00"+helperEnv+"=")) && !bytes.HasPrefix(env, []byte(helperEnv+"=")) {
			continue
		}
		if pp, err := procstat.Parent(pid); err == nil && pp != 1 && sameProgram(pp, pid) {
			continue // its harness lives
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			out = append(out, fmt.Sprintf("clock patch helper pid %d", pid))
		}
	}
	return out
}

// sameProgram reports whether processes a and b run the same binary (a harness and
// the helper it started from itself).
func sameProgram(a, b int) bool {
	ea, err1 := os.Readlink(fmt.Sprintf("/proc/%d/exe", a))
	eb, err2 := os.Readlink(fmt.Sprintf("/proc/%d/exe", b))
	return err1 == nil && err2 == nil && ea == eb
}
