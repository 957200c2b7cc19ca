package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/internal/linkproxy"
	"github.com/faultline/faultline/internal/netfilter"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/nemesis"
)

// linkFaults puts the nemesis's packet faults on the peer links. Every node reaches its
// peers through the run's link proxy (one listener per destination, on the harness's
// address on the run's network), which degrades the links asked for, one way; it dials
// each connection's destination from inside the sender's namespace, so partitions still
// hold. For a target whose peers send one-way messages (raftnode) the proxy works on
// messages: delay, loss, duplication, reordering; for one whose peers keep long-lived
// streams (etcd) it works on TCP streams: delay, throughput, blackholes. Loss on every
// link at once is done instead at the packet level, with nftables in the nodes'
// namespaces (TCP then retransmits, as on a lossy network), one end of each pair.
type linkFaults struct {
	rt       runtime.NetworkRuntime
	names    []string
	proxy    peerProxy
	messages bool // the links carry one-way messages, not streams

	lossy bool // nftables loss rules are in place
}

// peerProxy is the link proxy of either kind.
type peerProxy interface {
	// Addr is host:port where peers reach node through the proxy.
	Addr(node string) string
	Set(links []linkproxy.Link, p nemesis.Packets) error
	Clear()
	Close() error
}

// messageProxy is the message-level proxy as a peerProxy.
type messageProxy struct{ *linkproxy.Proxy }

func (m messageProxy) Addr(node string) string { return strings.TrimPrefix(m.URL(node), "http://") }
func (m messageProxy) Set(links []linkproxy.Link, p nemesis.Packets) error {
	if p.Rate > 0 || p.Blackhole {
		return fmt.Errorf("packets %v: a stream fault on a message link", p)
	}
	return m.Proxy.Set(links, linkproxy.Faults{Delay: p.Delay, Jitter: p.Jitter, Loss: p.Loss,
		Duplicate: p.Duplicate, Reorder: p.Reorder, ReorderBy: p.ReorderBy})
}

// streamProxy is the TCP-level proxy as a peerProxy.
type streamProxy struct{ *linkproxy.StreamProxy }

func (s streamProxy) Set(links []linkproxy.Link, p nemesis.Packets) error {
	if p.Loss > 0 || p.Duplicate > 0 || p.Reorder > 0 {
		return fmt.Errorf("packets %v: a message fault on a stream link", p)
	}
	return s.StreamProxy.Set(links, linkproxy.StreamFaults{Delay: p.Delay, Jitter: p.Jitter, Rate: p.Rate, Blackhole: p.Blackhole})
}

// startLinkFaults starts the run's link proxy in front of every node's peer port (the
// target's Peers). It must run after the runtime's Prepare and before any node is
// launched: from then on PeerAddr is where peers reach a node.
func startLinkFaults(ctx context.Context, rt runtime.Runtime, peers sut.Peers, names []string, seed int64, logf func(string, ...any)) (*linkFaults, error) {
	nrt, ok := rt.(runtime.NetworkRuntime)
	if !ok || !nrt.HostAddr().IsValid() {
		return nil, fmt.Errorf("packet faults: the %s runtime gives the nodes no network of their own", rt.Name())
	}
	nodes := map[string]linkproxy.Endpoint{}
	for _, n := range names {
		nodes[n] = linkproxy.Endpoint{Listen: netip.AddrPortFrom(nrt.HostAddr(), 0),
			Target: rt.HostPort(n, peers.Port), Addr: nrt.Addr(n)}
	}
	dial := func(ctx context.Context, from, addr string) (net.Conn, error) {
		var d net.Dialer
		if from == "" {
			return d.DialContext(ctx, "tcp", addr)
		}
		ns, err := nrt.NetNS(from)
		if err != nil {
			return nil, err
		}
		var conn net.Conn
		err = netns.Do(ns, func() error {
			var err error
			conn, err = d.DialContext(ctx, "tcp", addr)
			return err
		})
		return conn, err
	}
	cfg := linkproxy.Config{Nodes: nodes, Dial: dial, Seed: seed, Log: logf}
	var p peerProxy
	if peers.Messages {
		mp, err := linkproxy.Start(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p = messageProxy{mp}
	} else {
		sp, err := linkproxy.StartStream(ctx, cfg)
		if err != nil {
			return nil, err
		}
		p = streamProxy{sp}
	}
	return &linkFaults{rt: nrt, names: names, proxy: p, messages: peers.Messages}, nil
}

// Messages implements nemesis.Packeter.
func (l *linkFaults) Messages() bool { return l.messages }

// PeerAddr is host:port where the other nodes reach node's peer port: the proxy's
// listener for it.
func (l *linkFaults) PeerAddr(node string) string { return l.proxy.Addr(node) }

// Packets implements nemesis.Packeter: it replaces the packet faults in force.
func (l *linkFaults) Packets(ctx context.Context, links []nemesis.Link, p nemesis.Packets) error {
	if err := l.HealPackets(ctx); err != nil {
		return err
	}
	if p.Loss > 0 && (nemesis.Packets{Loss: p.Loss}) == p && len(links) == len(l.names)*(len(l.names)-1) {
		return l.packetLoss(ctx, p.Loss)
	}
	pl := make([]linkproxy.Link, len(links))
	for i, k := range links {
		pl[i] = linkproxy.Link{From: k.From, To: k.To}
	}
	return l.proxy.Set(pl, p)
}

// packetLoss makes every link lose a fraction of its packets: for each pair, the
// namespace of the first of the two drops that fraction of what goes either way.
func (l *linkFaults) packetLoss(ctx context.Context, fraction float64) error {
	l.lossy = true
	names := slices.Sorted(slices.Values(l.names))
	for i, n := range names {
		var peers []netip.Addr
		for _, m := range names[i+1:] {
			peers = append(peers, l.rt.Addr(m))
		}
		if len(peers) == 0 {
			continue
		}
		ns, err := l.rt.NetNS(n)
		if err != nil {
			return fmt.Errorf("packet loss at %s: %w", n, err)
		}
		if err := netfilter.Loss(ctx, ns, peers, fraction); err != nil {
			return err
		}
	}
	return nil
}

// HealPackets implements nemesis.Packeter. Loss rules of a node that is not running went
// with its namespace (a container's) or are cleared here (a process's).
func (l *linkFaults) HealPackets(ctx context.Context) error {
	l.proxy.Clear()
	if !l.lossy {
		return nil
	}
	var errs []error
	for _, n := range l.names {
		ns, err := l.rt.NetNS(n)
		if err != nil {
			continue // not running: nothing to clear
		}
		if err := netfilter.Loss(ctx, ns, nil, 0); err != nil {
			errs = append(errs, fmt.Errorf("heal packet loss at %s: %w", n, err))
		}
	}
	if len(errs) == 0 {
		l.lossy = false
	}
	return errors.Join(errs...)
}

// Close stops the proxy.
func (l *linkFaults) Close() error { return l.proxy.Close() }
