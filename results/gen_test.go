package results

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/faultline/faultline/history"
)

// genConfig shapes a generated register history: ops client operations by procs
// processes over 5 nodes, opsPerKey operations a key (8 keys in use at a time, as the
// register workload does), a fault every few seconds, and, when stale is set, one read
// that returns the value its key held before a write that completed before it began.
type genConfig struct {
	seed       uint64
	ops, procs int
	opsPerKey  int
	stale      bool
	latency    time.Duration // an operation's least latency; 0 is 300µs
}

// genHistory generates a linearizable register history (each operation takes effect
// at its invoke) with the faults recorded as the nemesis records them, and the one
// stale read of cfg.stale. It is deterministic in cfg.
func genHistory(cfg genConfig) []history.Event {
	g := &generator{cfg: cfg, r: rand.New(rand.NewPCG(cfg.seed, 7)), state: map[string]*regKey{}}
	for p := range cfg.procs {
		heap.Push(&g.q, &genProc{id: p, at: int64(p) * 100_000})
	}
	g.nextFault = 2 * int64(time.Second)
	for g.done < cfg.ops || g.q.busy() {
		p := g.q[0]
		g.nemesisUntil(p.at)
		if p.pending == nil {
			if g.started >= cfg.ops {
				heap.Pop(&g.q)
				continue
			}
			g.invoke(p)
		} else {
			g.complete(p)
		}
		heap.Fix(&g.q, 0)
	}
	g.nemesisUntil(g.last + 1)
	g.emit(history.Event{Process: history.NemesisProcess, Type: history.Info, F: history.HealAll, Time: g.last + 1})
	return g.events
}

type regKey struct {
	value, prev string
	set, acked  bool // set: the key holds value; acked: the write of value completed
	// valueCall is when the write of value was invoked, valueDone when it completed ok
	// (-1: not yet, or never), prevDone the same of prev's write.
	valueCall, valueDone, prevDone int64
}

type genOp struct {
	f, key  string
	in, out history.Value
	status  history.Type
	node    string
}

type genProc struct {
	id, next int
	at       int64
	pending  *genOp
}

type procQueue []*genProc

func (q procQueue) Len() int           { return len(q) }
func (q procQueue) Less(a, b int) bool { return q[a].at < q[b].at }
func (q procQueue) Swap(a, b int)      { q[a], q[b] = q[b], q[a] }
func (q *procQueue) Push(x any)        { *q = append(*q, x.(*genProc)) }
func (q *procQueue) Pop() any {
	old := *q
	p := old[len(old)-1]
	*q = old[:len(old)-1]
	return p
}
func (q procQueue) busy() bool {
	for _, p := range q {
		if p.pending != nil {
			return true
		}
	}
	return false
}

type generator struct {
	cfg           genConfig
	r             *rand.Rand
	q             procQueue
	events        []history.Event
	state         map[string]*regKey
	started, done int
	nextProc      int
	staleDone     bool
	nextFault     int64
	faultEnd      int64 // > 0 while a fault is in force
	faultKind     string
	faults        int
	last          int64
}

func (g *generator) emit(e history.Event) {
	e.Index = int64(len(g.events))
	g.last = max(g.last, e.Time)
	g.events = append(g.events, e)
}

// nemesisUntil records the faults that start or end before t: a partition or a kill
// of a node, held 2 s, then healed.
func (g *generator) nemesisUntil(t int64) {
	for {
		switch {
		case g.faultEnd > 0 && g.faultEnd <= t:
			end := map[string]string{"start-partition": "stop-partition", "kill": "start", "pause": "resume"}[g.faultKind]
			g.emit(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: end, Time: g.faultEnd})
			g.emit(history.Event{Process: history.NemesisProcess, Type: history.OK, F: end, Time: g.faultEnd + 1_000_000})
			g.faultEnd, g.nextFault = 0, g.faultEnd+3*int64(time.Second)
		case g.faultEnd == 0 && g.nextFault <= t:
			g.faults++
			node := fmt.Sprintf("n%d", 1+g.faults%5)
			g.faultKind = "start-partition"
			value := history.L("one", node+" | rest")
			switch g.faults % 3 {
			case 1:
				g.faultKind, value = "kill", history.S1("one")
			case 2:
				g.faultKind, value = "pause", history.S1("one")
			}
			g.emit(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: g.faultKind, Time: g.nextFault})
			g.emit(history.Event{Process: history.NemesisProcess, Type: history.OK, F: g.faultKind, Value: value, Node: node, Time: g.nextFault + 2_000_000})
			g.faultEnd = g.nextFault + 2*int64(time.Second)
		default:
			return
		}
	}
}

func (g *generator) invoke(p *genProc) {
	n := g.started
	g.started++
	window := n / (g.cfg.opsPerKey * 8) * 8 // 8 keys at a time, opsPerKey each
	key := fmt.Sprintf("k%d", window+g.r.IntN(8))
	st := g.state[key]
	if st == nil {
		st = &regKey{valueDone: -1, prevDone: -1}
		g.state[key] = st
	}
	o := &genOp{key: key, node: fmt.Sprintf("n%d", 1+p.id%5), status: history.OK}
	if g.faultEnd > 0 && g.r.IntN(4) == 0 {
		o.status = history.Fail
		if g.r.IntN(3) == 0 {
			o.status = history.Info
		}
	}
	switch {
	case !g.staleDone && g.cfg.stale && n >= g.cfg.ops*3/5 && st.acked && st.prevDone >= 0 && st.prevDone < st.valueCall && o.status == history.OK:
		o.f, o.out = "read", history.S1(st.prev) // the anomaly: a value already overwritten
		g.staleDone = true
	case g.r.IntN(2) == 0:
		o.f, o.out = "read", history.Value{}
		if st.set {
			o.out = history.S1(st.value)
		}
	default:
		o.f, o.in = "write", history.S1(fmt.Sprintf("v%d", n))
		o.out = o.in
		if o.status == history.OK || o.status == history.Info && g.r.IntN(2) == 0 {
			st.prev, st.value, st.set, st.acked = st.value, o.in.S, true, false
			st.prevDone, st.valueCall, st.valueDone = st.valueDone, p.at, -1
		}
	}
	g.emit(history.Event{Process: p.id, Type: history.Invoke, F: o.f, Key: key, Value: o.in, Node: o.node, Time: p.at})
	p.pending = o
	base := int64(g.cfg.latency)
	if base == 0 {
		base = 300_000
	}
	lat := base + g.r.Int64N(5*base)
	if g.faultEnd > 0 {
		lat *= int64(1 + g.r.IntN(20))
	}
	p.at += lat
}

func (g *generator) complete(p *genProc) {
	o := p.pending
	e := history.Event{Process: p.id, Type: o.status, F: o.f, Key: o.key, Value: o.out, Node: o.node, Time: p.at}
	if o.status != history.OK {
		e.Value, e.Error = o.in, "timeout"
	}
	g.emit(e)
	if st := g.state[o.key]; o.f == "write" && o.status == history.OK && st.value == o.in.S {
		st.acked, st.valueDone = true, p.at
	}
	g.done++
	p.pending = nil
	if o.status == history.Info { // never reused: the client goes on as a new process
		g.nextProc++
		p.id = g.cfg.procs + g.nextProc
	}
	p.at += int64(50_000 + g.r.IntN(200_000))
}
