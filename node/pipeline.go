package node

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// A pipeline is one HTTP/1.1 connection to a peer on which the sender writes its POSTs
// back to back, without waiting for each answer (HTTP/1.1 pipelining), while a reader
// goroutine takes the answers, which come in the order the requests were sent. The wire
// is the same as one POST at a time (POST <peer_url>/raft, a batch, 204 No Content; the
// harness's link proxy sees one request per batch), and the peer's server handles a
// connection's requests one after another, so raft messages still arrive in the order
// they were sent. What changes is that a batch no longer waits for the previous batch's
// round trip: with one POST at a time every hop of a write (a forwarded proposal, the
// append, its acknowledgement, the commit) waited for the POST in flight, then made its
// own round trip.
//
// Failure is detected as before, per request: an answer that does not come within
// peerTimeout of its request (a partitioned peer), a write that does not go out within
// peerTimeout, or a failed dial closes the connection and reports the peer unreachable;
// what was in flight on it is lost (raft retries). The next batch dials again.
type pipeline struct {
	conn net.Conn
	bw   *bufio.Writer // the sender's
	// slots bounds the requests in flight: the sender puts one in per request, the
	// reader takes one out per answer.
	slots chan struct{}
	done  chan struct{} // closed when the pipeline is broken

	// report hears of every answer: nil for a 204, else why a request failed or was
	// lost. It is called once per break of the pipeline, if a request was lost with it.
	report func(error)

	mu     sync.Mutex
	sent   []time.Time // requests written and not answered yet, oldest first
	broken bool
}

// maxPipelined bounds the requests in flight on a pipeline.
const maxPipelined = 64

// pipelineURL returns the request URL of a peer's raft endpoint and the address to dial,
// or ok false when the peer cannot be pipelined (not plain http).
func pipelineURL(peerURL string) (u *url.URL, addr string, ok bool) {
	u, err := url.Parse(peerURL + "/raft")
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, "", false
	}
	addr = u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return u, addr, true
}

// dialPipeline connects to addr and starts the reader.
func dialPipeline(addr string, report func(error)) (*pipeline, error) {
	conn, err := net.DialTimeout("tcp", addr, peerTimeout)
	if err != nil {
		return nil, err
	}
	pl := &pipeline{conn: conn, bw: bufio.NewWriterSize(conn, 64<<10),
		slots: make(chan struct{}, maxPipelined), done: make(chan struct{}), report: report}
	go pl.read()
	return pl, nil
}

// post writes one request. It blocks while maxPipelined requests are in flight, or
// until stop is closed. A false return means the batch was not sent: the pipeline broke
// (reported) or stop was closed.
func (pl *pipeline) post(u *url.URL, body []byte, stop <-chan struct{}) bool {
	select {
	case pl.slots <- struct{}{}:
	case <-pl.done:
		return false
	case <-stop:
		return false
	}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		pl.fail(err)
		return false
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	now := time.Now()
	pl.mu.Lock()
	if pl.broken {
		pl.mu.Unlock()
		return false
	}
	pl.sent = append(pl.sent, now)
	if len(pl.sent) == 1 {
		_ = pl.conn.SetReadDeadline(now.Add(peerTimeout))
	}
	pl.mu.Unlock()
	_ = pl.conn.SetWriteDeadline(now.Add(peerTimeout))
	if err := req.Write(pl.bw); err != nil {
		pl.fail(fmt.Errorf("write request: %w", err))
		return false
	}
	if err := pl.bw.Flush(); err != nil {
		pl.fail(fmt.Errorf("write request: %w", err))
		return false
	}
	return true
}

// read takes the answers in order until the connection breaks.
func (pl *pipeline) read() {
	br := bufio.NewReader(pl.conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			pl.fail(fmt.Errorf("read answer: %w", err))
			return
		}
		_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			pl.fail(fmt.Errorf("read answer: %w", err))
			return
		}
		pl.mu.Lock()
		if len(pl.sent) == 0 {
			pl.mu.Unlock()
			pl.fail(fmt.Errorf("answer to no request"))
			return
		}
		pl.sent = pl.sent[1:]
		if len(pl.sent) > 0 {
			_ = pl.conn.SetReadDeadline(pl.sent[0].Add(peerTimeout))
		} else {
			_ = pl.conn.SetReadDeadline(time.Time{})
		}
		pl.mu.Unlock()
		<-pl.slots
		if resp.StatusCode == http.StatusGone {
			pl.report(errRemoved)
		} else if resp.StatusCode != http.StatusNoContent {
			// The batch was refused (the peer could not step it): raft retries.
			pl.report(fmt.Errorf("status %d", resp.StatusCode))
		} else {
			pl.report(nil)
		}
		if resp.Close {
			pl.fail(fmt.Errorf("peer closed the connection"))
			return
		}
	}
}

// fail breaks the pipeline once; report hears of it if requests were lost with it.
func (pl *pipeline) fail(err error) {
	pl.mu.Lock()
	if pl.broken {
		pl.mu.Unlock()
		return
	}
	pl.broken = true
	lost := len(pl.sent) > 0
	pl.mu.Unlock()
	close(pl.done)
	pl.conn.Close()
	if lost {
		pl.report(err)
	}
}

// isBroken reports whether the pipeline can no longer be used.
func (pl *pipeline) isBroken() bool {
	select {
	case <-pl.done:
		return true
	default:
		return false
	}
}

// idle waits until every request written was answered, the pipeline broke, or timeout.
func (pl *pipeline) idle(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && !pl.isBroken() {
		pl.mu.Lock()
		n := len(pl.sent)
		pl.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// close closes the connection without reporting anything (the sender is stopping).
func (pl *pipeline) close() {
	pl.mu.Lock()
	pl.sent = nil
	pl.mu.Unlock()
	pl.fail(errStopping)
}
