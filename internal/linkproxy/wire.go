package linkproxy

import (
	"container/heap"
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxHeld bounds the copies one link holds at once; beyond it copies are dropped.
	maxHeld = 1024
	// maxHeldBytes bounds the bytes one link holds at once (a copy of the largest body
	// always fits on an empty link); beyond it copies are dropped.
	maxHeldBytes = maxBody
)

// link is one directed link's state: its faults, its client, its wire and its counts.
type link struct {
	Link
	target string
	client *http.Client
	faults Faults // guarded by Proxy.mu

	mu        sync.Mutex
	held      heldQueue
	heldBytes int
	seq       uint64
	running   bool          // a wire goroutine is running for this link
	wake      chan struct{} // tells the wire a new head was queued (buffered, 1)

	forwarded, failed, dropped, duplicated, delayed, reordered atomic.Uint64
	down                                                       atomic.Bool // the last forward failed (for logging)
}

func newLink(l Link, target string, dial func(ctx context.Context, from, addr string) (net.Conn, error)) *link {
	return &link{Link: l, target: target, client: newClient(l.From, dial), wake: make(chan struct{}, 1)}
}

func (st *link) stats() Stats {
	return Stats{
		Forwarded:  st.forwarded.Load(),
		Failed:     st.failed.Load(),
		Dropped:    st.dropped.Load(),
		Duplicated: st.duplicated.Load(),
		Delayed:    st.delayed.Load(),
		Reordered:  st.reordered.Load(),
	}
}

// schedule draws msg's fate under f and queues its copies on the link's wire, starting
// the wire if it is not running. The caller is a handler holding a unit of p.work, so the
// wire's p.work.Add cannot race with Close's Wait.
func (p *Proxy) schedule(st *link, f Faults, msg message) {
	pl := p.draw(f)
	if pl.drop {
		st.dropped.Add(1)
		return
	}
	if pl.reordered {
		st.reordered.Add(1)
	}
	if len(pl.waits) > 1 {
		st.duplicated.Add(1)
	}
	now := time.Now()
	for _, wait := range pl.waits {
		held, start := st.hold(msg, now, wait)
		if !held {
			st.dropped.Add(1)
			continue
		}
		if start {
			p.work.Add(1)
			go p.runWire(st)
		}
	}
}

// hold queues one copy due wait after now (counting it as delayed if wait > 0, before the
// wire can deliver it). It reports whether the copy fit under the link's bounds, and
// whether the caller must start the wire.
func (st *link) hold(msg message, now time.Time, wait time.Duration) (held, start bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.held) >= maxHeld || st.heldBytes+len(msg.body) > maxHeldBytes {
		return false, false
	}
	if wait > 0 {
		st.delayed.Add(1)
	}
	st.seq++
	h := &heldMsg{msg: msg, due: now.Add(wait), seq: st.seq}
	heap.Push(&st.held, h)
	st.heldBytes += len(msg.body)
	if !st.running {
		st.running = true
		return true, true
	}
	if st.held[0] == h {
		select {
		case st.wake <- struct{}{}:
		default:
		}
	}
	return true, false
}

// next pops the head copy if it is due at now, or says how long until it is. With nothing
// held it marks the wire stopped and reports !ok; the wire must then return.
func (st *link) next(now time.Time) (msg message, wait time.Duration, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.held) == 0 {
		st.running = false
		return message{}, 0, false
	}
	if wait := st.held[0].due.Sub(now); wait > 0 {
		return message{}, wait, true
	}
	h := heap.Pop(&st.held).(*heldMsg)
	st.heldBytes -= len(h.msg.body)
	return h.msg, 0, true
}

// dropHeld drops every copy still held (the proxy is closing) and stops the wire.
func (st *link) dropHeld() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropped.Add(uint64(len(st.held)))
	st.held, st.heldBytes, st.running = nil, 0, false
}

// runWire delivers the link's held copies one after another as they fall due, until none
// is held or the proxy closes.
func (p *Proxy) runWire(st *link) {
	defer p.work.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if p.ctx.Err() != nil {
			st.dropHeld()
			return
		}
		msg, wait, ok := st.next(time.Now())
		if !ok {
			return
		}
		if wait == 0 {
			p.deliver(st, msg)
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-st.wake:
		case <-p.ctx.Done():
		}
	}
}

// heldMsg is one held copy; heldQueue orders copies by due time, then arrival.
type heldMsg struct {
	msg message
	due time.Time
	seq uint64
}

type heldQueue []*heldMsg

func (q heldQueue) Len() int { return len(q) }
func (q heldQueue) Less(i, j int) bool {
	if !q[i].due.Equal(q[j].due) {
		return q[i].due.Before(q[j].due)
	}
	return q[i].seq < q[j].seq
}
func (q heldQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *heldQueue) Push(x any)   { *q = append(*q, x.(*heldMsg)) }
func (q *heldQueue) Pop() any {
	old := *q
	h := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return h
}
