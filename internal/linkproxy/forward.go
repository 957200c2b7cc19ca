package linkproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// relayTimeout is a safety bound on one transparent forward; the sender's own timeout
// (one second for raft messages, ten for snapshots) normally ends it first, since the
// request's context is cancelled when the sender hangs up.
const relayTimeout = time.Minute

// message is one request as the proxy holds it: everything needed to send it again.
type message struct {
	method string
	uri    string // path and query
	header http.Header
	body   []byte
}

// handler serves the listener for messages to node to.
func (p *Proxy) handler(to string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.begin() {
			http.Error(w, "link proxy closed", http.StatusServiceUnavailable)
			return
		}
		defer p.work.Done()
		// The whole body is read first: it bounds the size, lets a message be held and sent
		// twice, and lets the server notice (and cancel r's context) when the sender hangs up.
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				http.Error(w, "link proxy: body too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "link proxy: read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		msg := message{method: r.Method, uri: r.URL.RequestURI(), header: r.Header.Clone(), body: body}
		removeHopHeaders(msg.header)

		p.mu.Lock()
		st := p.linkLocked(Link{From: p.sender(r.RemoteAddr), To: to})
		f := st.faults
		p.mu.Unlock()

		if r.Method != http.MethodPost || f == (Faults{}) {
			p.relay(w, r, st, msg)
			return
		}
		p.schedule(st, f, msg)
		w.WriteHeader(http.StatusNoContent)
	})
}

// relay forwards msg while the sender waits and relays the answer: the transparent path.
func (p *Proxy) relay(w http.ResponseWriter, r *http.Request, st *link, msg message) {
	ctx, cancel := context.WithTimeout(r.Context(), relayTimeout)
	defer cancel()
	defer context.AfterFunc(p.ctx, cancel)()
	resp, err := st.send(ctx, msg)
	if err == nil && !ok2xx(resp.StatusCode) {
		p.outcome(st, fmt.Errorf("status %d", resp.StatusCode))
	} else {
		p.outcome(st, err)
	}
	if err != nil {
		http.Error(w, "link proxy: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// deliver sends one held copy on the wire; its outcome is counted, never reported.
func (p *Proxy) deliver(st *link, msg message) {
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	defer cancel()
	resp, err := st.send(ctx, msg)
	if err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if !ok2xx(resp.StatusCode) {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	p.outcome(st, err)
}

// outcome counts one forward and logs when the link starts or stops failing.
func (p *Proxy) outcome(st *link, err error) {
	if err == nil {
		st.forwarded.Add(1)
		if st.down.Swap(false) {
			p.logf("link %v: forwarding again", st.Link)
		}
		return
	}
	st.failed.Add(1)
	if !st.down.Swap(true) {
		p.logf("link %v: forward failed: %v", st.Link, err)
	}
}

// send makes one request to the link's destination, over a connection dialled on behalf
// of the sender.
func (st *link) send(ctx context.Context, msg message) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, msg.method, "http://"+st.target+msg.uri, bytes.NewReader(msg.body))
	if err != nil {
		return nil, fmt.Errorf("forward on %v: %w", st.Link, err)
	}
	req.Header = msg.header.Clone()
	resp, err := st.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("forward on %v: %w", st.Link, err)
	}
	return resp, nil
}

// newClient is a link's own keep-alive client, whose every connection is made by dial on
// behalf of from.
func newClient(from string, dial func(ctx context.Context, from, addr string) (net.Conn, error)) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dial(ctx, from, addr)
		},
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}}
}

func ok2xx(code int) bool { return code >= 200 && code < 300 }

// hopHeaders are meaningful for one connection only (RFC 9110, section 7.6.1).
var hopHeaders = []string{
	"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func removeHopHeaders(h http.Header) {
	for _, k := range hopHeaders {
		h.Del(k)
	}
}
