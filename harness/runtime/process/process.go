package process

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/vclock"
	"github.com/faultline/faultline/internal/freeport"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/internal/procstat"
)

// ProcessRuntime runs each node as a child process. As root it gives each node its own
// network namespace on a bridge made for the run (netns), so that partitions are packet
// filters inside each node's namespace; otherwise the nodes share loopback, on distinct
// ports, and partitions are unavailable.
//
// Children get SIGKILL if the harness dies (Pdeathsig) and run in their own process
// group, so a terminal's ^C reaches the harness, which then stops them in order.
type ProcessRuntime struct {
	runID  string
	dir    string         // nodes/<name>/ holds each node's log, data/<name>/ its data
	loopOK string         // why network namespaces are not used ("" when they are)
	ports  []int          // the ports each node listens on
	blocks map[string]int // loopback: the first of each node's block of len(ports) ports

	mu    sync.Mutex
	net   *netns.Network
	procs map[string]*proc
}

type proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	paused bool
}

// NewProcessRuntime returns a process runtime for one run; dir is the run's directory.
func NewProcessRuntime(runID, dir string) *ProcessRuntime {
	r := &ProcessRuntime{runID: runID, dir: dir, procs: map[string]*proc{}, blocks: map[string]int{}}
	if ok, why := netns.Available(); !ok {
		r.loopOK = why
	}
	return r
}

// Name implements Runtime.
func (r *ProcessRuntime) Name() string { return "process" }

// Isolated reports whether nodes get network namespaces of their own.
func (r *ProcessRuntime) Isolated() bool { return r.loopOK == "" }

// Prepare creates the run's bridge and namespaces (as root), or picks loopback ports:
// each node a block of len(ports) free ports.
func (r *ProcessRuntime) Prepare(ctx context.Context, nodes []string, ports []int) error {
	r.ports = slices.Clone(ports)
	for _, n := range nodes {
		if err := os.MkdirAll(r.dataDir(n), 0o755); err != nil {
			return fmt.Errorf("process runtime: data dir: %w", err)
		}
	}
	if r.loopOK == "" {
		n, err := netns.Create(ctx, r.runID, nodes)
		if err != nil {
			return fmt.Errorf("process runtime: %w", err)
		}
		r.mu.Lock()
		r.net = n
		r.mu.Unlock()
		return nil
	}
	for _, n := range nodes {
		base, err := freeport.Block(len(ports))
		if err != nil {
			return fmt.Errorf("process runtime: %w", err)
		}
		r.blocks[n] = base
	}
	return nil
}

// HostPort implements Runtime. In a namespace the node's ports are its own; on loopback
// they map into the node's block, in the order Prepare was given them.
func (r *ProcessRuntime) HostPort(node string, port int) string {
	if r.net != nil {
		return netip.AddrPortFrom(r.net.Addr(node), uint16(port)).String()
	}
	off := slices.Index(r.ports, port)
	if off < 0 {
		off = 0
	}
	return "127.0.0.1:" + strconv.Itoa(r.blocks[node]+off)
}

// Env implements Runtime: the node binds where it is reached; its data is under the
// run's directory.
func (r *ProcessRuntime) Env(node string) runtime.NodeEnv {
	return runtime.NodeEnv{Name: node, DataDir: r.dataDir(node),
		Bind: func(port int) string { return r.HostPort(node, port) }}
}

func (r *ProcessRuntime) dataDir(node string) string { return filepath.Join(r.dir, "data", node) }

// Wipe implements Runtime.
func (r *ProcessRuntime) Wipe(_ context.Context, node string) error {
	if r.Running(node) {
		return fmt.Errorf("wipe %s: it is running", node)
	}
	if err := os.RemoveAll(r.dataDir(node)); err != nil {
		return fmt.Errorf("wipe %s: %w", node, err)
	}
	if err := os.MkdirAll(r.dataDir(node), 0o755); err != nil {
		return fmt.Errorf("wipe %s: %w", node, err)
	}
	return nil
}

// Addr implements NetworkRuntime.
func (r *ProcessRuntime) Addr(node string) netip.Addr {
	if r.net == nil {
		return netip.MustParseAddr("127.0.0.1")
	}
	return r.net.Addr(node)
}

// HostAddr implements NetworkRuntime: the bridge's gateway address on the host.
func (r *ProcessRuntime) HostAddr() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.net == nil {
		return netip.Addr{}
	}
	return r.net.HostAddr()
}

// NetNS implements NetworkRuntime.
func (r *ProcessRuntime) NetNS(node string) (string, error) {
	if r.net == nil {
		return "", errors.New("nodes share the host's network: " + r.loopOK)
	}
	return r.net.NSPath(node), nil
}

// Launch implements Runtime: the node's output is appended to nodes/<name>/<program>.log.
func (r *ProcessRuntime) Launch(ctx context.Context, node string, nc runtime.NodeCmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.procs[node]; p != nil && !p.exited() {
		return fmt.Errorf("launch %s: already running as pid %d", node, p.cmd.Process.Pid)
	}
	logDir := filepath.Join(r.dir, "nodes", node)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	if nc.Program == "" {
		return fmt.Errorf("launch %s: no program", node)
	}
	logf, err := os.OpenFile(filepath.Join(logDir, filepath.Base(nc.Program)+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	var cmd *exec.Cmd
	if r.net != nil {
		cmd = r.net.Command(context.Background(), node, nc.Program, nc.Args...)
	} else {
		cmd = exec.Command(nc.Program, nc.Args...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(append(os.Environ(), nc.Env...), // markers for `faultline clean`:
		runtime.RunEnv+"="+r.runID, runtime.HarnessEnv+"="+strconv.Itoa(os.Getpid()))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	fmt.Fprintf(logf, "=== faultline: %s starting %s %v\n", time.Now().UTC().Format(time.RFC3339Nano), nc.Program, nc.Args)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("launch %s: %w", node, err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== faultline: %s exited: %v\n", time.Now().UTC().Format(time.RFC3339Nano), err)
		logf.Close()
		close(p.done)
	}()
	r.procs[node] = p
	return nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (r *ProcessRuntime) running(node string) (*proc, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.procs[node]
	if p == nil || p.exited() {
		return nil, fmt.Errorf("%s is not running", node)
	}
	return p, nil
}

// Running implements Runtime.
func (r *ProcessRuntime) Running(node string) bool {
	_, err := r.running(node)
	return err == nil
}

// Kill implements Runtime: SIGKILL (a paused process dies too), then wait for it.
func (r *ProcessRuntime) Kill(ctx context.Context, node string) error {
	p, err := r.running(node)
	if err != nil {
		return fmt.Errorf("kill: %w", err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	return p.wait(ctx)
}

func (p *proc) wait(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for pid %d: %w", p.cmd.Process.Pid, ctx.Err())
	}
}

// Stop implements Runtime: SIGTERM (and SIGCONT, should it be paused), SIGKILL after StopGrace.
func (r *ProcessRuntime) Stop(ctx context.Context, node string) error {
	p, err := r.running(node)
	if err != nil {
		return nil // already gone: nothing to stop
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	gctx, cancel := context.WithTimeout(ctx, runtime.StopGrace)
	defer cancel()
	if p.wait(gctx) == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	return p.wait(ctx)
}

// Pause implements Runtime with SIGSTOP, and returns once the kernel reports every
// thread of the process stopped (signal delivery is asynchronous, and a thread may run on
// after kill(2) returns: a fault that claims a pause must be one).
func (r *ProcessRuntime) Pause(ctx context.Context, node string) error {
	if err := r.signal(node, syscall.SIGSTOP, true); err != nil {
		return err
	}
	p, err := r.running(node)
	if err != nil {
		return fmt.Errorf("pause: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := procstat.WaitStopped(ctx, p.cmd.Process.Pid); err != nil {
		return fmt.Errorf("pause %s: %w", node, err)
	}
	return nil
}

// State returns the state letter of the node's process (R, S, T for stopped, ...), as
// the kernel reports it: what a test asks to see a pause take effect.
func (r *ProcessRuntime) State(node string) (byte, error) {
	p, err := r.running(node)
	if err != nil {
		return 0, err
	}
	return procstat.State(p.cmd.Process.Pid)
}

// Resume implements Runtime with SIGCONT.
func (r *ProcessRuntime) Resume(_ context.Context, node string) error {
	return r.signal(node, syscall.SIGCONT, false)
}

func (r *ProcessRuntime) signal(node string, sig syscall.Signal, paused bool) error {
	p, err := r.running(node)
	if err != nil {
		return fmt.Errorf("%v: %w", sig, err)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%v %s: %w", sig, node, err)
	}
	r.mu.Lock()
	p.paused = paused
	r.mu.Unlock()
	return nil
}

// Abilities implements Runtime.
func (r *ProcessRuntime) Abilities() runtime.Abilities { return abilities() }

func abilities() runtime.Abilities {
	a := runtime.Abilities{Partition: true, Isolate: true, Links: true, Disks: true, DataDirs: true, Clock: true}
	if ok, why := netns.Available(); !ok {
		a = runtime.Abilities{Why: "nodes share the host's loopback network (" + why + ")", Disks: true, DataDirs: true, Clock: true}
	}
	if err := vclock.Supported(); err != nil {
		a.Clock, a.ClockWhy = false, err.Error()
	}
	return a
}

// SetClock implements runtime.Clocker: the clocks of the node's process and its
// descendants, through vclock. A node launched through nsenter is given them once it
// has exec'd its program (the patch of nsenter's image would go with it).
func (r *ProcessRuntime) SetClock(ctx context.Context, node string, c vclock.Clocks) error {
	p, err := r.running(node)
	if err != nil {
		if c == (vclock.Clocks{}) {
			return nil // a node that is down starts with true clocks
		}
		return fmt.Errorf("clock: %w", err)
	}
	pid := p.cmd.Process.Pid
	if err := waitExec(ctx, pid, p.cmd.Path); err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	if err := vclock.SetTree(pid, c); err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	return nil
}

// waitExec waits (up to 2 s) until pid no longer runs launcher, the program it was
// started as (nsenter, which execs the node's program).
func waitExec(ctx context.Context, pid int, launcher string) error {
	if filepath.Base(launcher) != "nsenter" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for {
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			return err
		}
		if filepath.Base(exe) != "nsenter" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pid %d still runs nsenter: %w", pid, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// HostDataDir implements runtime.HostDirs: a node's data directory is the host's.
func (r *ProcessRuntime) HostDataDir(node string) string { return r.dataDir(node) }

func init() {
	runtime.Register(runtime.Kind{
		Name: "process", Auto: 1,
		Doc: "each node a child process, in a network namespace of its own as root (else on loopback)",
		Probe: func(context.Context) (bool, string) {
			if a := abilities(); !a.Partition {
				return true, "local processes; " + a.Why
			}
			return true, "local processes, each in a network namespace of its own"
		},
		Abilities: func(context.Context) runtime.Abilities { return abilities() },
		New:       func(runID, dir string) (runtime.Runtime, error) { return NewProcessRuntime(runID, dir), nil },
	})
}

// Close implements Runtime: stops every node (resuming paused ones first), then removes
// the run's namespaces, bridge and rules.
func (r *ProcessRuntime) Close(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	r.mu.Lock()
	names := make([]string, 0, len(r.procs))
	for n := range r.procs {
		names = append(names, n)
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = r.Stop(ctx, n) }()
	}
	wg.Wait()
	r.mu.Lock()
	nw := r.net
	r.net = nil
	r.mu.Unlock()
	if nw != nil {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		errs = append(errs, nw.Close(cctx))
	}
	return errors.Join(errs...)
}
