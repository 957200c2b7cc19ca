package node

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Peer transport: each peer has one sender goroutine and a bounded queue. Messages are
// POSTed in batches to <peer_url>/raft, each request with a short timeout: the harness
// partitions by dropping packets, so a connection to a cut-off peer hangs rather than
// fails. A full queue drops the message and reports the peer unreachable to raft, which
// then slows down (probe state) and retries on its own. The POSTs to an http:// peer are
// pipelined on one connection (see pipeline.go): a batch goes out as soon as it is
// queued, not after the previous one's answer, and arrives after it.

const (
	peerQueue      = 4096
	peerBatch      = 256
	peerTimeout    = time.Second
	snapTimeout    = 10 * time.Second
	maxPeerRequest = 512 << 20
)

// reporter is the part of raft.Node the transport talks back to; and RemovedBy, which
// it calls when a peer answers that this node was removed from the cluster.
type reporter interface {
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
	RemovedBy(peer uint64)
}

// errRemoved is a peer's answer to a member it has removed (410 Gone, as etcd's peers
// answer one): the member learns it is out even if it never heard the commit of its
// removal (the leader's last messages to it can be lost, or cut by a partition).
var errRemoved = errors.New("removed from the cluster")

type transport struct {
	log *slog.Logger
	rep reporter

	mu    sync.Mutex
	peers map[uint64]*peer
}

type peer struct {
	id   uint64
	url  string
	q    chan raftpb.Message
	stop chan struct{}
	// drain, closed by removePeer, says: send what is queued, then stop.
	drain chan struct{}
	hc    *http.Client
	down  atomic.Bool // the last send failed (for logging)

	// The pipelined connection, when the peer URL is http:// (owned by the sender).
	pipeURL  *url.URL
	pipeAddr string
	pl       *pipeline
}

func newTransport(log *slog.Logger, rep reporter) *transport {
	return &transport{log: log, rep: rep, peers: map[uint64]*peer{}}
}

// setPeer starts (or re-points) the sender for id.
func (t *transport) setPeer(id uint64, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		if p.url == url {
			return
		}
		close(p.stop)
	}
	p := &peer{id: id, url: url, q: make(chan raftpb.Message, peerQueue), stop: make(chan struct{}), drain: make(chan struct{}),
		hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}}
	p.pipeURL, p.pipeAddr, _ = pipelineURL(url)
	t.peers[id] = p
	go t.run(p)
}

// removePeer stops the sender for id once it has sent what is queued: the leader's last
// messages to a member it removes carry the commit index that tells the member it is
// out (the Ready that commits the removal queues them just before it is applied), and a
// member that never hears it never leaves. Sending them is bounded by one POST's timeout.
func (t *transport) removePeer(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := t.peers[id]; ok {
		close(p.drain)
		delete(t.peers, id)
	}
}

// stopAll stops every sender.
func (t *transport) stopAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for id, p := range t.peers {
		close(p.stop)
		delete(t.peers, id)
	}
}

// send queues messages; it never blocks. It reports whether it queued any.
func (t *transport) send(msgs []raftpb.Message) (queued bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p, ok := t.peers[m.To]
		if !ok {
			continue
		}
		select {
		case p.q <- m:
			queued = true
		default:
			t.rep.ReportUnreachable(m.To)
			if m.Type == raftpb.MsgSnap {
				t.rep.ReportSnapshot(m.To, raft.SnapshotFailure)
			}
		}
	}
	return queued
}

func (t *transport) run(p *peer) {
	defer p.hc.CloseIdleConnections()
	defer func() {
		if p.pl != nil {
			p.pl.close()
		}
	}()
	for {
		var batch []raftpb.Message
		select {
		case <-p.stop:
			return
		case <-p.drain:
			p.sendQueued(t)
			return
		case m := <-p.q:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < peerBatch {
			select {
			case m := <-p.q:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		t.post(p, batch)
	}
}

// sendQueued sends, once, what is in the queue (a removed peer's last messages).
func (p *peer) sendQueued(t *transport) {
	var batch []raftpb.Message
	for {
		select {
		case m := <-p.q:
			if m.Type != raftpb.MsgSnap {
				batch = append(batch, m)
			}
		default:
			if len(batch) > 0 {
				if p.pipeURL != nil {
					t.postPipelined(p, batch)
					if p.pl != nil {
						p.pl.idle(peerTimeout)
					}
				} else {
					_ = t.postBatch(p, batch, peerTimeout)
				}
			}
			return
		}
	}
}

// post sends a batch; a snapshot goes alone, with a longer timeout, and its outcome is
// reported to raft.
func (t *transport) post(p *peer, batch []raftpb.Message) {
	var rest []raftpb.Message
	for _, m := range batch {
		if m.Type != raftpb.MsgSnap {
			rest = append(rest, m)
			continue
		}
		err := t.postBatch(p, []raftpb.Message{m}, snapTimeout)
		status := raft.SnapshotFinish
		if err != nil {
			t.log.Warn("send snapshot", "to", p.id, "err", err)
			t.rep.ReportUnreachable(p.id)
			status = raft.SnapshotFailure
		}
		t.rep.ReportSnapshot(p.id, status)
	}
	if len(rest) == 0 {
		return
	}
	if p.pipeURL != nil {
		t.postPipelined(p, rest)
		return
	}
	t.outcome(p, t.postBatch(p, rest, peerTimeout))
}

// outcome reports a failed send to raft, and logs when the peer becomes unreachable or
// reachable again.
func (t *transport) outcome(p *peer, err error) {
	if errors.Is(err, errRemoved) {
		t.rep.RemovedBy(p.id)
		return
	}
	if err != nil {
		t.rep.ReportUnreachable(p.id)
	}
	switch {
	case err != nil && !p.down.Swap(true):
		t.log.Warn("peer unreachable", "peer", p.id, "url", p.url, "err", err)
	case err == nil && p.down.Swap(false):
		t.log.Info("peer reachable again", "peer", p.id)
	}
}

// postPipelined writes a batch on the peer's pipeline, dialling one if there is none
// (or it broke). Failures are reported to raft, here or by the pipeline's reader.
func (t *transport) postPipelined(p *peer, batch []raftpb.Message) {
	body, err := encodeBatch(batch)
	if err != nil {
		t.outcome(p, err)
		return
	}
	if p.pl != nil && p.pl.isBroken() {
		p.pl = nil
	}
	if p.pl == nil {
		pl, err := dialPipeline(p.pipeAddr, func(err error) { t.outcome(p, err) })
		if err != nil {
			t.outcome(p, fmt.Errorf("post to peer %d: %w", p.id, err))
			return
		}
		p.pl = pl
	}
	p.pl.post(p.pipeURL, body, p.stop)
}

func (t *transport) postBatch(p *peer, batch []raftpb.Message, timeout time.Duration) error {
	body, err := encodeBatch(batch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/raft", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("peer request: %w", err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := p.hc.Do(req)
	if err != nil {
		return fmt.Errorf("post to peer %d: %w", p.id, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == http.StatusGone {
		return fmt.Errorf("post to peer %d: %w", p.id, errRemoved)
	}
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("post to peer %d: status %d", p.id, resp.StatusCode)
	}
	return nil
}

// encodeBatch frames messages as uvarint length + marshalled raftpb.Message.
func encodeBatch(msgs []raftpb.Message) ([]byte, error) {
	var buf []byte
	for i := range msgs {
		b, err := msgs[i].Marshal()
		if err != nil {
			return nil, fmt.Errorf("encode raft message: %w", err)
		}
		buf = binary.AppendUvarint(buf, uint64(len(b)))
		buf = append(buf, b...)
	}
	return buf, nil
}

// decodeBatch is the inverse of encodeBatch.
func decodeBatch(b []byte) ([]raftpb.Message, error) {
	var out []raftpb.Message
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, fmt.Errorf("decode raft batch: bad frame")
		}
		var m raftpb.Message
		if err := m.Unmarshal(b[k : k+int(n)]); err != nil {
			return nil, fmt.Errorf("decode raft message: %w", err)
		}
		out = append(out, m)
		b = b[k+int(n):]
	}
	return out, nil
}
