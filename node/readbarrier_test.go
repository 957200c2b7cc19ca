package node

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
)

// readIndexRecorder is a raft.Node that only records the contexts of ReadIndex calls.
type readIndexRecorder struct {
	raft.Node
	mu   sync.Mutex
	ctxs [][]byte
}

func (r *readIndexRecorder) ReadIndex(_ context.Context, rctx []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctxs = append(r.ctxs, append([]byte(nil), rctx...))
	return nil
}

func (r *readIndexRecorder) sent() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.ctxs...)
}

// A read retried after readRetry must not reuse its context (etcd #20418), and an answer
// to an earlier attempt still completes it.
func TestReadBarrierRetriesWithFreshContexts(t *testing.T) {
	rec := &readIndexRecorder{}
	n := &Node{rn: rec, reads: map[uint64]chan uint64{}, stopc: make(chan struct{}), appliedCh: make(chan struct{})}
	n.lead.Store(1)
	n.applied = 10
	done := make(chan error, 1)
	go func() { done <- n.ReadBarrier(context.Background()) }()
	require.Eventually(t, func() bool { return len(rec.sent()) >= 3 }, 4*readRetry, 10*time.Millisecond,
		"unanswered, the read is re-sent every readRetry")
	ctxs := rec.sent()
	seen := map[string]bool{}
	for _, c := range ctxs {
		assert.False(t, seen[string(c)], "a retry reuses the context %x", c)
		seen[string(c)] = true
	}
	// The first attempt's answer arrives late: it still counts.
	n.readDone(raft.ReadState{Index: 7, RequestCtx: ctxs[0]})
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Second):
		t.Fatal("an answer to an earlier attempt did not complete the read")
	}
	n.mu.Lock()
	assert.Empty(t, n.reads, "every attempt's registration is removed")
	n.mu.Unlock()
	id := binary.BigEndian.Uint64(ctxs[1])
	n.readDone(raft.ReadState{Index: 9, RequestCtx: binary.BigEndian.AppendUint64(nil, id)}) // too late: ignored
}
