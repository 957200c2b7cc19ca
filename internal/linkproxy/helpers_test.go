package linkproxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/linkproxy"
)

// The tests run on loopback: Linux routes all of 127/8 on lo, so each node gets its own
// 127.0.0.N as its address, its destination server (standing in for its peer listener)
// records what arrives, and each sender's client binds its connections to its own
// address so that the proxy recognises it. Dial binds to the sender's address too, so a
// destination can check that a forward was dialled "as" the sender.

var nodeAddrs = map[string]netip.Addr{
	"a": netip.MustParseAddr("127.0.0.11"),
	"b": netip.MustParseAddr("127.0.0.12"),
	"c": netip.MustParseAddr("127.0.0.13"),
}

// strangerAddr is no node's address.
var strangerAddr = netip.MustParseAddr("127.0.0.99")

// arrival is one request a destination received.
type arrival struct {
	body string
	at   time.Time
	from netip.Addr // the connection's source address
}

// dest is a node's peer listener: POST /raft is answered 204, POST /echo 200 with the
// body echoed back and a header, anything else 418.
type dest struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []arrival
}

func newDest(t *testing.T) *dest {
	t.Helper()
	d := &dest{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ap := netip.MustParseAddrPort(r.RemoteAddr)
		d.mu.Lock()
		d.got = append(d.got, arrival{body: string(body), at: time.Now(), from: ap.Addr()})
		d.mu.Unlock()
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/raft":
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPost && r.URL.Path == "/echo":
			w.Header().Set("X-Echo", "yes")
			_, _ = fmt.Fprintf(w, "echo:%s", body)
		default:
			w.WriteHeader(http.StatusTeapot)
		}
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *dest) arrivals() []arrival {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]arrival(nil), d.got...)
}

func (d *dest) bodies() []string {
	var out []string
	for _, a := range d.arrivals() {
		out = append(out, a.body)
	}
	return out
}

// fixture is a proxy over three destinations a, b, c, with a client per sender.
type fixture struct {
	t       *testing.T
	p       *linkproxy.Proxy
	dst     map[string]*dest
	clients map[netip.Addr]*http.Client

	mu    sync.Mutex
	dials map[string]int // from -> dials made by the proxy on its behalf
}

// newFixture starts a proxy over a, b, c; target, if set, overrides a node's target.
func newFixture(t *testing.T, seed int64, target map[string]string) *fixture {
	t.Helper()
	f := &fixture{t: t, dst: map[string]*dest{}, clients: map[netip.Addr]*http.Client{}, dials: map[string]int{}}
	nodes := map[string]linkproxy.Endpoint{}
	for name, addr := range nodeAddrs {
		f.dst[name] = newDest(t)
		tgt := f.dst[name].srv.Listener.Addr().String()
		if target[name] != "" {
			tgt = target[name]
		}
		nodes[name] = linkproxy.Endpoint{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Target: tgt, Addr: addr}
	}
	p, err := linkproxy.Start(context.Background(), linkproxy.Config{
		Nodes: nodes,
		Dial:  f.dial,
		Seed:  seed,
		Log:   t.Logf,
	})
	require.NoError(t, err)
	f.p = p
	t.Cleanup(func() {
		require.NoError(t, p.Close())
		for _, c := range f.clients {
			c.CloseIdleConnections()
		}
	})
	return f
}

// dial is Config.Dial: a dialer bound to the sender's address (any address for "").
func (f *fixture) dial(ctx context.Context, from, addr string) (net.Conn, error) {
	f.mu.Lock()
	f.dials[from]++
	f.mu.Unlock()
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: nodeAddrs[from].AsSlice()}
	}
	return d.DialContext(ctx, "tcp", addr)
}

func (f *fixture) dialsFor(from string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials[from]
}

// client is the sender's keep-alive client, bound to its address, with the node's 1 s
// peer timeout.
func (f *fixture) client(src netip.Addr) *http.Client {
	if c, ok := f.clients[src]; ok {
		return c
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}}
	c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	f.clients[src] = c
	return c
}

// answer is what a sender got back.
type answer struct {
	status int
	body   string
	header http.Header
	took   time.Duration
}

// post sends body from the address src to the proxy's listener for node to, at path.
func (f *fixture) post(src netip.Addr, to, path, body string) (answer, error) {
	start := time.Now()
	resp, err := f.client(src).Post(f.p.URL(to)+path, "application/octet-stream", strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b), header: resp.Header, took: time.Since(start)}, err
}

// send posts n raft messages from node from to node to, one after another, requiring each
// to be answered 204; it returns the bodies and when each was sent.
func (f *fixture) send(from, to string, n int) (bodies []string, sent map[string]time.Time) {
	f.t.Helper()
	sent = map[string]time.Time{}
	for i := range n {
		body := fmt.Sprintf("%s->%s #%d", from, to, i)
		sent[body] = time.Now()
		a, err := f.post(nodeAddrs[from], to, "/raft", body)
		require.NoError(f.t, err)
		require.Equal(f.t, http.StatusNoContent, a.status, a.body)
		bodies = append(bodies, body)
	}
	return bodies, sent
}

// settled waits until every copy counted on link l is accounted for (Forwarded, Failed or
// Dropped add up to want) and returns the link's stats.
func (f *fixture) settled(l linkproxy.Link, want uint64) linkproxy.Stats {
	f.t.Helper()
	var st linkproxy.Stats
	require.Eventually(f.t, func() bool {
		st = f.p.Stats()[l]
		return st.Forwarded+st.Failed+st.Dropped >= want
	}, 5*time.Second, 5*time.Millisecond, "link %v never settled at %d copies", l, want)
	return st
}

// noLeaks waits for the goroutine count to come back to at most base.
func noLeaks(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), base, buf[:n])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
