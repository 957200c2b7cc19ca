package etcd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
)

// testRT plays the harness's runtime for the target's tests: each node a process on
// 127.0.0.1 with its own ports and data dir, started from the target's NodeCmd, which it
// can stop, kill, wipe and start again. Every process is killed when the test ends
// (t.Cleanup) and dies with the test binary (Pdeathsig).
type testRT struct {
	t     *testing.T
	dir   string
	names []string
	ports map[string]map[int]int // node → its port (PeerPort, ClientPort) → host port

	mu    sync.Mutex
	procs map[string]*testProc
}

type testProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

func newTestRT(t *testing.T, n int) *testRT {
	t.Helper()
	r := &testRT{t: t, dir: t.TempDir(), ports: map[string]map[int]int{}, procs: map[string]*testProc{}}
	free := testPorts(t, 2*n)
	for i := range n {
		node := fmt.Sprintf("n%d", i+1)
		r.names = append(r.names, node)
		r.ports[node] = map[int]int{PeerPort: free[2*i], ClientPort: free[2*i+1]}
		if err := os.MkdirAll(r.dataDir(node), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range r.names {
			r.kill(n)
		}
	})
	return r
}

func (r *testRT) addr(node string, port int) string {
	return fmt.Sprintf("127.0.0.1:%d", r.ports[node][port])
}

func (r *testRT) dataDir(node string) string { return filepath.Join(r.dir, node, "data") }
func (r *testRT) logPath(node string) string { return filepath.Join(r.dir, node, "log") }

// env is the sut.Env of the run (no link proxy: peers reach each other directly).
func (r *testRT) env() sut.Env {
	return sut.Env{Nodes: r.names, Reach: r.addr, PeerReach: r.addr, RunID: "test", Dir: r.dir,
		Logf:    func(format string, args ...any) { r.t.Logf("target: "+format, args...) },
		LogTail: func(node string) string { return r.logTail(node, 5) }}
}

func (r *testRT) nodeEnv(node string) runtime.NodeEnv {
	return runtime.NodeEnv{Name: node, DataDir: r.dataDir(node),
		Bind: func(port int) string { return r.addr(node, port) }}
}

// launch starts cmd as node's process, its output appended to node's log.
func (r *testRT) launch(node string, cmd runtime.NodeCmd) {
	r.t.Helper()
	if r.running(node) {
		r.t.Fatalf("launch %s: it is running", node)
	}
	logf, err := os.OpenFile(r.logPath(node), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== %s %s\n", cmd.Program, strings.Join(cmd.Args, " "))
	c := exec.Command(cmd.Program, cmd.Args...)
	c.Env = append(os.Environ(), cmd.Env...)
	c.Stdout, c.Stderr = logf, logf
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.Start(); err != nil {
		r.t.Fatalf("start %s: %v", node, err)
	}
	p := &testProc{cmd: c, exited: make(chan struct{})}
	go func() { _ = c.Wait(); close(p.exited) }()
	r.mu.Lock()
	r.procs[node] = p
	r.mu.Unlock()
}

func (r *testRT) proc(node string) *testProc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.procs[node]
}

func (r *testRT) running(node string) bool {
	p := r.proc(node)
	if p == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// waitExit waits up to d for node's process to exit by itself.
func (r *testRT) waitExit(node string, d time.Duration) bool {
	p := r.proc(node)
	if p == nil {
		return true
	}
	select {
	case <-p.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// kill SIGKILLs node and waits until it is reaped.
func (r *testRT) kill(node string) {
	if p := r.proc(node); p != nil && r.running(node) {
		_ = p.cmd.Process.Kill()
		if !r.waitExit(node, 10*time.Second) {
			r.t.Errorf("etcd %s (pid %d) did not die", node, p.cmd.Process.Pid)
		}
	}
}

// stop asks node to shut down (SIGTERM), and kills it after 10 s.
func (r *testRT) stop(node string) {
	if p := r.proc(node); p != nil && r.running(node) {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !r.waitExit(node, 10*time.Second) {
			r.t.Logf("%s ignored SIGTERM for 10 s: killing it", node)
			r.kill(node)
		}
	}
}

// wipe empties node's data dir; node must not be running.
func (r *testRT) wipe(node string) {
	r.t.Helper()
	if r.running(node) {
		r.t.Fatalf("wipe %s: it is running", node)
	}
	if err := os.RemoveAll(r.dataDir(node)); err != nil {
		r.t.Fatal(err)
	}
	if err := os.MkdirAll(r.dataDir(node), 0o755); err != nil {
		r.t.Fatal(err)
	}
}

// logTail is the end of node's log.
func (r *testRT) logTail(node string, lines int) string {
	b, _ := os.ReadFile(r.logPath(node))
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// panicOf is the start of the last panic in node's log, if any: the lines before
// "panic:" (etcd logs why at level panic/fatal first) and a few after it.
func (r *testRT) panicOf(node string) string {
	b, _ := os.ReadFile(r.logPath(node))
	ls := strings.Split(string(b), "\n")
	for i := len(ls) - 1; i >= 0; i-- {
		if strings.HasPrefix(ls[i], "panic:") {
			return strings.Join(ls[max(0, i-3):min(len(ls), i+6)], "\n")
		}
	}
	return ""
}

// testCluster is an etcd target on a testRT.
type testCluster struct {
	*testRT
	tg *Target
}

// startTarget starts an n-node etcd target of cfg, the way the harness does: every
// node from Node, then Ready polled; nodes whose release is given in versions (node →
// release) start on it (SetVersion before the first start).
func startTarget(t *testing.T, cfg Config, n int, versions map[string]string) *testCluster {
	t.Helper()
	r := newTestRT(t, n)
	tg := New(cfg, r.env())
	t.Cleanup(func() { _ = tg.Close() })
	c := &testCluster{testRT: r, tg: tg}
	for node, v := range versions {
		if err := tg.SetVersion(node, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range r.names {
		c.start(node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sut.Poll(ctx, 200*time.Millisecond, tg.Ready); err != nil {
		c.fatal("cluster not ready: %v", err)
	}
	return c
}

// start launches node's current command.
func (c *testCluster) start(node string) {
	c.t.Helper()
	c.launch(node, c.tg.Node(c.nodeEnv(node)))
}

// fatal fails the test with every node's log tail.
func (c *testCluster) fatal(format string, args ...any) {
	c.t.Helper()
	var b strings.Builder
	for _, n := range c.names {
		fmt.Fprintf(&b, "\n--- %s (running %v):\n%s", n, c.running(n), c.logTail(n, 15))
		if p := c.panicOf(n); p != "" {
			fmt.Fprintf(&b, "\n--- %s panicked:\n%s", n, p)
		}
	}
	c.t.Fatalf(format+"%s", append(args, b.String())...)
}

// replace is the harness's member replacement (harness/cluster.go): remove, wait for
// the exit (kill after 10 s), wipe, add, start as a joining member, wait until joined.
// It reports whether the removed member exited by itself.
func (c *testCluster) replace(ctx context.Context, node string) (exited bool) {
	c.t.Helper()
	if err := c.tg.RemoveMember(ctx, node); err != nil {
		c.fatal("remove %s: %v", node, err)
	}
	exited = c.waitExit(node, 10*time.Second)
	c.kill(node)
	c.wipe(node)
	if err := c.tg.AddMember(ctx, node); err != nil {
		c.fatal("add %s: %v", node, err)
	}
	c.start(node)
	if err := c.tg.Joined(ctx, node); err != nil {
		c.fatal("%s joined: %v", node, err)
	}
	return exited
}

// restartOn is the harness's step of a rolling upgrade (or downgrade): stop node, set
// its release, start it again, wait for Healthy.
func (c *testCluster) restartOn(ctx context.Context, node, version string) {
	c.t.Helper()
	c.stop(node)
	if err := c.tg.SetVersion(node, version); err != nil {
		c.t.Fatal(err)
	}
	c.start(node)
	if err := c.tg.Healthy(ctx); err != nil {
		c.fatal("healthy after %s moved to %s: %v", node, version, err)
	}
}

// releaseBin returns the server of an etcd release: Debian's /usr/bin/etcd for v3.4.23
// (the test is skipped without it), else Binary's build (cached after the first, which
// takes about a minute).
func releaseBin(t *testing.T, version string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd members (and may build them): skipped in -short mode")
	}
	if version == "v3.4.23" {
		const debian = "/usr/bin/etcd"
		if v, err := BinaryVersion(context.Background(), debian); err != nil || v != version {
			t.Skipf("no etcd %s at %s (%s, %v)", version, debian, v, err)
		}
		return debian
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	bin, err := Binary(ctx, version, func(line string) { t.Log(line) })
	if err != nil {
		t.Fatalf("etcd %s: %v", version, err)
	}
	return bin
}

// releases is a Config running these releases, the first the one the cluster starts on.
func releases(t *testing.T, versions ...string) Config {
	t.Helper()
	cfg := Config{Binaries: map[string]string{}, Versions: versions}
	for _, v := range versions {
		cfg.Binaries[v] = releaseBin(t, v)
	}
	cfg.Binary, cfg.Version = cfg.Binaries[versions[0]], versions[0]
	return cfg
}
