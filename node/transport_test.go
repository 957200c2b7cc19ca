package node

import (
	"errors"
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
func (nopReporter) RemovedBy(uint64)                           {}

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

// removedReporter records RemovedBy.
type removedReporter struct {
	nopReporter
	by chan uint64
}

func (r removedReporter) RemovedBy(id uint64) {
	select {
	case r.by <- id:
	default:
	}
}

// A member whose peers have removed it learns so from their answer (410 Gone, as etcd's
// peers answer a removed member), whether or not it heard the commit of its removal:
// the leader's last messages to it can be lost (CI saw a removed node campaign on,
// ignored, for 10 s), and it must leave all the same. Over a pipelined connection and a
// plain POST alike.
func TestPeersAnswerGoneMeansRemoved(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "member removed from the cluster", http.StatusGone)
	}))
	defer srv.Close()
	rep := removedReporter{by: make(chan uint64, 1)}
	tr := newTransport(slog.New(slog.NewTextHandler(io.Discard, nil)), rep)
	defer tr.stopAll()
	tr.setPeer(7, srv.URL)
	tr.send([]raftpb.Message{{Type: raftpb.MsgPreVote, To: 7, From: 1}})
	select {
	case id := <-rep.by:
		if id != 7 {
			t.Fatalf("removed by peer %d, want 7", id)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a 410 from the peer did not tell the node it was removed")
	}
	p := &peer{id: 7, url: srv.URL, hc: srv.Client()}
	if err := tr.postBatch(p, []raftpb.Message{{Type: raftpb.MsgPreVote, To: 7, From: 1}}, 5*time.Second); !errors.Is(err, errRemoved) {
		t.Fatalf("a plain POST answered 410 gave %v, want errRemoved", err)
	}
}
