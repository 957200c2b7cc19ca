package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness/netns"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/nemesis/netfilter"
)

// RunEnv is set in every node process's environment to the run's id, and HarnessEnv to
// the pid of the harness that started it: `faultline clean` removes the nodes of runs
// whose harness is gone, and leaves live runs alone.
const (
	RunEnv     = "FAULTLINE_RUN"
	HarnessEnv = "FAULTLINE_HARNESS"
)

// StopGrace is how long Stop waits after SIGTERM before it SIGKILLs.
const StopGrace = 5 * time.Second

// ProcessRuntime runs each node as a child process. As root it gives each node its own
// network namespace on a bridge made for the run (netns), so that partitions are packet
// filters inside each node's namespace; otherwise the nodes share loopback, on distinct
// ports, and partitions are unavailable.
//
// Children get SIGKILL if the harness dies (Pdeathsig) and run in their own process
// group, so a terminal's ^C reaches the harness, which then stops them in order.
type ProcessRuntime struct {
	runID  string
	dir    string // nodes/<name>/ holds each node's log
	loopOK string // why network namespaces are not used ("" when they are)
	ports  map[string]int

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
	r := &ProcessRuntime{runID: runID, dir: dir, procs: map[string]*proc{}, ports: map[string]int{}}
	if ok, why := netns.Available(); !ok {
		r.loopOK = why
	}
	return r
}

// Name implements Runtime.
func (r *ProcessRuntime) Name() string { return "process" }

// Isolated reports whether nodes get network namespaces of their own.
func (r *ProcessRuntime) Isolated() bool { return r.loopOK == "" }

// Prepare creates the run's bridge and namespaces (as root), or picks loopback ports.
func (r *ProcessRuntime) Prepare(ctx context.Context, nodes []string) error {
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
	// Loopback: every node gets a block of free ports; HostPort offsets into it.
	for _, n := range nodes {
		base, err := freePortBlock()
		if err != nil {
			return fmt.Errorf("process runtime: %w", err)
		}
		r.ports[n] = base
	}
	return nil
}

// freePortBlock finds a port p with p and p+1 both free (the node's two listeners).
func freePortBlock() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+1))
		l.Close()
		if err == nil {
			l2.Close()
			return p, nil
		}
	}
	return 0, errors.New("no two adjacent free ports on 127.0.0.1")
}

// HostPort implements Runtime. Targets use ports 7001 (peer) and 8001 (client): in a
// namespace they are real; on loopback they map into the node's port block.
func (r *ProcessRuntime) HostPort(node string, port int) string {
	if r.net != nil {
		return netip.AddrPortFrom(r.net.Addr(node), uint16(port)).String()
	}
	off := 0
	if port != 7001 {
		off = 1
	}
	return "127.0.0.1:" + strconv.Itoa(r.ports[node]+off)
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
func (r *ProcessRuntime) Launch(ctx context.Context, node string, nc NodeCmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if p := r.procs[node]; p != nil && !p.exited() {
		return fmt.Errorf("launch %s: already running as pid %d", node, p.cmd.Process.Pid)
	}
	logDir := filepath.Join(r.dir, "nodes", node)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	logf, err := os.OpenFile(filepath.Join(logDir, filepath.Base(nc.Args[0])+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	var cmd *exec.Cmd
	if r.net != nil {
		cmd = r.net.Command(context.Background(), node, nc.Args[0], nc.Args[1:]...)
	} else {
		cmd = exec.Command(nc.Args[0], nc.Args[1:]...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), RunEnv+"="+r.runID, HarnessEnv+"="+strconv.Itoa(os.Getpid())) // for `faultline clean`
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	fmt.Fprintf(logf, "=== faultline: %s starting %v\n", time.Now().UTC().Format(time.RFC3339Nano), nc.Args)
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
	gctx, cancel := context.WithTimeout(ctx, StopGrace)
	defer cancel()
	if p.wait(gctx) == nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	return p.wait(ctx)
}

// Pause implements Runtime with SIGSTOP, and returns once the kernel reports the process
// stopped (signal delivery is asynchronous: a fault that claims a pause must be one).
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
	for {
		st, err := procState(p.cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("pause %s: %w", node, err)
		}
		if st == 'T' || st == 't' {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pause %s: still in state %c after SIGSTOP: %w", node, st, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// procState returns the state letter of a process (R, S, T, Z, ...) from /proc.
func procState(pid int) (byte, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("process state: %w", err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0, fmt.Errorf("process state: cannot parse /proc/%d/stat", pid)
	}
	return b[i+2], nil
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

// Partition implements nemesis.Partitioner: each node's namespace drops its grudge's peers.
func (r *ProcessRuntime) Partition(ctx context.Context, g nemesis.Grudge) error {
	if r.net == nil {
		return errors.New("partition: nodes share the host's network: " + r.loopOK)
	}
	for _, node := range r.nodeNames() {
		var drop []netip.Addr
		for _, peer := range g[node] {
			drop = append(drop, r.net.Addr(peer))
		}
		var err error
		if len(drop) == 0 {
			err = netfilter.Clear(ctx, r.net.NSPath(node))
		} else {
			err = netfilter.Apply(ctx, r.net.NSPath(node), drop)
		}
		if err != nil {
			return fmt.Errorf("partition %s: %w", node, err)
		}
	}
	return nil
}

// HealPartition implements nemesis.Partitioner.
func (r *ProcessRuntime) HealPartition(ctx context.Context) error {
	if r.net == nil {
		return nil
	}
	var errs []error
	for _, node := range r.nodeNames() {
		if err := netfilter.Clear(ctx, r.net.NSPath(node)); err != nil {
			errs = append(errs, fmt.Errorf("heal %s: %w", node, err))
		}
	}
	return errors.Join(errs...)
}

func (r *ProcessRuntime) nodeNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	if r.net != nil {
		names = r.net.Nodes()
	}
	return slices.Sorted(slices.Values(names))
}

// Unavailable implements Runtime.
func (r *ProcessRuntime) Unavailable() map[string]string {
	if r.loopOK == "" {
		return map[string]string{}
	}
	why := "nodes share the host's loopback network (" + r.loopOK + ")"
	return map[string]string{"partition": why, "packet": why}
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
