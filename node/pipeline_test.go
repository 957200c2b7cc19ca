package node

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// recvServer is a peer's /raft endpoint that records what it steps, in order, and counts
// the connections made to it.
type recvServer struct {
	srv   *httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	got   []uint64 // the Commit field of each message received
	hold  func(first uint64) bool
}

func newRecvServer(t *testing.T, hold func(first uint64) bool) *recvServer {
	r := &recvServer{hold: hold}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, err := io.ReadAll(req.Body)
		require.NoError(t, err)
		msgs, err := decodeBatch(b)
		require.NoError(t, err)
		if r.hold != nil && len(msgs) > 0 && r.hold(msgs[0].Commit) {
			time.Sleep(3 * peerTimeout) // never answered in time
			return
		}
		r.mu.Lock()
		for _, m := range msgs {
			r.got = append(r.got, m.Commit)
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	r.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.conns.Add(1)
		}
	}
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recvServer) received() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.got...)
}

type countReporter struct{ unreachable atomic.Int64 }

func (c *countReporter) ReportUnreachable(uint64)                   { c.unreachable.Add(1) }
func (c *countReporter) ReportSnapshot(uint64, raft.SnapshotStatus) {}
func (c *countReporter) RemovedBy(uint64)                           {}

// Batches sent back to back on a pipeline arrive all, once each, in the order sent, on
// one connection.
func TestPipelineKeepsOrder(t *testing.T) {
	r := newRecvServer(t, nil)
	rep := &countReporter{}
	tr := newTransport(slog.New(slog.DiscardHandler), rep)
	defer tr.stopAll()
	tr.setPeer(2, r.srv.URL)
	const n = 2000
	for i := uint64(1); i <= n; i++ {
		tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: i}})
		if i%7 == 0 {
			time.Sleep(time.Microsecond) // batches of various sizes
		}
	}
	require.Eventually(t, func() bool { return len(r.received()) >= n }, 10*time.Second, 10*time.Millisecond)
	got := r.received()
	require.Len(t, got, n)
	for i, c := range got {
		require.Equal(t, uint64(i+1), c, "message %d out of order", i)
	}
	assert.Equal(t, int64(1), r.conns.Load(), "one connection")
	assert.Zero(t, rep.unreachable.Load())
}

// A request not answered within peerTimeout (a partitioned peer) breaks the pipeline:
// the peer is reported unreachable, and what is sent next goes on a new connection.
func TestPipelineReportsAnUnansweredRequest(t *testing.T) {
	r := newRecvServer(t, func(first uint64) bool { return first == 1 })
	rep := &countReporter{}
	tr := newTransport(slog.New(slog.DiscardHandler), rep)
	defer tr.stopAll()
	tr.setPeer(2, r.srv.URL)
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: 1}})
	require.Eventually(t, func() bool { return rep.unreachable.Load() > 0 }, 5*time.Second, 10*time.Millisecond)
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: 2}})
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: 3}})
	require.Eventually(t, func() bool { return len(r.received()) == 2 }, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, []uint64{2, 3}, r.received())
	assert.Equal(t, int64(2), r.conns.Load())
	assert.Equal(t, int64(1), rep.unreachable.Load())
}

// A peer that cannot be reached at all is reported unreachable for each batch tried.
func TestPipelineDialFailureIsReported(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	l.Close() // nothing listens: the dial is refused
	rep := &countReporter{}
	tr := newTransport(slog.New(slog.DiscardHandler), rep)
	defer tr.stopAll()
	tr.setPeer(2, "http://"+addr)
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgHeartbeat}})
	require.Eventually(t, func() bool { return rep.unreachable.Load() == 1 }, 5*time.Second, 10*time.Millisecond)
}
