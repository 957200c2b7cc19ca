package etcd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/internal/etcdclient"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/faultline/faultline/internal/freeport"
	"github.com/faultline/faultline/internal/procstat"
)

// testEtcdVersion is the release the client tests run against.
const testEtcdVersion = "v3.7.3"

// testEtcdBin returns an etcd server of testEtcdVersion without building one: a hand
// build under /tmp/etcdb, or Binary's cache. It skips the test when there is none.
func testEtcdBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts etcd members: skipped in -short mode")
	}
	cands := []string{filepath.Join("/tmp/etcdb", testEtcdVersion, "etcd")}
	if d, err := CacheDir(); err == nil {
		cands = append(cands, filepath.Join(d, testEtcdVersion, "etcd"))
	}
	for _, c := range cands {
		if st, err := os.Stat(c); err == nil && st.Mode()&0o111 != 0 {
			return c
		}
	}
	t.Skipf("no etcd %s server binary (looked at %s); run TestBinaryBuildsAndCaches (it builds one into the cache)",
		testEtcdVersion, strings.Join(cands, ", "))
	return ""
}

// member is one etcd server a test started.
type member struct {
	name     string
	endpoint string // host:port of the client URL
	cmd      *exec.Cmd
	log      string
	exited   chan struct{}
}

// testPorts returns n distinct free loopback ports.
func testPorts(t *testing.T, n int) []int {
	t.Helper()
	ports, err := freeport.Ports(n)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// startCluster starts an n-member etcd cluster on 127.0.0.1 with fresh data dirs and
// waits until every member serves a linearizable read. Every member is killed (and
// reaped) when the test ends; each also dies with the test binary (Pdeathsig).
func startCluster(t *testing.T, bin string, n int) []*member {
	t.Helper()
	ports := testPorts(t, 2*n)
	var initial []string
	for i := range n {
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i+1, ports[2*i+1]))
	}
	dir := t.TempDir()
	ms := make([]*member, n)
	for i := range n {
		name := fmt.Sprintf("m%d", i+1)
		client := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i])
		peer := fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1])
		m := &member{name: name, endpoint: strings.TrimPrefix(client, "http://"),
			log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
		logf, err := os.Create(m.log)
		if err != nil {
			t.Fatal(err)
		}
		m.cmd = exec.Command(bin,
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new", "--initial-cluster-token", "faultline-test",
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--log-level", "warn")
		m.cmd.Stdout, m.cmd.Stderr = logf, logf
		m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := m.cmd.Start(); err != nil {
			logf.Close()
			t.Fatalf("start etcd %s: %v", name, err)
		}
		logf.Close()
		go func() { _ = m.cmd.Wait(); close(m.exited) }()
		t.Cleanup(func() { m.kill(t) })
		ms[i] = m
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, m := range ms {
		m.waitReady(t, ctx)
	}
	return ms
}

// kill SIGKILLs the member (paused or not) and waits for it to be reaped.
func (m *member) kill(t *testing.T) {
	t.Helper()
	select {
	case <-m.exited:
		return
	default:
	}
	_ = m.cmd.Process.Kill()
	select {
	case <-m.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("etcd %s (pid %d) did not die", m.name, m.cmd.Process.Pid)
	}
}

// signal sends sig to the member; for SIGSTOP it returns once every thread of it has
// stopped (kill(2) only queues the signal: a thread left running can still answer a
// request — CI saw a Put acknowledged "through" a SIGSTOP that had not yet landed).
func (m *member) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to etcd %s: %v", sig, m.name, err)
	}
	if sig != syscall.SIGSTOP {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := procstat.WaitStopped(ctx, m.cmd.Process.Pid); err != nil {
		t.Fatalf("etcd %s: %v", m.name, err)
	}
}

// waitReady waits until the member answers a linearizable Get.
func (m *member) waitReady(t *testing.T, ctx context.Context) {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.endpoint}, Logger: zap.NewNop(), DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	var last error
	for {
		gctx, cancel := context.WithTimeout(ctx, time.Second)
		_, last = cli.Get(gctx, "faultline-ready")
		cancel()
		if last == nil {
			return
		}
		select {
		case <-m.exited:
			t.Fatalf("etcd %s exited during startup:\n%s", m.name, m.logTail())
		case <-ctx.Done():
			t.Fatalf("etcd %s not ready: %v\n%s", m.name, last, m.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (m *member) logTail() string {
	b, _ := os.ReadFile(m.log)
	ls := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(ls) > 20 {
		ls = ls[len(ls)-20:]
	}
	return strings.Join(ls, "\n")
}

// newTestClient opens a Client of endpoint, closed when the test ends.
func newTestClient(t *testing.T, cfg etcdclient.Config) *etcdclient.Client {
	t.Helper()
	c, err := etcdclient.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}
