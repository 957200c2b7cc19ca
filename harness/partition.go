package harness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/internal/netfilter"
	"github.com/faultline/faultline/nemesis"
)

// partitioner applies the nemesis's grudges to a run's nodes, one implementation for
// every runtime: each node drops its grudge's peers, filtered in its network namespace
// (a NetworkRuntime's, with nftables) or by the runtime itself (runtime.Filter). A node
// started while a partition is in force gets it again (reapply): a restarted container
// has a new namespace. A runtime that can only take whole nodes off the network
// (runtime.Isolator) gets the grudges that cut nodes off from all the others.
type partitioner struct {
	names []string
	// drop makes node drop peers' packets (none: heals it); nil in isolate mode.
	drop func(ctx context.Context, node string, peers []string, reset bool) error
	// isolate takes exactly these nodes off the network; set in isolate mode.
	isolate func(ctx context.Context, nodes []string) error

	mu     sync.Mutex
	grudge nemesis.Grudge // in force; nil: none
	reset  bool
}

// newPartitioner returns the partitioner of rt's nodes, or nil when rt can make no
// partition.
func newPartitioner(rt runtime.Runtime, names []string) *partitioner {
	p := &partitioner{names: names}
	a := rt.Abilities()
	switch nrt, netOK := rt.(runtime.NetworkRuntime); {
	case !a.Partition && !a.Isolate:
		return nil
	case a.Partition:
		if f, ok := rt.(runtime.Filter); ok {
			p.drop = f.Drop
		} else if netOK {
			p.drop = nsDrop(nrt)
		} else {
			return nil
		}
	default:
		iso, ok := rt.(runtime.Isolator)
		if !ok {
			return nil
		}
		p.isolate = iso.Isolate
	}
	return p
}

// nsDrop filters a node's packets in its network namespace. A node not running whose
// namespace is gone (a container's) is left: it gets the grudge when it starts again.
func nsDrop(rt runtime.NetworkRuntime) func(ctx context.Context, node string, peers []string, reset bool) error {
	return func(ctx context.Context, node string, peers []string, reset bool) error {
		ns, err := rt.NetNS(node)
		if err != nil {
			if !rt.Running(node) {
				return nil
			}
			return err
		}
		if len(peers) == 0 {
			return netfilter.Clear(ctx, ns)
		}
		addrs := make([]netip.Addr, len(peers))
		for i, p := range peers {
			addrs[i] = rt.Addr(p)
		}
		return netfilter.Partition(ctx, ns, addrs, reset)
	}
}

// Grudges implements nemesis.Partitioner.
func (p *partitioner) Grudges() bool { return p.isolate == nil }

// Partition implements nemesis.Partitioner: every node's filter replaced by its grudge.
func (p *partitioner) Partition(ctx context.Context, g nemesis.Grudge, reset bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isolate != nil {
		cut, err := p.isolated(g)
		if err != nil {
			return err
		}
		p.grudge, p.reset = maps.Clone(g), reset
		return p.isolate(ctx, cut)
	}
	p.grudge, p.reset = maps.Clone(g), reset
	var errs []error
	for _, n := range p.names {
		if err := p.drop(ctx, n, g[n], reset && len(g[n]) > 0); err != nil {
			errs = append(errs, fmt.Errorf("partition %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// isolated returns the nodes g cuts off from all the others, or an error when g drops
// anything else.
func (p *partitioner) isolated(g nemesis.Grudge) ([]string, error) {
	var cut []string
	for _, n := range p.names {
		if len(g[n]) > 0 && len(g[n]) == len(p.names)-1 {
			cut = append(cut, n)
		}
	}
	for _, n := range p.names {
		if slices.Contains(cut, n) {
			continue
		}
		for _, peer := range g[n] {
			if !slices.Contains(cut, peer) {
				return nil, fmt.Errorf("partition: %s drops %s, but this runtime can only take whole nodes off the network", n, peer)
			}
		}
	}
	return cut, nil
}

// HealPartition implements nemesis.Partitioner: every node's filter cleared.
func (p *partitioner) HealPartition(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.grudge = nil
	if p.isolate != nil {
		return p.isolate(ctx, nil)
	}
	var errs []error
	for _, n := range p.names {
		if err := p.drop(ctx, n, nil, false); err != nil {
			errs = append(errs, fmt.Errorf("heal %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// reapply gives node, just started, the partition in force.
func (p *partitioner) reapply(ctx context.Context, node string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.grudge == nil {
		return nil
	}
	if p.isolate != nil {
		cut, _ := p.isolated(p.grudge)
		return p.isolate(ctx, cut)
	}
	return p.drop(ctx, node, p.grudge[node], p.reset && len(p.grudge[node]) > 0)
}
