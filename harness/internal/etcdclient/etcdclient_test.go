package etcdclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/faultline/faultline/workload"
)

func TestClassify(t *testing.T) {
	wrapped := fmt.Errorf("x: %w", context.DeadlineExceeded)
	for _, tc := range []struct {
		name string
		err  error
		want bool // definite for a mutation
	}{
		{"no leader (status)", rpctypes.ErrGRPCNoLeader, true},
		{"no leader (client)", rpctypes.ErrNoLeader, true},
		{"not capable", rpctypes.ErrNotCapable, true},
		{"learner", rpctypes.ErrGRPCNotSupportedForLearner, true},
		{"invalid api version", rpctypes.ErrGRPCInvalidClientAPIVersion, true},
		{"empty key", rpctypes.ErrEmptyKey, true},
		{"value provided", rpctypes.ErrGRPCValueProvided, true},
		{"lease provided", rpctypes.ErrGRPCLeaseProvided, true},
		{"too many ops", rpctypes.ErrTooManyOps, true},
		{"duplicate key", rpctypes.ErrDuplicateKey, true},
		{"too large", rpctypes.ErrRequestTooLarge, true},
		{"too many requests (client)", rpctypes.ErrTooManyRequests, true},
		{"too many requests (wire: Unknown)", grpcstatus.Error(codes.Unknown, "etcdserver: too many requests"), true},
		{"proposal dropped", grpcstatus.Error(codes.Unknown, "raft proposal dropped"), true},
		{"proposal dropped, other code", grpcstatus.Error(codes.Unavailable, "raft proposal dropped"), false},
		{"no space", rpctypes.ErrNoSpace, false},
		{"no space (status)", rpctypes.ErrGRPCNoSpace, false},
		{"timeout", rpctypes.ErrTimeout, false},
		{"timeout leader fail", rpctypes.ErrTimeoutDueToLeaderFail, false},
		{"timeout connection lost", rpctypes.ErrTimeoutDueToConnectionLost, false},
		{"timeout wait applied", rpctypes.ErrGRPCTimeoutWaitAppliedIndex, false},
		{"leader changed", rpctypes.ErrLeaderChanged, false},
		{"stopped", rpctypes.ErrStopped, false},
		{"canceled (server)", rpctypes.ErrGRPCCanceled, false},
		{"deadline (server)", rpctypes.ErrGRPCDeadlineExceeded, false},
		{"not leader", rpctypes.ErrNotLeader, false},
		{"unavailable", grpcstatus.Error(codes.Unavailable, "connection error: desc = \"transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused\""), false},
		{"unavailable no connection", grpcstatus.Error(codes.Unavailable, "there is no connection available"), false},
		{"status deadline", grpcstatus.Error(codes.DeadlineExceeded, "context deadline exceeded"), false},
		{"status canceled", grpcstatus.Error(codes.Canceled, "context canceled"), false},
		{"internal", grpcstatus.Error(codes.Internal, "etcdserver: no leader?"), false},
		{"ctx deadline", context.DeadlineExceeded, false},
		{"ctx canceled", context.Canceled, false},
		{"wrapped ctx deadline", wrapped, false},
		{"plain", errors.New("etcdserver: something new"), false},
		{"closing", grpcstatus.Error(codes.Canceled, "grpc: the client connection is closing"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.err, true)
			if workload.IsDefinite(got) != tc.want {
				t.Errorf("mutation: Classify(%v) definite = %v, want %v", tc.err, workload.IsDefinite(got), tc.want)
			}
			if got.Error() != tc.err.Error() {
				t.Errorf("classify changed the message: %q → %q", tc.err, got)
			}
			if !errors.Is(got, tc.err) {
				t.Errorf("Classify(%v) does not wrap it", tc.err)
			}
			if r := Classify(tc.err, false); !workload.IsDefinite(r) {
				t.Errorf("read: Classify(%v) is not definite", tc.err)
			}
		})
	}
	if Classify(nil, true) != nil || Classify(nil, false) != nil {
		t.Error("Classify(nil) is not nil")
	}
}

// fakeKV is an etcd KV service that fails every call with err and counts the calls.
type fakeKV struct {
	pb.UnimplementedKVServer
	err                error
	puts, txns, ranges atomic.Int64
}

func (f *fakeKV) Put(context.Context, *pb.PutRequest) (*pb.PutResponse, error) {
	f.puts.Add(1)
	return nil, f.err
}

func (f *fakeKV) Txn(context.Context, *pb.TxnRequest) (*pb.TxnResponse, error) {
	f.txns.Add(1)
	return nil, f.err
}

func (f *fakeKV) Range(context.Context, *pb.RangeRequest) (*pb.RangeResponse, error) {
	f.ranges.Add(1)
	return nil, f.err
}

func startFakeKV(t *testing.T, err error) (*fakeKV, string) {
	t.Helper()
	l, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	f := &fakeKV{err: err}
	s := grpc.NewServer()
	pb.RegisterKVServer(s, f)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return f, l.Addr().String()
}

// TestNoClientRetries pins what the retry analysis in NewClient relies on: with our
// configuration, clientv3 sends every operation exactly once, even when the server answers
// with the errors clientv3's retry interceptor retries under its default configuration —
// which the test shows it does, so that the pin cannot pass vacuously.
func TestNoClientRetries(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
	}{
		// isSafeRetryMutableRPC retries mutations on exactly this.
		{"unavailable no connection", grpcstatus.Error(codes.Unavailable, "there is no connection available")},
		// unaryClientInterceptor retries any method on this while the caller's ctx lives.
		{"deadline exceeded", grpcstatus.Error(codes.DeadlineExceeded, "server-side deadline")},
		// isSafeRetryImmutableRPC retries reads on any Unavailable.
		{"request timed out", rpctypes.ErrGRPCTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, addr := startFakeKV(t, tc.err)
			c := newTestClient(t, Config{Endpoint: addr, OpTimeout: 2 * time.Second})
			ctx := ctxT(t, 10*time.Second)
			if err := c.Write(ctx, "k", "v"); err == nil || workload.IsDefinite(err) {
				t.Errorf("write = %v, want an indeterminate error", err)
			}
			if err := c.CAS(ctx, "k", "a", "b"); err == nil || workload.IsDefinite(err) {
				t.Errorf("cas = %v, want an indeterminate error", err)
			}
			if _, _, err := c.Read(ctx, "k"); !workload.IsDefinite(err) {
				t.Errorf("read = %v, want a definite error", err)
			}
			if err := c.Append(ctx, "k", "v"); !workload.IsDefinite(err) {
				t.Errorf("append (failing at its read) = %v, want a definite error", err)
			}
			if p, x, r := f.puts.Load(), f.txns.Load(), f.ranges.Load(); p != 1 || x != 1 || r != 2 {
				t.Errorf("server saw %d puts, %d txns, %d ranges; want exactly 1, 1, 2 (no retries)", p, x, r)
			}

			// The control: clientv3's defaults retry the same calls.
			def, err := clientv3.New(clientv3.Config{Endpoints: []string{addr}, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer def.Close()
			before := f.puts.Load() + f.ranges.Load()
			dctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, _ = def.Put(dctx, "k", "v")
			_, _ = def.Get(dctx, "k")
			if n := f.puts.Load() + f.ranges.Load() - before; n <= 2 {
				t.Errorf("clientv3's default config sent %d puts+ranges: the control shows no retries, so this test proves nothing", n)
			}
		})
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newTestClient opens a Client of endpoint, closed when the test ends.
func newTestClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// fakeLease is an etcd Lease service: grants lease 0x2a for 7 s; answers keepalives
// with ttl (0: etcd's "no such lease") or fails them with err; revokes with err.
type fakeLease struct {
	pb.UnimplementedLeaseServer
	ttl        int64
	err        error
	keepalives atomic.Int64
}

func (f *fakeLease) LeaseGrant(context.Context, *pb.LeaseGrantRequest) (*pb.LeaseGrantResponse, error) {
	return &pb.LeaseGrantResponse{ID: 0x2a, TTL: 7}, nil
}

func (f *fakeLease) LeaseRevoke(context.Context, *pb.LeaseRevokeRequest) (*pb.LeaseRevokeResponse, error) {
	return nil, f.err
}

func (f *fakeLease) LeaseKeepAlive(s pb.Lease_LeaseKeepAliveServer) error {
	for {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		f.keepalives.Add(1)
		if f.err != nil {
			return f.err
		}
		if err := s.Send(&pb.LeaseKeepAliveResponse{ID: req.ID, TTL: f.ttl}); err != nil {
			return err
		}
	}
}

// The lease operations' answers, as the lease checker reads them: etcd's "requested
// lease not found" (an error, or a keepalive's TTL of 0) is workload.ErrLeaseNotFound;
// a keepalive that cannot reach the server is tried once, indeterminate.
func TestLeaseAnswers(t *testing.T) {
	start := func(t *testing.T, f *fakeLease, kvErr error) *Client {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		s := grpc.NewServer()
		pb.RegisterLeaseServer(s, f)
		pb.RegisterKVServer(s, &fakeKV{err: kvErr})
		go func() { _ = s.Serve(l) }()
		t.Cleanup(s.Stop)
		return newTestClient(t, Config{Endpoint: l.Addr().String(), OpTimeout: 2 * time.Second})
	}
	notFound := rpctypes.ErrGRPCLeaseNotFound
	ctx := ctxT(t, 20*time.Second)

	c := start(t, &fakeLease{ttl: 7, err: notFound}, notFound)
	id, ttl, err := c.Grant(ctx, 5*time.Second)
	require.NoError(t, err)
	assert.Equal(t, "2a", id)
	assert.Equal(t, 7*time.Second, ttl)
	assert.ErrorIs(t, c.Revoke(ctx, id), workload.ErrLeaseNotFound)
	assert.ErrorIs(t, c.PutWithLease(ctx, "k", "v", id), workload.ErrLeaseNotFound)
	assert.True(t, workload.IsDefinite(c.Revoke(ctx, "zz")), "a lease id that is not one is refused before anything is sent")

	c = start(t, &fakeLease{ttl: 7}, nil)
	ttl, err = c.KeepAlive(ctx, "2a")
	require.NoError(t, err)
	assert.Equal(t, 7*time.Second, ttl)

	c = start(t, &fakeLease{ttl: 0}, nil)
	_, err = c.KeepAlive(ctx, "2a")
	assert.ErrorIs(t, err, workload.ErrLeaseNotFound)

	f := &fakeLease{err: grpcstatus.Error(codes.Unavailable, "leader changed")}
	c = start(t, f, nil)
	_, err = c.KeepAlive(ctx, "2a")
	require.Error(t, err)
	assert.False(t, workload.IsDefinite(err), "%v: the renewal may have been made", err)
	assert.Equal(t, int64(1), f.keepalives.Load(), "one request, no retry loop")
}
