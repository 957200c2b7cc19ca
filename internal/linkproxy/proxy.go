package linkproxy

import (
	"context"
	"errors"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"
)

const (
	// maxBody bounds one request's body (the node's own bound on a peer request).
	maxBody = 512 << 20
	// defaultTimeout bounds one delivery on a faulty link: the sender's own peer timeout.
	defaultTimeout = time.Second
	// closeWait bounds how long Close waits for handlers and deliveries to return once
	// they have been cancelled.
	closeWait = 5 * time.Second
)

// Link is a directed peer link: messages From one node To another. From is "" for
// messages whose sender was not recognised.
type Link struct{ From, To string }

func (l Link) String() string {
	from := l.From
	if from == "" {
		from = "?"
	}
	return from + "->" + l.To
}

// Endpoint is one node as the proxy sees it.
type Endpoint struct {
	// Listen is where the proxy listens for messages to this node (port 0: pick one).
	Listen netip.AddrPort
	// Target is host:port of the node's real peer listener.
	Target string
	// Addr is the node's own address: requests from it are the node's messages.
	Addr netip.Addr
}

// Config is what Start needs.
type Config struct {
	// Nodes maps each node's name (not "") to its endpoint. Addresses must be distinct.
	Nodes map[string]Endpoint
	// Dial opens a TCP connection to addr on behalf of node from ("" when the sender is not
	// recognised). The harness dials from inside from's network namespace, so partitions
	// hold. It must honour ctx. Required.
	Dial func(ctx context.Context, from, addr string) (net.Conn, error)
	// Seed seeds the proxy's random decisions.
	Seed int64
	// Timeout bounds one delivery on a faulty link (0: one second, the sender's own peer
	// timeout; a snapshot that takes longer to deliver needs more). A transparent forward
	// is bounded by the sender's own timeout instead: it ends when the sender hangs up.
	Timeout time.Duration
	// Log receives one line per fault change and per link going down or up. May be nil.
	Log func(format string, args ...any)
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	cfg     Config
	byAddr  map[netip.Addr]string
	addrs   map[string]netip.AddrPort // node -> actual listen address
	servers []*http.Server
	serving sync.WaitGroup // Serve goroutines

	ctx    context.Context // cancelled by Close: held messages and deliveries stop
	cancel context.CancelFunc

	rngMu sync.Mutex
	rng   *rand.Rand

	mu     sync.Mutex
	links  map[Link]*link
	closed bool
	work   sync.WaitGroup // handlers and wires; Add only under mu while !closed

	closeOnce sync.Once
	closeErr  error
}

// Start listens on every endpoint's Listen address and serves until Close. ctx bounds the
// start only. On error nothing is left open.
func Start(ctx context.Context, cfg Config) (*Proxy, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("start link proxy: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = defaultTimeout
	}
	seed := uint64(cfg.Seed)
	p := &Proxy{
		cfg:    cfg,
		byAddr: map[netip.Addr]string{},
		addrs:  map[string]netip.AddrPort{},
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		links:  map[Link]*link{},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	var lc net.ListenConfig
	var listeners []net.Listener
	for _, node := range sortedNodes(cfg.Nodes) {
		ep := cfg.Nodes[node]
		p.byAddr[ep.Addr.Unmap()] = node
		l, err := lc.Listen(ctx, "tcp", ep.Listen.String())
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			p.cancel()
			return nil, fmt.Errorf("start link proxy: listen for %s on %s: %w", node, ep.Listen, err)
		}
		listeners = append(listeners, l)
		p.addrs[node] = netip.MustParseAddrPort(l.Addr().String())
	}
	for i, node := range sortedNodes(cfg.Nodes) {
		srv := &http.Server{
			Handler:           p.handler(node),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       time.Minute,
			ErrorLog:          log.New(logWriter{p.logf}, "linkproxy: ", 0),
		}
		p.servers = append(p.servers, srv)
		p.serving.Add(1)
		go func(l net.Listener) {
			defer p.serving.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				p.logf("serve for %s on %s: %v", node, l.Addr(), err)
			}
		}(listeners[i])
	}
	return p, nil
}

func (cfg *Config) validate() error {
	if cfg.Dial == nil {
		return errors.New("no Dial")
	}
	if len(cfg.Nodes) == 0 {
		return errors.New("no nodes")
	}
	if cfg.Timeout < 0 {
		return fmt.Errorf("negative timeout %v", cfg.Timeout)
	}
	seen := map[netip.Addr]string{}
	for _, node := range sortedNodes(cfg.Nodes) {
		ep := cfg.Nodes[node]
		if node == "" {
			return errors.New(`node named "" (the name of unrecognised senders)`)
		}
		if !ep.Listen.IsValid() {
			return fmt.Errorf("node %s: invalid listen address %v", node, ep.Listen)
		}
		if _, _, err := net.SplitHostPort(ep.Target); err != nil {
			return fmt.Errorf("node %s: target %q: %w", node, ep.Target, err)
		}
		if !ep.Addr.IsValid() {
			return fmt.Errorf("node %s: no address", node)
		}
		if other, ok := seen[ep.Addr.Unmap()]; ok {
			return fmt.Errorf("nodes %s and %s share address %v: senders could not be told apart", other, node, ep.Addr)
		}
		seen[ep.Addr.Unmap()] = node
	}
	return nil
}

// URL is the peer URL the other nodes should use for node: "http://" and the address
// the proxy listens on for messages to it; "" for an unknown node.
func (p *Proxy) URL(node string) string {
	ap, ok := p.addrs[node]
	if !ok {
		return ""
	}
	return "http://" + ap.String()
}

// Close stops the listeners and closes every connection to them, drops the messages still
// held, cancels deliveries in flight and waits (at most a few seconds) for them to return,
// then closes the idle upstream connections. It is idempotent: later calls return what the
// first one did. Stats stay readable after Close.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		var errs []error
		for _, srv := range p.servers {
			if err := srv.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		p.cancel()
		p.serving.Wait()
		if !waitTimeout(&p.work, closeWait) {
			errs = append(errs, fmt.Errorf("deliveries still running after %v (does Dial honour its context?)", closeWait))
		}
		p.mu.Lock()
		for _, l := range p.links {
			l.client.CloseIdleConnections()
		}
		p.mu.Unlock()
		if err := errors.Join(errs...); err != nil {
			p.closeErr = fmt.Errorf("close link proxy: %w", err)
		}
	})
	return p.closeErr
}

// begin registers one unit of work (a handler or a wire) unless the proxy is closed.
func (p *Proxy) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.work.Add(1)
	return true
}

// link returns the state of l, creating it on first use. Callers hold p.mu.
func (p *Proxy) linkLocked(l Link) *link {
	st, ok := p.links[l]
	if !ok {
		st = newLink(l, p.cfg.Nodes[l.To].Target, p.cfg.Dial)
		p.links[l] = st
	}
	return st
}

// sender names the node whose address remoteAddr (host:port) is, or "".
func (p *Proxy) sender(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return ""
	}
	return p.byAddr[ap.Addr().Unmap()]
}

func (p *Proxy) logf(format string, args ...any) {
	if p.cfg.Log != nil {
		p.cfg.Log(format, args...)
	}
}

// logWriter turns http.Server's error log into Config.Log lines.
type logWriter struct{ logf func(string, ...any) }

func (w logWriter) Write(b []byte) (int, error) {
	w.logf("%s", strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func sortedNodes(m map[string]Endpoint) []string {
	nodes := make([]string, 0, len(m))
	for n := range m {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	return nodes
}
