package linkproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/linkproxy"
)

// The stream tests run on loopback like the message-level ones (see helpers_test.go):
// node a, b, c have the addresses 127.0.0.11-13, their clients bind to them, and the
// proxy's Dial binds to the sender's address too. Each node's target is a plain TCP server
// (an echo server unless the test gives another).

// tcpServer is a node's peer listener: it runs handle on every connection.
type tcpServer struct {
	l     net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
	froms []netip.Addr // source address of each connection accepted
	once  sync.Once
}

func startTCP(t *testing.T, handle func(net.Conn)) *tcpServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	s := &tcpServer{l: l, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = true
			s.froms = append(s.froms, netip.MustParseAddrPort(c.RemoteAddr().String()).Addr())
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(s.Close)
	return s
}

func (s *tcpServer) addr() string { return s.l.Addr().String() }

func (s *tcpServer) sources() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]netip.Addr(nil), s.froms...)
}

// Close stops the server and closes its connections, and waits for its goroutines.
func (s *tcpServer) Close() {
	s.once.Do(func() {
		s.l.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// echo sends back what it reads, then half-closes when the client does.
func echo(c net.Conn) {
	_, _ = io.Copy(c, c)
	_ = c.(*net.TCPConn).CloseWrite()
	_, _ = io.Copy(io.Discard, c)
}

// streamFixture is a stream proxy over a, b, c.
type streamFixture struct {
	t       *testing.T
	p       *linkproxy.StreamProxy
	servers map[string]*tcpServer
	hang    map[string]bool // targets whose dial hangs until its context ends

	mu      sync.Mutex
	clients []net.Conn
}

// newStreamFixture starts a stream proxy over a, b, c. handlers give a node's target
// server another handler than echo; targets give a node's target address outright.
func newStreamFixture(t *testing.T, handlers map[string]func(net.Conn), targets map[string]string, timeout time.Duration) *streamFixture {
	t.Helper()
	f := &streamFixture{t: t, servers: map[string]*tcpServer{}, hang: map[string]bool{}}
	nodes := map[string]linkproxy.Endpoint{}
	for name, addr := range nodeAddrs {
		tgt := targets[name]
		if tgt == "" {
			h := handlers[name]
			if h == nil {
				h = echo
			}
			f.servers[name] = startTCP(t, h)
			tgt = f.servers[name].addr()
		}
		nodes[name] = linkproxy.Endpoint{Listen: netip.MustParseAddrPort("127.0.0.1:0"), Target: tgt, Addr: addr}
	}
	p, err := linkproxy.StartStream(context.Background(), linkproxy.Config{
		Nodes:   nodes,
		Dial:    f.proxyDial,
		Seed:    1,
		Timeout: timeout,
		Log:     t.Logf,
	})
	require.NoError(t, err)
	f.p = p
	t.Cleanup(f.closeAll)
	return f
}

// closeAll closes the proxy, the clients and the servers; idempotent.
func (f *streamFixture) closeAll() {
	require.NoError(f.t, f.p.Close())
	f.mu.Lock()
	for _, c := range f.clients {
		c.Close()
	}
	f.mu.Unlock()
	for _, s := range f.servers {
		s.Close()
	}
}

// proxyDial is Config.Dial: a dialer bound to the sender's address.
func (f *streamFixture) proxyDial(ctx context.Context, from, addr string) (net.Conn, error) {
	f.mu.Lock()
	hang := f.hang[addr]
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var d net.Dialer
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: nodeAddrs[from].AsSlice()}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// dial connects from node from (or, for "", the stranger's address) to the proxy's
// listener for node to.
func (f *streamFixture) dial(from, to string) *net.TCPConn {
	f.t.Helper()
	src := strangerAddr
	if from != "" {
		src = nodeAddrs[from]
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", f.p.Addr(to))
	require.NoError(f.t, err)
	f.mu.Lock()
	f.clients = append(f.clients, c)
	f.mu.Unlock()
	return c.(*net.TCPConn)
}

// ping writes msg on c (connected to an echo server) and reads it back; it returns how
// long that took.
func ping(t *testing.T, c net.Conn, msg string) time.Duration {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	start := time.Now()
	_, err := io.WriteString(c, msg)
	require.NoError(t, err)
	buf := make([]byte, len(msg))
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	took := time.Since(start)
	require.Equal(t, msg, string(buf))
	return took
}

// silent asserts that nothing arrives on c for d.
func silent(t *testing.T, c net.Conn, d time.Duration, why string) {
	t.Helper()
	require.NoError(t, c.SetReadDeadline(time.Now().Add(d)))
	n, err := c.Read(make([]byte, 1))
	assert.Zero(t, n, why)
	var ne net.Error
	assert.True(t, errors.As(err, &ne) && ne.Timeout(), "%s: %v", why, err)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
}

var (
	sab = linkproxy.Link{From: "a", To: "b"}
	sba = linkproxy.Link{From: "b", To: "a"}
)

func TestStreamTransparentBothWaysAndHalfClose(t *testing.T) {
	// b reads to the end of the stream (so the client's half-close must reach it while the
	// connection is still open to write back), answers, and closes.
	f := newStreamFixture(t, map[string]func(net.Conn){"b": func(c net.Conn) {
		got, _ := io.ReadAll(c)
		_, _ = c.Write(append([]byte("got "), got...))
	}}, nil, 0)
	payload := make([]byte, 300<<10)
	_, _ = rand.Read(payload)

	c := f.dial("a", "b")
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err := c.Write(payload)
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	back, err := io.ReadAll(c) // to b's close
	require.NoError(t, err)
	require.True(t, bytes.Equal(append([]byte("got "), payload...), back), "got %d bytes back", len(back))

	assert.Equal(t, []netip.Addr{nodeAddrs["a"]}, f.servers["b"].sources(), "the proxy did not dial as the sender")
	require.Eventually(t, func() bool { return f.p.Stats(sab).Open == 0 }, 2*time.Second, 5*time.Millisecond)
	assert.Equal(t, linkproxy.StreamStats{Bytes: uint64(len(payload)), Conns: 1}, f.p.Stats(sab))
	assert.Equal(t, linkproxy.StreamStats{Bytes: uint64(len(back))}, f.p.Stats(sba))
	assert.Empty(t, f.servers["a"].sources())
	assert.Empty(t, f.servers["c"].sources())
	assert.Equal(t, "http://"+f.p.Addr("b"), f.p.URL("b"))
	assert.Empty(t, f.p.URL("z"))
}

func TestStreamDelayUpstreamAndClear(t *testing.T) {
	const delay = 200 * time.Millisecond
	f := newStreamFixture(t, nil, nil, 0)
	require.NoError(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{Delay: delay}))

	c := f.dial("a", "b")
	for i := range 3 {
		took := ping(t, c, fmt.Sprintf("ping %d", i))
		t.Logf("delayed ping: %v", took)
		assert.GreaterOrEqual(t, took, delay)
		assert.Less(t, took, delay+300*time.Millisecond)
	}
	f.p.Clear()
	took := ping(t, c, "after clear")
	t.Logf("cleared ping: %v", took)
	assert.Less(t, took, delay/2, "Clear did not bring the round trip back down")

	// Clear releases a chunk that is being held: with a delay of a minute, the ping comes
	// back soon after Clear.
	require.NoError(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{Delay: time.Minute}))
	time.AfterFunc(100*time.Millisecond, f.p.Clear)
	took = ping(t, c, "held")
	t.Logf("ping held then cleared: %v", took)
	assert.GreaterOrEqual(t, took, 100*time.Millisecond)
	assert.Less(t, took, time.Second)
}

func TestStreamDelayDownstreamOnly(t *testing.T) {
	// b stamps each 8-byte request as it arrives and echoes it: the request's travel
	// (a->b) and the response's (b->a) are measured apart.
	const delay = 200 * time.Millisecond
	arrived := make(chan time.Time, 16)
	f := newStreamFixture(t, map[string]func(net.Conn){"b": func(c net.Conn) {
		buf := make([]byte, 8)
		for {
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			arrived <- time.Now()
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}}, nil, 0)
	require.NoError(t, f.p.Set([]linkproxy.Link{sba}, linkproxy.StreamFaults{Delay: delay}))

	c := f.dial("a", "b")
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	buf := make([]byte, 8)
	for i := range 4 {
		sent := time.Now()
		_, err := c.Write([]byte(fmt.Sprintf("req%05d", i)))
		require.NoError(t, err)
		_, err = io.ReadFull(c, buf)
		require.NoError(t, err)
		back := time.Now()
		at := <-arrived
		t.Logf("request took %v, response %v", at.Sub(sent), back.Sub(at))
		assert.Less(t, at.Sub(sent), delay/2, "the request (a->b) was delayed")
		assert.GreaterOrEqual(t, back.Sub(at), delay, "the response (b->a) was not delayed")
		assert.Less(t, back.Sub(at), delay+300*time.Millisecond)
	}
}

func TestStreamJitterStaysInBandAndKeepsOrder(t *testing.T) {
	f := newStreamFixture(t, nil, nil, 0)
	require.NoError(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{Delay: 60 * time.Millisecond, Jitter: 40 * time.Millisecond}))
	c := f.dial("a", "b")
	var lo, hi time.Duration = time.Hour, 0
	for i := range 25 {
		took := ping(t, c, fmt.Sprintf("jitter %d", i)) // ping checks that what comes back is what went
		assert.GreaterOrEqual(t, took, 20*time.Millisecond)
		lo, hi = min(lo, took), max(hi, took)
	}
	t.Logf("round trips from %v to %v", lo, hi)
	assert.Less(t, lo, 50*time.Millisecond, "jitter never took a chunk below the delay")
	assert.Greater(t, hi, 70*time.Millisecond, "jitter never took a chunk above the delay")
}

func TestStreamRate(t *testing.T) {
	// b counts what it gets to the end of the stream and answers the count; a transfer is
	// timed from the first byte sent to the answer.
	f := newStreamFixture(t, map[string]func(net.Conn){"b": sink}, nil, 0)
	const size = 256 << 10
	payload := make([]byte, size)
	transfer := func() time.Duration {
		c := f.dial("a", "b")
		require.NoError(t, c.SetDeadline(time.Now().Add(8*time.Second)))
		start := time.Now()
		_, err := c.Write(payload)
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		ans, err := io.ReadAll(c)
		require.NoError(t, err)
		require.Equal(t, strconv.Itoa(size), string(ans))
		return time.Since(start)
	}

	unlimited := transfer()
	require.NoError(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{Rate: 64 << 10}))
	limited := transfer()
	t.Logf("256 KiB: %v unlimited, %v at 64 KiB/s (x%.0f)", unlimited, limited, float64(limited)/float64(unlimited))
	assert.GreaterOrEqual(t, limited, 3*time.Second)
	assert.Less(t, limited, 6*time.Second)
	assert.Greater(t, float64(limited)/float64(unlimited), 10.0)
	assert.Equal(t, uint64(2*size), f.p.Stats(sab).Bytes)
}

// sink counts what it reads to the end of the stream, and answers the count.
func sink(c net.Conn) {
	n, _ := io.Copy(io.Discard, c)
	_, _ = fmt.Fprint(c, n)
}

func TestStreamBackpressureBoundsHeld(t *testing.T) {
	// On a blackholed link the proxy holds at most 64 MiB per direction of a connection,
	// then stops reading: the sender's writes block, as on a slow link.
	const maxHeld = 64 << 20
	f := newStreamFixture(t, map[string]func(net.Conn){"b": sink}, nil, 0)
	require.NoError(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{Blackhole: true}))
	c := f.dial("a", "b")
	buf := make([]byte, 1<<20)
	var sent int64
	start := time.Now()
	for {
		require.NoError(t, c.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
		n, err := c.Write(buf)
		sent += int64(n)
		if err != nil {
			var ne net.Error
			require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
			// Blocked: by the proxy's bound, or only by a proxy slowed down by a busy
			// machine, which then still reads. Only the bound ends the test.
			if f.p.Stats(sab).Held >= maxHeld {
				break
			}
		}
		require.Less(t, sent, int64(4*maxHeld), "the sender was never held back")
	}
	held := f.p.Stats(sab).Held
	t.Logf("sender blocked after %d MiB in %v; the proxy holds %d MiB", sent>>20, time.Since(start), held>>20)
	assert.LessOrEqual(t, held, int64(maxHeld+32<<10))
	assert.Less(t, sent, held+32<<20, "more than the kernel's buffers beyond what the proxy holds")
	// At its bound the proxy reads no more, however much the sender offers (what the
	// kernel's buffers still take, as they grow, is theirs, not the proxy's).
	require.NoError(t, c.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
	n, _ := c.Write(buf)
	sent += int64(n)
	assert.Equal(t, held, f.p.Stats(sab).Held, "the proxy read past its bound")

	f.p.Clear()
	require.NoError(t, c.SetDeadline(time.Now().Add(8*time.Second)))
	require.NoError(t, c.CloseWrite())
	ans, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, strconv.FormatInt(sent, 10), string(ans), "b did not get everything")
	require.Eventually(t, func() bool { return f.p.Stats(sab).Held == 0 }, time.Second, 5*time.Millisecond)
}

// counter writes 8-byte counters 0, 1, 2, ... every 5 ms, like a stream that B writes
// its messages for A into.
func counter(c net.Conn) {
	var buf [8]byte
	for i := uint64(0); ; i++ {
		binary.BigEndian.PutUint64(buf[:], i)
		if _, err := c.Write(buf[:]); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// frames reads 8-byte counters from c and sends each on the channel it returns, with
// when it arrived, until c fails.
func frames(c net.Conn) <-chan frame {
	ch := make(chan frame, 1<<16)
	go func() {
		defer close(ch)
		r := bufio.NewReader(c)
		var buf [8]byte
		for {
			if _, err := io.ReadFull(r, buf[:]); err != nil {
				return
			}
			ch <- frame{binary.BigEndian.Uint64(buf[:]), time.Now()}
		}
	}()
	return ch
}

type frame struct {
	n  uint64
	at time.Time
}

// take takes the next n frames from ch, failing the test if they do not come within
// a few seconds (a bound for a broken stream, not a timing claim).
func take(t *testing.T, ch <-chan frame, n int, why string) []frame {
	t.Helper()
	out := make([]frame, 0, n)
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for len(out) < n {
		select {
		case fr, ok := <-ch:
			require.True(t, ok, "%s: the stream ended after %d of %d frames", why, len(out), n)
			out = append(out, fr)
		case <-deadline.C:
			require.FailNow(t, why, "%d of %d frames in 5 s", len(out), n)
		}
	}
	return out
}

// drain takes what arrives on ch within d.
func drain(ch <-chan frame, d time.Duration) []frame {
	var out []frame
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case fr, ok := <-ch:
			if !ok {
				return out
			}
			out = append(out, fr)
		case <-t.C:
			return out
		}
	}
}

func TestStreamBlackholeHoldsAndClearReleasesInOrder(t *testing.T) {
	f := newStreamFixture(t, map[string]func(net.Conn){"b": counter}, nil, 0)
	c := f.dial("a", "b") // a's stream: b writes downstream, on link b->a
	ch := frames(c)
	got := take(t, ch, 6, "the stream is not flowing")

	require.NoError(t, f.p.Set([]linkproxy.Link{sba}, linkproxy.StreamFaults{Blackhole: true}))
	require.Eventually(t, func() bool { return f.p.Stats(sba).Held > 0 }, 2*time.Second, time.Millisecond,
		"the proxy holds nothing on a blackholed link")
	// What the proxy delivered before it held is on its way still: take all of it (the
	// counts, not a time, say when; a busy machine can be slow to deliver it).
	for delivered := uint64(0); ; {
		d := f.p.Stats(sba).Bytes / 8
		if d == delivered {
			break
		}
		delivered = d
		got = append(got, take(t, ch, int(delivered)-len(got), "frames the proxy delivered did not arrive")...)
	}
	before := f.p.Stats(sba).Bytes
	stalled := drain(ch, 400*time.Millisecond)
	assert.Empty(t, stalled, "frames arrived on a blackholed link")
	assert.Equal(t, before, f.p.Stats(sba).Bytes, "bytes delivered on a blackholed link")
	got = append(got, stalled...)
	held := f.p.Stats(sba).Held
	heldFrames := int(held / 8)
	require.GreaterOrEqual(t, heldFrames, 10, "too few frames held for a burst to show")

	// Released, the held frames come at once: far faster than b wrote them (one per
	// 5 ms or slower), in order, and none lost.
	f.p.Clear()
	burst := take(t, ch, heldFrames, "Clear did not release the held frames")
	span := burst[len(burst)-1].at.Sub(burst[0].at)
	t.Logf("held %d frames; released in %v", heldFrames, span)
	assert.Less(t, span, time.Duration(heldFrames-1)*5*time.Millisecond/2, "the held frames did not come in a burst")
	got = append(got, burst...)
	got = append(got, drain(ch, 100*time.Millisecond)...)
	for i, fr := range got {
		require.Equal(t, uint64(i), fr.n, "frame %d out of order or lost", i)
	}

	// A new connection on a blackholed link is accepted, and dialled, but carries
	// nothing until the link heals.
	ac := linkproxy.Link{From: "a", To: "c"}
	require.NoError(t, f.p.Set([]linkproxy.Link{ac}, linkproxy.StreamFaults{Blackhole: true}))
	e := f.dial("a", "c")
	_, err := io.WriteString(e, "hello")
	require.NoError(t, err)
	silent(t, e, 300*time.Millisecond, "an echo came back through a blackhole")
	require.Eventually(t, func() bool { return f.p.Stats(ac).Held == 5 }, time.Second, 5*time.Millisecond)
	assert.Len(t, f.servers["c"].sources(), 1, "the connection was not dialled")
	f.p.Clear()
	buf := make([]byte, 5)
	require.NoError(t, e.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = io.ReadFull(e, buf)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(buf))
}

func TestStreamFaultAppliesToOpenConnection(t *testing.T) {
	const delay = 300 * time.Millisecond
	f := newStreamFixture(t, nil, nil, 0)
	c := f.dial("a", "b")
	assert.Less(t, ping(t, c, "before"), delay/2)

	require.NoError(t, f.p.Set([]linkproxy.Link{sba}, linkproxy.StreamFaults{Delay: delay}))
	took := ping(t, c, "during")
	assert.GreaterOrEqual(t, took, delay, "the fault did not apply to the open connection")
	assert.Less(t, took, delay+300*time.Millisecond)

	// Rate too: 4 KiB at 8 KiB/s takes about half a second on the same connection.
	require.NoError(t, f.p.Set([]linkproxy.Link{sba}, linkproxy.StreamFaults{Rate: 8 << 10}))
	took = ping(t, c, strings.Repeat("r", 4<<10))
	t.Logf("4 KiB at 8 KiB/s: %v", took)
	assert.GreaterOrEqual(t, took, 350*time.Millisecond)

	f.p.Clear()
	assert.Less(t, ping(t, c, "after"), delay/2)
	assert.Equal(t, uint64(1), f.p.Stats(sab).Conns)
}

func TestStreamHTTPStreamingResponse(t *testing.T) {
	// b's peer listener is an HTTP server with a rafthttp-like stream: a GET answered 200
	// whose body is a chunk every 10 ms (each its send time), flushed, and the pipeline.
	const chunks = 20
	mux := http.NewServeMux()
	mux.HandleFunc("GET /raft/stream/message/a", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for range chunks {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
			fmt.Fprintf(w, "%d\n", time.Now().UnixNano())
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("POST /raft", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f := newStreamFixture(t, nil, map[string]string{"b": srv.Listener.Addr().String()}, 0)

	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: nodeAddrs["a"].AsSlice()}}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	// stream reads the stream through the proxy: time to the response's headers and the
	// latency of each chunk.
	stream := func() (headers time.Duration, lats []time.Duration) {
		start := time.Now()
		resp, err := client.Get(f.p.URL("b") + "/raft/stream/message/a")
		require.NoError(t, err)
		defer resp.Body.Close()
		headers = time.Since(start)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			ns, err := strconv.ParseInt(sc.Text(), 10, 64)
			require.NoError(t, err)
			lats = append(lats, time.Since(time.Unix(0, ns)))
		}
		require.NoError(t, sc.Err())
		require.Len(t, lats, chunks)
		return headers, lats
	}
	post := func() {
		resp, err := client.Post(f.p.URL("b")+"/raft", "application/protobuf", strings.NewReader("msg"))
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusNoContent, resp.StatusCode)
	}

	headers, lats := stream()
	post()
	t.Logf("transparent: headers after %v, chunk latencies %v", headers, lats)
	for _, lat := range lats {
		assert.Less(t, lat, 100*time.Millisecond, "a chunk was held on a transparent link")
	}

	const delay = 150 * time.Millisecond
	require.NoError(t, f.p.Set([]linkproxy.Link{sba}, linkproxy.StreamFaults{Delay: delay}))
	headers, lats = stream()
	post()
	t.Logf("b->a delayed: headers after %v, chunk latencies %v", headers, lats)
	assert.GreaterOrEqual(t, headers, delay)
	for _, lat := range lats {
		assert.GreaterOrEqual(t, lat, delay, "a chunk came early")
		assert.Less(t, lat, delay+250*time.Millisecond, "a chunk came late")
	}
	assert.Positive(t, f.p.Stats(sab).Conns)
	assert.Positive(t, f.p.Stats(sba).Bytes)
}

func TestStreamDialFailureClosesAccepted(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := l.Addr().String()
	require.NoError(t, l.Close())
	f := newStreamFixture(t, nil, map[string]string{"b": refused}, 200*time.Millisecond)

	// Refused: the accepted connection is closed at once.
	c := f.dial("a", "b")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	require.Error(t, err)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the accepted connection was left open: %v", err)
	assert.Equal(t, uint64(1), f.p.Stats(sab).DialFailed)

	// Hanging (a partition drops the SYN): closed after Config.Timeout.
	f.mu.Lock()
	f.hang[f.servers["c"].addr()] = true
	f.mu.Unlock()
	start := time.Now()
	c = f.dial("a", "c")
	require.NoError(t, c.SetReadDeadline(time.Now().Add(2*time.Second)))
	_, err = c.Read(make([]byte, 1))
	require.Error(t, err)
	require.False(t, errors.As(err, &ne) && ne.Timeout(), "the accepted connection was left open: %v", err)
	assert.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
	assert.Equal(t, uint64(1), f.p.Stats(linkproxy.Link{From: "a", To: "c"}).DialFailed)
	assert.Zero(t, f.p.Stats(linkproxy.Link{From: "a", To: "c"}).Conns)
}

func TestStreamCloseWithOpenConnections(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		f := newStreamFixture(t, map[string]func(net.Conn){"b": counter}, nil, 0)
		// A flowing stream, a stream blackholed with bytes held, an echo connection with
		// a ping held by a long delay, an idle one, and a dial that hangs.
		flowing := f.dial("a", "b")
		fch := frames(flowing)
		held := f.dial("c", "b")
		hch := frames(held)
		require.NoError(t, f.p.Set([]linkproxy.Link{{From: "b", To: "c"}}, linkproxy.StreamFaults{Blackhole: true}))
		require.NoError(t, f.p.Set([]linkproxy.Link{{From: "a", To: "c"}}, linkproxy.StreamFaults{Delay: time.Minute}))
		delayed := f.dial("a", "c")
		_, err := io.WriteString(delayed, "held")
		require.NoError(t, err)
		idle := f.dial("b", "a")
		require.Eventually(t, func() bool { return f.p.Stats(linkproxy.Link{From: "b", To: "a"}).Open == 1 }, time.Second, 5*time.Millisecond)
		f.mu.Lock()
		f.hang[f.servers["a"].addr()] = true
		f.mu.Unlock()
		hanging := f.dial("c", "a")
		time.Sleep(100 * time.Millisecond)
		require.Positive(t, f.p.Stats(linkproxy.Link{From: "b", To: "c"}).Held)

		start := time.Now()
		require.NoError(t, f.p.Close())
		took := time.Since(start)
		t.Logf("Close took %v", took)
		assert.Less(t, took, time.Second, "Close waited")
		require.NoError(t, f.p.Close(), "a second Close")

		// Every client sees its connection end.
		for _, c := range []net.Conn{delayed, idle, hanging} {
			require.NoError(t, c.SetReadDeadline(time.Now().Add(time.Second)))
			_, err := io.ReadAll(c)
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "a connection was left open: %v", err)
		}
		for _, ch := range []<-chan frame{fch, hch} {
			for range ch { // ends when the connection does
			}
		}
		_, err = net.DialTimeout("tcp", f.p.Addr("b"), time.Second)
		assert.Error(t, err, "the listener is still open")
		assert.Error(t, f.p.Set([]linkproxy.Link{sab}, linkproxy.StreamFaults{}), "Set after Close")
		f.closeAll()
	}()
	noLeaks(t, base)
}

func TestStreamManyConnections(t *testing.T) {
	f := newStreamFixture(t, nil, nil, 0)
	// Jitter on every link: data must still arrive whole and in order.
	var all []linkproxy.Link
	for _, from := range []string{"", "a", "b", "c"} {
		for _, to := range []string{"", "a", "b", "c"} {
			if from != "" || to != "" {
				all = append(all, linkproxy.Link{From: from, To: to}) // a->a too: a node may dial itself
			}
		}
	}
	require.NoError(t, f.p.Set(all, linkproxy.StreamFaults{Delay: 2 * time.Millisecond, Jitter: 2 * time.Millisecond}))

	const n = 40
	senders := []string{"a", "b", "c", ""}
	dests := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		from, to := senders[i%len(senders)], dests[(i/len(senders))%len(dests)]
		c := f.dial(from, to)
		wg.Go(func() {
			payload := make([]byte, 64<<10+i)
			_, _ = rand.Read(payload)
			_ = c.SetDeadline(time.Now().Add(8 * time.Second))
			go func() {
				_, _ = c.Write(payload)
				_ = c.CloseWrite()
			}()
			back, err := io.ReadAll(c)
			if err == nil && !bytes.Equal(payload, back) {
				err = fmt.Errorf("%s->%s: %d bytes sent, %d came back different", from, to, len(payload), len(back))
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}
	var conns uint64
	require.Eventually(t, func() bool {
		conns = 0
		for _, l := range all {
			st := f.p.Stats(l)
			if st.Open != 0 || st.Held != 0 {
				return false
			}
			conns += st.Conns
		}
		return true
	}, 3*time.Second, 10*time.Millisecond, "connections left open or bytes held")
	assert.Equal(t, uint64(n), conns)
	assert.Equal(t, uint64(4), f.p.Stats(linkproxy.Link{From: "", To: "a"}).Conns)
}

func TestStreamSetRejects(t *testing.T) {
	f := newStreamFixture(t, nil, nil, 0)
	ab := []linkproxy.Link{sab}
	for name, tc := range map[string]struct {
		links  []linkproxy.Link
		faults linkproxy.StreamFaults
	}{
		"negative delay":      {ab, linkproxy.StreamFaults{Delay: -time.Millisecond}},
		"negative jitter":     {ab, linkproxy.StreamFaults{Jitter: -time.Millisecond}},
		"negative rate":       {ab, linkproxy.StreamFaults{Rate: -1}},
		"delay above an hour": {ab, linkproxy.StreamFaults{Delay: 2 * time.Hour}},
		"unknown destination": {[]linkproxy.Link{{From: "a", To: "z"}}, linkproxy.StreamFaults{Blackhole: true}},
		"unknown sender":      {[]linkproxy.Link{{From: "z", To: "a"}}, linkproxy.StreamFaults{Blackhole: true}},
		"no node at all":      {[]linkproxy.Link{{}}, linkproxy.StreamFaults{Blackhole: true}},
		"one bad among good":  {[]linkproxy.Link{sab, {From: "a", To: "z"}}, linkproxy.StreamFaults{Blackhole: true}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, f.p.Set(tc.links, tc.faults))
		})
	}
	// A rejected Set changed nothing: a->b is still transparent.
	assert.Less(t, ping(t, f.dial("a", "b"), "x"), 100*time.Millisecond)
	assert.NoError(t, f.p.Set([]linkproxy.Link{{From: "", To: "a"}, {From: "a", To: ""}}, linkproxy.StreamFaults{Rate: 1}))
}

func TestStreamStartRejects(t *testing.T) {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	any0 := netip.MustParseAddrPort("127.0.0.1:0")
	for name, cfg := range map[string]linkproxy.Config{
		"no dial":  {Nodes: map[string]linkproxy.Endpoint{"a": {Listen: any0, Target: "127.0.0.1:1", Addr: nodeAddrs["a"]}}},
		"no nodes": {Dial: dial},
		"port taken": {Dial: dial, Nodes: map[string]linkproxy.Endpoint{
			"a": {Listen: any0, Target: "127.0.0.1:1", Addr: nodeAddrs["a"]},
			"b": {Listen: netip.MustParseAddrPort(taken.Addr().String()), Target: "127.0.0.1:1", Addr: nodeAddrs["b"]},
		}},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := linkproxy.StartStream(context.Background(), cfg)
			assert.Error(t, err)
			assert.Nil(t, p)
		})
	}
}
