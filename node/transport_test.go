package node

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

type nopReporter struct{}

func (nopReporter) ReportUnreachable(uint64)                   {}
func (nopReporter) ReportSnapshot(uint64, raft.SnapshotStatus) {}

// A removed peer still gets what was queued for it: the leader's Ready that commits a
// removal queues the messages carrying that commit index and applies the removal right
// after; stopping the sender at once lost them, and the removed member, never learning
// it was out, never left (CI: TestMemberReplacedCatchesUpFromSnapshot).
func TestRemovePeerSendsWhatIsQueued(t *testing.T) {
	var mu sync.Mutex
	var got []raftpb.Message
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the first POST is in flight while more is queued
		b, _ := io.ReadAll(r.Body)
		msgs, err := decodeBatch(b)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		got = append(got, msgs...)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	tr := newTransport(slog.New(slog.DiscardHandler), nopReporter{})
	tr.setPeer(2, srv.URL)
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: 1}})
	time.Sleep(50 * time.Millisecond) // the sender took it and is posting
	tr.send([]raftpb.Message{{To: 2, Type: raftpb.MsgApp, Commit: 2}})
	tr.removePeer(2)
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the peer got %d of 2 messages after its removal", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got[1].Commit != 2 {
		t.Errorf("last message %+v, want the commit index 2", got[1])
	}
}
