package node_test

import (
	"context"
	"fmt"
	"math/rand"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/procstat"
	"github.com/faultline/faultline/node/client"
)

// Helpers that run raftnode as real processes on 127.0.0.1.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// raftnodeBin builds cmd/raftnode once per test binary (with -race when RAFTNODE_RACE
// is set).
func raftnodeBin(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "raftnode-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "raftnode")
		args := []string{"build", "-o", binPath}
		if os.Getenv("RAFTNODE_RACE") != "" {
			args = append(args, "-race") // the processes under test run with the race detector
		}
		args = append(args, "github.com/faultline/faultline/cmd/raftnode")
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	require.NoError(tb, binErr)
	return binPath
}

// freePort returns a port that was free a moment ago, below the kernel's ephemeral
// range (32768+), so that outgoing connections cannot take it before the node binds.
func freePort(tb testing.TB) int {
	tb.Helper()
	portMu.Lock()
	defer portMu.Unlock()
	for i := 0; i < 1000; i++ {
		port := 20000 + portRand.Intn(12000)
		if portsUsed[port] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		portsUsed[port] = true
		return port
	}
	tb.Fatal("no free port found")
	return 0
}

var (
	portMu    sync.Mutex
	portRand  = rand.New(rand.NewSource(time.Now().UnixNano()))
	portsUsed = map[int]bool{}
)

// proc is one raftnode process.
type proc struct {
	id         uint64
	peerAddr   string
	clientAddr string
	dataDir    string
	logPath    string
	cmd        *exec.Cmd
	done       chan struct{}
}

// cluster is a set of raftnode processes; all are killed at cleanup.
type cluster struct {
	tb    testing.TB
	bin   string
	dir   string
	extra []string
	mu    sync.Mutex
	nodes map[uint64]*proc
	hc    *http.Client
	links map[[2]uint64]*link // from, to → proxy (withLinks only)
}

func newCluster(tb testing.TB, n int, extra ...string) *cluster {
	tb.Helper()
	c := &cluster{tb: tb, bin: raftnodeBin(tb), dir: tb.TempDir(), extra: extra, nodes: map[uint64]*proc{},
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 128}}}
	for i := 1; i <= n; i++ {
		c.define(uint64(i))
	}
	tb.Cleanup(c.killAll)
	if len(extra) > 0 && extra[0] == withLinks {
		c.extra = extra[1:]
		c.startLinks()
	}
	for id := range c.nodes {
		c.start(id, false)
	}
	return c
}

// define allocates ports and a data dir for a node id.
func (c *cluster) define(id uint64) *proc {
	p := &proc{id: id, peerAddr: fmt.Sprintf("127.0.0.1:%d", freePort(c.tb)),
		clientAddr: fmt.Sprintf("127.0.0.1:%d", freePort(c.tb)),
		dataDir:    filepath.Join(c.dir, fmt.Sprintf("d%d", id)), logPath: filepath.Join(c.dir, fmt.Sprintf("n%d.log", id))}
	c.mu.Lock()
	c.nodes[id] = p
	c.mu.Unlock()
	return p
}

// peers is the --peers of node self: direct addresses, or the links' proxies.
func (c *cluster) peers(self uint64) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var parts []string
	for id, p := range c.nodes {
		addr := p.peerAddr
		if l := c.links[[2]uint64{self, id}]; l != nil {
			addr = l.addr
		}
		parts = append(parts, fmt.Sprintf("%d=http://%s", id, addr))
	}
	return strings.Join(parts, ",")
}

// start runs node id (join: with --join).
func (c *cluster) start(id uint64, join bool) {
	c.tb.Helper()
	c.startWithPeers(id, c.peers(id), join)
}

// startWithPeers runs node id with the given --peers.
func (c *cluster) startWithPeers(id uint64, peers string, join bool) {
	c.tb.Helper()
	p := c.nodes[id]
	args := []string{"--id", fmt.Sprint(id), "--peers", peers, "--listen-peer", p.peerAddr,
		"--listen-client", p.clientAddr, "--data-dir", p.dataDir}
	if join {
		args = append(args, "--join")
	}
	args = append(args, c.extra...)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	require.NoError(c.tb, err)
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Nodes die with the test binary, also when it is killed (a go test timeout): a test
	// must leave no process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(c.tb, cmd.Start())
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}(p.done)
}

// kill SIGKILLs node id and waits for it to die.
func (c *cluster) kill(id uint64) {
	p := c.nodes[id]
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// killAtOnce SIGKILLs the nodes all before waiting for any, as a power cut would: none
// gets to flush what it buffered while the others die.
func (c *cluster) killAtOnce(ids ...uint64) {
	for _, id := range ids {
		if p := c.nodes[id]; p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGKILL)
		}
	}
	for _, id := range ids {
		c.kill(id)
	}
}

func (c *cluster) killAll() {
	for id := range c.nodes {
		c.kill(id)
	}
	for id, p := range c.nodes {
		if b, _ := os.ReadFile(p.logPath); strings.Contains(string(b), "WARNING: DATA RACE") {
			c.tb.Errorf("node %d: data race (see its log)", id)
		}
	}
	if c.tb.Failed() {
		for id, p := range c.nodes {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			c.tb.Logf("node %d log tail:\n%s", id, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	}
}

func (c *cluster) client(id uint64) *client.Client {
	return client.New("http://"+c.nodes[id].clientAddr, c.hc)
}

// waitLeader waits until every running node names the same leader, and returns it.
func (c *cluster) waitLeader(timeout time.Duration) uint64 {
	c.tb.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if l := c.agreedLeader(); l != 0 {
			return l
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.tb.Fatalf("no agreed leader within %v", timeout)
	return 0
}

func (c *cluster) agreedLeader() uint64 {
	var leader uint64
	for id, p := range c.nodes {
		if p.cmd == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.client(id).Status(ctx)
		cancel()
		if err != nil || st.Leader == 0 || (leader != 0 && st.Leader != leader) {
			return 0
		}
		leader = st.Leader
	}
	return leader
}

// eventually retries f until it succeeds or timeout passes, and returns its last error.
func eventually(timeout time.Duration, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		err := f(ctx)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pause SIGSTOPs node id and waits until every thread of it has stopped: the signal is
// asynchronous, and on a loaded machine a thread may run on for a while after kill(2)
// returns.
func (c *cluster) pause(id uint64) {
	c.tb.Helper()
	pid := c.nodes[id].cmd.Process.Pid
	require.NoError(c.tb, c.nodes[id].cmd.Process.Signal(syscall.SIGSTOP))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := procstat.WaitStopped(ctx, pid); err != nil {
		c.tb.Fatalf("node %d did not stop: %v", id, err)
	}
}
