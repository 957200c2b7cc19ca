package workload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// leaseSource makes the lease workload's operations. Each of its Config.Keys slots
// runs leases one after another, each lease with a key of its own: grant a lease of
// Config.LeaseTTL; put the key, attached to it; then, while it lives, the mix — reads
// of the key, keepalives of the lease, now and then a revoke, and now and then a lapse
// (no more keepalives: the key is read until the lease has expired) — from every worker
// that draws the slot, concurrently. The slot starts over, with a fresh lease and a
// fresh key, once the lease is revoked, a keepalive or a read finds it gone (expired),
// or the put failed. A key is attached to one lease only, so that the checker can hold every
// read of it to that lease's lifetime.
type leaseSource struct {
	mix     []Weighted
	total   int
	prefix  string
	ttl     int
	mu      sync.Mutex
	nextKey int
	values  int
	slots   []leaseSlot
}

// leaseSlot is one slot's current lease.
type leaseSlot struct {
	key, lease string
	phase      leasePhase
	busy       bool // a grant, put or revoke is in flight: it decides the next phase
	lapsing    bool // no more keepalives: the lease is left to expire, its key read until gone
}

// opLapse is the mix's entry that leaves a lease to expire: its keepalives stop, and
// its key is read until it is gone — before its TTL is up, every read must find it.
const opLapse = "lapse"

type leasePhase uint8

const (
	leaseNone     leasePhase = iota // no lease: the next op on the slot grants one
	leaseGranted                    // granted: its key is to be put
	leaseAttached                   // its key was put (or may have been): the mix
)

func newLeaseSource(d *Def, cfg Config) source {
	g := &leaseSource{mix: d.Mix, prefix: d.Prefix, ttl: int(cfg.LeaseTTL / time.Second), slots: make([]leaseSlot, max(cfg.Keys, 1))}
	for _, w := range g.mix {
		g.total += w.Weight
	}
	return g
}

func (g *leaseSource) next(r *rand.Rand) op {
	n, f := r.IntN(len(g.slots)), pickOp(g.mix, r.IntN(g.total))
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.slots[n]
	o := op{slot: n, key: s.key, lease: s.lease}
	switch {
	case s.phase == leaseNone && !s.busy:
		s.key, s.lease, s.busy = g.prefix+strconv.Itoa(g.nextKey), "", true
		g.nextKey++
		o.f, o.key, o.lease, o.ttl = history.OpGrant, s.key, "", g.ttl
	case s.phase == leaseNone: // its grant is in flight
		o.f = history.OpRead
	case s.phase == leaseGranted && !s.busy:
		g.values++
		s.busy = true
		o.f, o.arg = history.OpPut, strconv.Itoa(g.values)
	case s.phase == leaseGranted: // its put is in flight
		o.f = history.OpKeepAlive
	case f == history.OpRevoke && s.busy: // one revoke at a time
		o.f = history.OpRead
	case f == opLapse || s.lapsing: // only reads, until it is gone
		s.lapsing = true
		o.f = history.OpRead
	default:
		o.f = f
		s.busy = s.busy || f == history.OpRevoke
	}
	return o
}

func (g *leaseSource) done(o op, t history.Type, result history.Value, errMsg string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.slots[o.slot]
	if s.key != o.key {
		return // the slot moved on to another lease
	}
	switch o.f {
	case history.OpGrant:
		s.busy = false
		if t == history.OK && result.Kind == history.List && len(result.L) == 2 {
			s.lease, s.phase = result.L[0], leaseGranted
		}
	case history.OpPut:
		s.busy = false
		s.phase = leaseAttached
		if t == history.Fail { // refused: never attached; start over
			s.phase = leaseNone
		}
	case history.OpRevoke:
		s.busy, s.phase, s.lapsing = false, leaseNone, false // revoked, gone already, or in doubt: start over
	case history.OpKeepAlive:
		if errMsg == history.LeaseNotFound && !s.busy { // the lease is gone (expired)
			s.phase, s.lapsing = leaseNone, false
		}
	case history.OpRead:
		if s.lapsing && t == history.OK && result.IsNone() && !s.busy { // it expired
			s.phase, s.lapsing = leaseNone, false
		}
	}
}

// applyLease runs one of the lease workload's operations on c, which must implement
// Leaser. A grant returns [lease, TTL granted]; a keepalive [lease, TTL]; the others
// their argument.
func applyLease(ctx context.Context, c Client, o op) (history.Value, error) {
	l, ok := c.(Leaser)
	if !ok {
		return o.invokeValue(), Definite(fmt.Errorf("the target's client (%T) has no leases", c))
	}
	switch o.f {
	case history.OpGrant:
		id, ttl, err := l.Grant(ctx, time.Duration(o.ttl)*time.Second)
		if err != nil {
			return o.invokeValue(), err
		}
		return history.L(id, seconds(ttl)), nil
	case history.OpPut:
		return o.invokeValue(), l.PutWithLease(ctx, o.key, o.arg, o.lease)
	case history.OpKeepAlive:
		ttl, err := l.KeepAlive(ctx, o.lease)
		if err != nil {
			return o.invokeValue(), err
		}
		return history.L(o.lease, seconds(ttl)), nil
	default:
		return o.invokeValue(), l.Revoke(ctx, o.lease)
	}
}

// seconds renders a TTL in whole seconds, as the history carries it.
func seconds(d time.Duration) string { return strconv.FormatInt(int64(d/time.Second), 10) }
