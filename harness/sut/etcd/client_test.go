package etcd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/internal/etcdclient"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/faultline/faultline/workload"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestClientOperations(t *testing.T) {
	m := startCluster(t, testEtcdBin(t), 1)[0]
	c := newTestClient(t, etcdclient.Config{Endpoint: m.endpoint, OpTimeout: 5 * time.Second})
	ctx := ctxT(t, 30*time.Second)

	if v, found, err := c.Read(ctx, "r"); err != nil || found {
		t.Fatalf("read of a missing key = %q, %v, %v; want not found", v, found, err)
	}
	if err := c.CAS(ctx, "r", "", "x"); !errors.Is(err, workload.ErrMismatch) {
		t.Fatalf("CAS on a missing key = %v, want ErrMismatch", err)
	}
	if err := c.Write(ctx, "r", "1"); err != nil {
		t.Fatal(err)
	}
	if v, found, err := c.Read(ctx, "r"); err != nil || !found || v != "1" {
		t.Fatalf("read = %q, %v, %v; want 1", v, found, err)
	}
	if err := c.CAS(ctx, "r", "1", "2"); err != nil {
		t.Fatalf("CAS 1→2: %v", err)
	}
	err := c.CAS(ctx, "r", "1", "3")
	if !errors.Is(err, workload.ErrMismatch) || !workload.IsDefinite(err) {
		t.Fatalf("CAS 1→3 on 2 = %v, want the definite ErrMismatch", err)
	}
	if v, _, _ := c.Read(ctx, "r"); v != "2" {
		t.Fatalf("after the CASes the register is %q, want 2", v)
	}

	if l, err := c.ReadList(ctx, "l"); err != nil || l == nil || len(l) != 0 {
		t.Fatalf("read of a missing list = %#v, %v; want empty", l, err)
	}
	odd := []string{"a", "", `"quoted", with comma`, "[1]", "ü\n\t"}
	for _, v := range odd {
		if err := c.Append(ctx, "l", v); err != nil {
			t.Fatalf("append %q: %v", v, err)
		}
	}
	if l, err := c.ReadList(ctx, "l"); err != nil || !slices.Equal(l, odd) {
		t.Fatalf("list = %#v, %v; want %#v", l, err, odd)
	}
	if err := c.Append(ctx, "l", "\xff"); !workload.IsDefinite(err) {
		t.Fatalf("append of invalid UTF-8 = %v, want a definite error", err)
	}
	// A register's value is not a list: a definite error, nothing written.
	if err := c.Append(ctx, "r", "x"); err == nil || !workload.IsDefinite(err) {
		t.Fatalf("append to a non-list = %v, want a definite error", err)
	}
	if _, err := c.ReadList(ctx, "r"); err == nil || !workload.IsDefinite(err) {
		t.Fatalf("read list of a non-list = %v, want a definite error", err)
	}

	s := newTestClient(t, etcdclient.Config{Endpoint: m.endpoint, OpTimeout: 5 * time.Second, Serializable: true})
	if v, found, err := s.Read(ctx, "r"); err != nil || !found || v != "2" {
		t.Fatalf("serializable read = %q, %v, %v; want 2", v, found, err)
	}
	if l, err := s.ReadList(ctx, "l"); err != nil || !slices.Equal(l, odd) {
		t.Fatalf("serializable list = %#v, %v", l, err)
	}
}

// TestConcurrentAppends races appenders on one key through separate clients: every
// element must be there exactly once, each appender's in its order.
func TestConcurrentAppends(t *testing.T) {
	m := startCluster(t, testEtcdBin(t), 1)[0]
	const clients, each = 6, 25
	ctx := ctxT(t, 60*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for i := range clients {
		c := newTestClient(t, etcdclient.Config{Endpoint: m.endpoint, OpTimeout: 10 * time.Second})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if err := c.Append(ctx, "l", fmt.Sprintf("%d-%d", i, j)); err != nil {
					errs <- fmt.Errorf("append %d-%d: %w", i, j, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	c := newTestClient(t, etcdclient.Config{Endpoint: m.endpoint, OpTimeout: 5 * time.Second})
	l, err := c.ReadList(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != clients*each {
		t.Errorf("list has %d elements, want %d", len(l), clients*each)
	}
	seen := map[string]bool{}
	next := make([]int, clients)
	for _, v := range l {
		if seen[v] {
			t.Errorf("duplicated element %q", v)
		}
		seen[v] = true
		var i, j int
		if _, err := fmt.Sscanf(v, "%d-%d", &i, &j); err != nil || i < 0 || i >= clients {
			t.Fatalf("unexpected element %q", v)
		}
		if j != next[i] {
			t.Errorf("appender %d: element %d where %d was due", i, j, next[i])
		}
		next[i] = j + 1
	}
}

// checkDown checks what a client of an unresponsive member returns: an indeterminate
// error for a write or CAS (it may have been sent), a definite one for reads, and for an
// append, whose first step is a read (so it never got to send its Txn).
func checkDown(t *testing.T, c *etcdclient.Client, what string) {
	t.Helper()
	for name, op := range map[string]func(ctx context.Context) error{
		"write": func(ctx context.Context) error { return c.Write(ctx, "r", "v") },
		"cas":   func(ctx context.Context) error { return c.CAS(ctx, "r", "a", "b") },
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		start := time.Now()
		err := op(ctx)
		cancel()
		if err == nil || workload.IsDefinite(err) {
			t.Errorf("%s: %s = %v, want an indeterminate error", what, name, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: %s took %v", what, name, d)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, _, err := c.Read(ctx, "r"); err == nil || !workload.IsDefinite(err) {
		t.Errorf("%s: read = %v, want a definite error", what, err)
	}
	if _, err := c.ReadList(ctx, "l"); err == nil || !workload.IsDefinite(err) {
		t.Errorf("%s: read list = %v, want a definite error", what, err)
	}
	actx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := c.Append(actx, "l", "v"); err == nil || !workload.IsDefinite(err) {
		t.Errorf("%s: append = %v, want a definite error (its read failed)", what, err)
	}
}

func TestClientPausedKilledAbsentServer(t *testing.T) {
	m := startCluster(t, testEtcdBin(t), 1)[0]
	c := newTestClient(t, etcdclient.Config{Endpoint: m.endpoint, OpTimeout: 5 * time.Second})
	if err := c.Write(ctxT(t, 5*time.Second), "r", "a"); err != nil {
		t.Fatal(err)
	}

	m.signal(t, syscall.SIGSTOP)
	checkDown(t, c, "paused server")
	m.signal(t, syscall.SIGCONT)
	if v, _, err := c.Read(ctxT(t, 10*time.Second), "r"); err != nil {
		t.Fatalf("read after SIGCONT: %v", err)
	} else if v != "a" && v != "v" && v != "b" {
		t.Fatalf("read after SIGCONT = %q", v)
	}

	m.kill(t)
	checkDown(t, c, "killed server")

	// A server that never existed: NewClient does not wait for it.
	port := testPorts(t, 1)[0]
	start := time.Now()
	n := newTestClient(t, etcdclient.Config{Endpoint: fmt.Sprintf("127.0.0.1:%d", port), OpTimeout: time.Second})
	if d := time.Since(start); d > time.Second {
		t.Errorf("NewClient of an absent server took %v", d)
	}
	checkDown(t, n, "absent server")
	// The op timeout alone bounds an operation.
	start = time.Now()
	if err := n.Write(context.Background(), "r", "v"); err == nil || workload.IsDefinite(err) {
		t.Errorf("write to an absent server with only OpTimeout = %v", err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("write with OpTimeout 1s took %v", d)
	}
}

// TestNoLeaderIsDefinite cuts a member off from its cluster (the other member of two is
// killed). Once it has no leader, a write through it fails fast and definitely with
// "etcdserver: no leader": the require-leader check rejects it before the handler (see
// rejectedBeforeRaft). Without that check the same Put hangs until its deadline (raft's
// node loop stops taking proposals while it has no leader), an indeterminate outcome:
// which is why every mutation carries the check.
func TestNoLeaderIsDefinite(t *testing.T) {
	ms := startCluster(t, testEtcdBin(t), 2)
	ms[1].kill(t)
	c := newTestClient(t, etcdclient.Config{Endpoint: ms[0].endpoint, OpTimeout: time.Second})
	deadline := time.Now().Add(15 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		start := time.Now()
		err = c.Write(context.Background(), "r", "v")
		if errors.Is(err, rpctypes.ErrNoLeader) {
			if !workload.IsDefinite(err) {
				t.Fatalf("no-leader write error %v is not definite", err)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("the no-leader write took %v", d)
			}
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !errors.Is(err, rpctypes.ErrNoLeader) {
		t.Fatalf("write through a leaderless member: %v, want etcdserver: no leader", err)
	}
	if _, _, err := c.Read(context.Background(), "r"); !errors.Is(err, rpctypes.ErrNoLeader) || !workload.IsDefinite(err) {
		t.Errorf("read through a leaderless member = %v, want a definite no leader", err)
	}

	// Without the require-leader metadata the Put reaches the handler and waits.
	raw, err := clientv3.New(etcdclient.RawConfig(ms[0].endpoint, zap.NewNop()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = raw.Put(ctx, "r", "v")
	// The deadline comes back as the context's error or as a gRPC DeadlineExceeded
	// status (the server's or the transport's), depending on who noticed it first.
	expired := errors.Is(err, context.DeadlineExceeded) || grpcstatus.Code(err) == codes.DeadlineExceeded
	if !expired || workload.IsDefinite(etcdclient.Classify(err, true)) {
		t.Errorf("raw Put through a leaderless member = %v, want an indeterminate deadline", err)
	}
}
