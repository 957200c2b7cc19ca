package workload

import (
	"math/rand/v2"
	"strconv"
	"sync"

	"github.com/faultline/faultline/history"
)

// op is one generated operation.
type op struct {
	f     string // read, write, cas, append, add; grant, put, keepalive, revoke
	key   string
	arg   string // the value written, appended, added or put; a cas's new value
	from  string // a cas's expected value
	lease string // the lease a put attaches to, or a keepalive or revoke renews or ends
	ttl   int    // a grant's TTL, in seconds
	list  bool   // a read of a list (append, set) rather than a register
	slot  int    // the key slot it was drawn from (kubernetes: the prefix)
	mops  []history.Mop
	rev   int64  // kubernetes: the mod revision a write expects, a list's revision, a compaction's
	start string // kubernetes: the key a list page starts at
	limit int    // kubernetes: a list page's limit
}

// keys are the keys o reads or writes, each to be read at the end: its key and its
// micro-operations' (a list's prefix and a compaction are none).
func (o op) keys() []string {
	switch {
	case o.f == history.OpList || o.f == history.OpCompact || o.f == history.OpWatch:
		return nil
	case len(o.mops) > 1:
		ks := []string{o.key}
		for _, m := range o.mops[1:] {
			ks = append(ks, m.Key)
		}
		return ks
	}
	return []string{o.key}
}

// normalFail says whether a fail with this error is a working system's normal answer
// (a cas's mismatch, a condition's conflict, a compacted revision), after which a
// client goes on at once, rather than unavailability, after which it backs off.
func normalFail(errMsg string) bool {
	return errMsg == history.Mismatch || errMsg == history.Conflict || errMsg == history.Compacted
}

// invokeValue is the op's Value in its invoke event, and in a completion that did not
// return a result.
func (o op) invokeValue() history.Value {
	switch o.f {
	case history.OpRead:
		return history.Value{}
	case history.OpCAS:
		return history.L(o.from, o.arg)
	case history.OpGrant:
		return history.S1(strconv.Itoa(o.ttl))
	case history.OpPut:
		return history.L(o.arg, o.lease)
	case history.OpKeepAlive, history.OpRevoke:
		return history.S1(o.lease)
	case history.OpTxn:
		return history.T(o.mops...)
	case history.OpUpdate:
		return history.L(o.arg, strconv.FormatInt(o.rev, 10))
	case history.OpDelete, history.OpCompact, history.OpWatch:
		return history.S1(strconv.FormatInt(o.rev, 10))
	case history.OpGet:
		return history.Value{}
	case history.OpList:
		return history.L(strconv.FormatInt(o.rev, 10), o.start, strconv.Itoa(o.limit))
	default:
		return history.S1(o.arg)
	}
}

// source hands out a workload's operations to its workers and hears how each ended.
// next draws from the worker's rand the same number of times for every operation, so
// that a worker's decisions depend only on the seed.
type source interface {
	next(r *rand.Rand) op
	done(o op, t history.Type, result history.Value, errMsg string)
}

// newSource returns the source of cfg's workload: the registry's own, or the keyed mix.
func newSource(cfg Config) source {
	d, _ := Lookup(cfg.Workload) // normalize checked it
	if d.source != nil {
		return d.source(d, cfg)
	}
	return newGenerator(d, cfg)
}

// recentValues is how many recent values of a key a cas may expect.
const recentValues = 4

// neverWritten is a cas's expected value on a key with no value known yet. Values
// count from 1, so it never matches.
const neverWritten = "0"

// pickOp returns the operation of mix that w, drawn below the mix's total weight, falls on.
func pickOp(mix []Weighted, w int) string {
	for _, m := range mix {
		if w < m.Weight {
			return m.F
		}
		w -= m.Weight
	}
	return mix[len(mix)-1].F
}

// generator hands out a workload's operations. Each worker draws its decisions (which
// key slot, which operation, which recent value a cas expects) from its own rand, the
// same number of draws for every op, so that a worker's sequence of decisions depends
// only on the seed. The key and values those decisions resolve to come from state
// shared by all workers (the key in each slot, its value counter, its recent values),
// so they match across runs when the interleaving does — always with one worker.
type generator struct {
	mix     []Weighted
	total   int
	prefix  string
	list    bool
	rotate  int // retire a key after this many ops; 0 never
	mu      sync.Mutex
	nextKey int
	slots   []slot
}

// slot is one of the concurrently active keys.
type slot struct {
	key     string
	ops     int // ops generated on key
	counter int // last value generated for key
	recent  [recentValues]string
	nrecent int // values ever put in recent
}

func newGenerator(d *Def, cfg Config) *generator {
	g := &generator{mix: d.Mix, prefix: d.Prefix, list: d.List, slots: make([]slot, max(cfg.Keys, 1))}
	if d.Rotate {
		g.rotate = cfg.OpsPerKey
	}
	for _, w := range g.mix {
		g.total += w.Weight
	}
	for i := range g.slots {
		g.slots[i] = g.freshSlot()
	}
	return g
}

func (g *generator) freshSlot() slot {
	s := slot{key: g.prefix + strconv.Itoa(g.nextKey)}
	g.nextKey++
	return s
}

// next returns the next operation for the worker whose rand is r.
func (g *generator) next(r *rand.Rand) op {
	n, w, pick := r.IntN(len(g.slots)), r.IntN(g.total), r.IntN(recentValues)
	f := pickOp(g.mix, w)
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.slots[n]
	o := op{f: f, key: s.key, slot: n, list: g.list && f == history.OpRead}
	switch f {
	case history.OpRead:
	case history.OpCAS:
		o.from = neverWritten
		if s.nrecent > 0 {
			o.from = s.recent[(s.nrecent-1-pick%min(s.nrecent, recentValues))%recentValues]
		}
		o.arg = s.fresh()
	default:
		o.arg = s.fresh()
		if f == history.OpWrite {
			s.remember(o.arg)
		}
	}
	s.ops++
	if g.rotate > 0 && s.ops >= g.rotate {
		*s = g.freshSlot()
	}
	return o
}

// done feeds an op's outcome back: values read and swapped in are what later cas
// operations on the key expect.
func (g *generator) done(o op, t history.Type, result history.Value, _ string) {
	if t != history.OK || (o.f != history.OpCAS && (o.f != history.OpRead || o.list || result.Kind != history.Str)) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &g.slots[o.slot]
	if s.key != o.key {
		return // retired meanwhile
	}
	if o.f == history.OpCAS {
		s.remember(o.arg)
	} else {
		s.remember(result.S)
	}
}

func (s *slot) fresh() string {
	s.counter++
	return strconv.Itoa(s.counter)
}

func (s *slot) remember(v string) {
	s.recent[s.nrecent%recentValues] = v
	s.nrecent++
}

// workerRand is worker w's rand for a run with this seed.
func workerRand(seed int64, w int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(seed), 0x776f726b6c6f6164^uint64(w)))
}
