package linkproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// streamChunk is the most a pump reads at once.
	streamChunk = 32 << 10
	// streamMaxHeld bounds the bytes one pump holds; beyond it the pump stops reading.
	streamMaxHeld = 64 << 20
)

// StreamFaults are what a link does to the bytes on it. The zero value is transparent.
type StreamFaults struct {
	// Delay and Jitter: every byte arrives Delay ± Jitter (uniform, never below 0) after
	// it was sent; order within a connection is kept.
	Delay, Jitter time.Duration
	// Rate is how many bytes per second the link carries, all its connections together
	// (0: unlimited).
	Rate int64
	// Blackhole: the link delivers nothing. Its bytes are held (not dropped) until the
	// fault changes; new connections on it are accepted, and dialled, but carry nothing.
	Blackhole bool
}

// Validate reports why f is not a usable set of faults: a duration below 0 or above an
// hour, or a negative rate.
func (f StreamFaults) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", f.Delay}, {"jitter", f.Jitter}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
		if d.v > maxWait {
			errs = append(errs, fmt.Errorf("%s %v is above %v (hold a link that long with a blackhole)", d.name, d.v, maxWait))
		}
	}
	if f.Rate < 0 {
		errs = append(errs, fmt.Errorf("negative rate %d B/s", f.Rate))
	}
	return errors.Join(errs...)
}

func (f StreamFaults) String() string {
	if f == (StreamFaults{}) {
		return "none"
	}
	return fmt.Sprintf("delay=%v±%v rate=%dB/s blackhole=%t", f.Delay, f.Jitter, f.Rate, f.Blackhole)
}

// delay is the wait of a chunk whose jitter draw is u, in [-1, 1].
func (f StreamFaults) delay(u float64) time.Duration {
	return max(f.Delay+time.Duration(u*float64(f.Jitter)), 0)
}

// StreamStats describe one directed link since StartStream.
type StreamStats struct {
	// Bytes: bytes delivered on the link (written to the receiving side), whichever side
	// opened the connection that carried them.
	Bytes uint64
	// Held: bytes read from the sending side and not delivered yet.
	Held int64
	// Conns: connections accepted from From to To's listener (and dialled); Open: how many
	// of them are still open.
	Conns uint64
	Open  int64
	// DialFailed: connections from From to To closed at once because the dial to To
	// failed or did not finish in time.
	DialFailed uint64
}

// StreamProxy is a running TCP-level link proxy, which slows or stops every peer
// connection of a cluster, direction by direction.
//
// The message-level Proxy needs every raft message to be a one-way POST. Real etcd's
// rafthttp is not built that way: for each pair of peers, A opens long-lived streams to B
// (GET /raft/stream/msgapp/<A> and GET /raft/stream/message/<A>) and B writes its raft
// messages for A into the RESPONSE bodies, so messages B→A flow downstream on connections
// A initiated. A also POSTs to B's /raft (the pipeline: snapshots, and messages while the
// streams are down) and probes B (GET /raft/probing) to measure the round trip time that
// etcd exports as etcd_network_peer_round_trip_time_seconds. A StreamProxy works at the
// TCP level instead, so it carries all of that unchanged, and puts its faults on bytes,
// direction by direction.
//
// Topology and dialling are those of Proxy: one listener per destination node j
// (Config.Nodes[j].Listen, whose address is j's peer URL for the others, URL(j)); a
// connection accepted there from node i's address (Endpoint.Addr) is a connection i→j,
// and the proxy dials j's Target for it with Config.Dial(ctx, i, target), from inside i's
// network namespace, so that packet-filter partitions still hold. A dial that fails, or
// does not finish within Config.Timeout (0: one second), closes the accepted connection.
// A connection from an address that is no node's has i = "": its directions are
// Link{"", j} and Link{j, ""}.
//
// What i sends on the connection (upstream: a stream's GET, a POST's body, a probe)
// travels Link{i, j} and takes its faults; what j sends back (downstream: the responses,
// and so the messages j streams to i) travels Link{j, i} and takes ITS faults. So
// Link{j, i} carries everything j says to i, whichever of them opened the connection: j's
// messages on i's streams, j's answers to i's POSTs and probes, and j's own requests to i
// (on j's streams and pipeline to i). A probe's round trip takes the faults of both links.
//
// Each direction of each connection is a pump: a reader that reads what arrives (at most
// 32 KiB at a time), stamps it with its arrival time and queues it, and a writer that
// releases the queued chunks one after another, in order, each when
//
//  1. the link is not a Blackhole (a blackholed link holds its bytes, and the end of its
//     stream, until the fault changes: TCP cannot lose bytes, so nothing is dropped);
//  2. its arrival time plus Delay ± Jitter has passed (Jitter is drawn once per chunk,
//     uniform, from a source seeded by Config.Seed; a chunk never leaves before the one
//     before it, so jitter delays but never reorders);
//  3. the link's Rate allows it: a token bucket per link, shared by every connection on
//     it, releases at most Rate bytes a second, in slices of about a twentieth of a second's
//     worth.
//
// The writer re-reads the link's faults whenever they change (Set and Clear wake every
// writer on the link), so a fault applies at once to connections already open, a
// long-lived stream included, and Clear releases whatever is held: a delayed chunk whose
// time has already come leaves at once. Each pump holds at most 64 MiB; beyond that its
// reader stops reading, and TCP's own flow control makes the sender wait, as a slow link
// does. The end of a stream (the sender's FIN, a half-close) is queued behind its bytes
// and passed on with CloseWrite once they are delivered (a side that cannot half-close is
// closed, and the connection with it); the connection closes when both directions have
// ended. A reset, or an error writing to either side, closes both sides at once, dropping
// what that connection still holds.
//
// A Blackhole on Link{i, j} is a one-way cut that a packet filter cannot make (a one-way
// DROP stalls TCP both ways, since the ACKs are lost too): j→i keeps flowing on the
// connections already open. Requests i sends on the cut link are held, so new exchanges
// that begin with one (a stream's GET, a POST) do not start until the cut heals, when the
// held bytes arrive, late: a stale request or message after the heal is something raft
// must tolerate anyway. Connections stay open while their bytes are held, even if the far
// end has given up on them; they close when a write to it fails after the heal.
//
// Unlike the message-level Proxy, a StreamProxy cannot drop, duplicate or reorder
// messages: on a stream a byte-level proxy can only slow or stop what it carries.
//
// Its methods are safe for concurrent use.
type StreamProxy struct {
	cfg       Config
	byAddr    map[netip.Addr]string
	addrs     map[string]netip.AddrPort // node -> actual listen address
	listeners []net.Listener

	ctx    context.Context // cancelled by Close: dials in progress stop
	cancel context.CancelFunc

	rngMu sync.Mutex
	rng   *rand.Rand

	mu     sync.Mutex
	links  map[Link]*streamLink
	conns  map[*streamConn]struct{}
	closed bool
	wg     sync.WaitGroup // accept loops and connections; Add only from inside a counted goroutine

	closeOnce sync.Once
	closeErr  error
}

// StartStream listens on every endpoint's Listen address and proxies connections until
// Close. ctx bounds the start only. On error nothing is left open.
func StartStream(ctx context.Context, cfg Config) (*StreamProxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start stream proxy: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	seed := uint64(cfg.Seed)
	p := &StreamProxy{
		cfg:    cfg,
		byAddr: map[netip.Addr]string{},
		addrs:  map[string]netip.AddrPort{},
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		links:  map[Link]*streamLink{},
		conns:  map[*streamConn]struct{}{},
	}
	var lc net.ListenConfig
	nodes := sortedNodes(cfg.Nodes)
	for _, node := range nodes {
		ep := cfg.Nodes[node]
		p.byAddr[ep.Addr.Unmap()] = node
		l, err := lc.Listen(ctx, "tcp", ep.Listen.String())
		if err != nil {
			for _, l := range p.listeners {
				l.Close()
			}
			return nil, fmt.Errorf("start stream proxy: listen for %s on %s: %w", node, ep.Listen, err)
		}
		p.listeners = append(p.listeners, l)
		p.addrs[node] = netip.MustParseAddrPort(l.Addr().String())
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for i, node := range nodes {
		p.wg.Add(1)
		go p.accept(node, p.listeners[i])
	}
	return p, nil
}

// URL is the peer URL the other nodes should use for node: "http://" and the address
// the proxy listens on for connections to it; "" for an unknown node.
func (p *StreamProxy) URL(node string) string {
	if a := p.Addr(node); a != "" {
		return "http://" + a
	}
	return ""
}

// Addr is host:port of the listener for connections to node; "" for an unknown node.
func (p *StreamProxy) Addr(node string) string {
	ap, ok := p.addrs[node]
	if !ok {
		return ""
	}
	return ap.String()
}

// Set replaces the faults on each of links with f; other links keep theirs. Each end of a
// link must be a node or "" (unrecognised senders), not both "". The change applies at
// once to the connections already open. Set fails, changing nothing, if f is invalid, a
// link is unknown, or the proxy is closed.
func (p *StreamProxy) Set(links []Link, f StreamFaults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("set stream link faults: %w", err)
	}
	for _, l := range links {
		if l.From == "" && l.To == "" {
			return fmt.Errorf("set stream link faults on %v: no node at either end", l)
		}
		for _, n := range []string{l.From, l.To} {
			if _, ok := p.cfg.Nodes[n]; !ok && n != "" {
				return fmt.Errorf("set stream link faults on %v: unknown node %q", l, n)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("set stream link faults: proxy closed")
	}
	for _, l := range links {
		p.linkLocked(l).set(f)
	}
	if len(links) > 0 {
		p.logf("stream link faults %v on %v", f, links)
	}
	return nil
}

// Clear makes every link transparent again; whatever is held flows again at once.
func (p *StreamProxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, st := range p.links {
		if st.set(StreamFaults{}) {
			n++
		}
	}
	if n > 0 {
		p.logf("stream link faults cleared on %d links", n)
	}
}

// Stats returns what link l has carried (zero for a link that never carried anything).
// Stats stay readable after Close.
func (p *StreamProxy) Stats(l Link) StreamStats {
	p.mu.Lock()
	st := p.links[l]
	p.mu.Unlock()
	if st == nil {
		return StreamStats{}
	}
	return StreamStats{
		Bytes:      st.bytes.Load(),
		Held:       st.held.Load(),
		Conns:      st.conns.Load(),
		Open:       st.open.Load(),
		DialFailed: st.dialFailed.Load(),
	}
}

// Close closes the listeners and every proxied connection (dropping what they hold),
// cancels dials in progress, and waits (at most a few seconds) for every goroutine to
// return. It is idempotent: later calls return what the first one did.
func (p *StreamProxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		conns := make([]*streamConn, 0, len(p.conns))
		for c := range p.conns {
			conns = append(conns, c)
		}
		p.mu.Unlock()
		var errs []error
		for _, l := range p.listeners {
			if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
				errs = append(errs, err)
			}
		}
		p.cancel()
		for _, c := range conns {
			c.abort()
		}
		if !waitTimeout(&p.wg, closeWait) {
			errs = append(errs, fmt.Errorf("connections still open after %v (does Dial honour its context?)", closeWait))
		}
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("close stream proxy: %w", err)
		}
	})
	return p.closeErr
}

// accept serves the listener for connections to node to until it is closed.
func (p *StreamProxy) accept(to string, l net.Listener) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || p.ctx.Err() != nil {
				return
			}
			p.logf("stream proxy: accept for %s: %v", to, err) // e.g. out of file descriptors
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		p.wg.Add(1)
		go p.serve(to, c)
	}
}

// serve proxies one accepted connection to node to until both its directions end, or
// either side fails, or the proxy closes.
func (p *StreamProxy) serve(to string, client net.Conn) {
	defer p.wg.Done()
	from := p.sender(client.RemoteAddr())
	p.mu.Lock()
	upLink, downLink := p.linkLocked(Link{From: from, To: to}), p.linkLocked(Link{From: to, To: from})
	p.mu.Unlock()

	target := p.cfg.Nodes[to].Target
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.Timeout)
	server, err := p.cfg.Dial(ctx, from, target)
	cancel()
	if err != nil {
		upLink.dialFailed.Add(1)
		client.Close()
		if !upLink.down.Swap(true) {
			p.logf("stream link %v: dial %s: %v", upLink.Link, target, err)
		}
		return
	}
	if upLink.down.Swap(false) {
		p.logf("stream link %v: dialling again", upLink.Link)
	}

	c := &streamConn{
		client: client,
		server: server,
		up:     p.newPump(upLink),
		down:   p.newPump(downLink),
		done:   make(chan struct{}),
	}
	if !p.register(c) {
		client.Close()
		server.Close()
		return
	}
	defer p.unregister(c)
	upLink.conns.Add(1)
	upLink.open.Add(1)
	defer upLink.open.Add(-1)
	c.run()
}

func (p *StreamProxy) register(c *streamConn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *StreamProxy) unregister(c *streamConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// newPump makes a pump on link l, with a jitter source of its own drawn from the proxy's.
func (p *StreamProxy) newPump(l *streamLink) *pump {
	p.rngMu.Lock()
	s1, s2 := p.rng.Uint64(), p.rng.Uint64()
	p.rngMu.Unlock()
	pp := &pump{link: l, rng: rand.New(rand.NewPCG(s1, s2))}
	pp.cond.L = &pp.mu
	return pp
}

// linkLocked returns the state of l, creating it on first use. Callers hold p.mu.
func (p *StreamProxy) linkLocked(l Link) *streamLink {
	st, ok := p.links[l]
	if !ok {
		st = &streamLink{Link: l, changed: make(chan struct{})}
		p.links[l] = st
	}
	return st
}

// sender names the node whose address a is, or "".
func (p *StreamProxy) sender(a net.Addr) string {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return ""
	}
	return p.byAddr[ap.Addr().Unmap()]
}

func (p *StreamProxy) logf(format string, args ...any) {
	if p.cfg.Log != nil {
		p.cfg.Log(format, args...)
	}
}

// streamLink is one directed link's state: its faults, its rate bucket and its counts.
type streamLink struct {
	Link

	mu      sync.Mutex
	faults  StreamFaults
	changed chan struct{} // closed (and replaced) when faults change
	tokens  float64       // the rate bucket, in bytes
	filled  time.Time     // when tokens were last brought up to date

	bytes, conns, dialFailed atomic.Uint64
	held, open               atomic.Int64
	down                     atomic.Bool // the last dial failed (for logging)
}

// set replaces the link's faults and wakes its writers; it reports whether they changed.
func (l *streamLink) set(f StreamFaults) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.faults == f {
		return false
	}
	l.faults = f
	close(l.changed)
	l.changed = make(chan struct{})
	return true
}

// state returns the link's faults and a channel that is closed when they next change.
func (l *streamLink) state() (StreamFaults, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.faults, l.changed
}

// take asks the link's rate for up to want bytes at now: it returns how many may be
// written now (all of want on a link without a Rate), or 0 and how long until some may.
func (l *streamLink) take(want int, now time.Time) (int, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rate := l.faults.Rate
	if rate == 0 {
		return want, 0
	}
	slice := int(min(max(rate/20, 1), streamChunk)) // a twentieth of a second's worth
	burst := float64(2 * slice)                     // room for a timer firing late
	l.tokens = min(burst, l.tokens+now.Sub(l.filled).Seconds()*float64(rate))
	l.filled = now
	n := min(want, slice)
	if l.tokens >= float64(n) {
		l.tokens -= float64(n)
		return n, 0
	}
	wait := time.Duration((float64(n) - l.tokens) / float64(rate) * float64(time.Second))
	return 0, max(wait, time.Millisecond)
}
