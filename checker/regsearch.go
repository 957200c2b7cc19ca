package checker

import (
	"math"
	"math/bits"
	"slices"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// The register search: Wing and Gong's search with Lowe's cache, as Porcupine does it,
// for one key's register operations with their values numbered — arrays for the
// linked list, a value number for the state, a Zobrist hash of the linearized set —
// so that a key's search allocates a few slices instead of a node per event and a box
// per step. It decides the verdict of register keys; a key it finds illegal is
// searched again by Porcupine (checkOne), whose answer is the one given, and whose
// partial linearizations explain the failure: no history is called invalid on this
// search's word alone. FuzzRegisterSearch holds the two to the same answers.

// regOp is a register operation with its values numbered (0: the key is missing), as
// registerOps makes them.
type regOp struct {
	kind      regKind
	unknown   bool  // an indeterminate write or cas: its output is unknown
	from, to  int32 // cas: expected; write and cas: written
	read      int32 // a read's value
	call, ret int64
}

// step is the register model's step (registerModel's, on numbers).
func (o *regOp) step(s int32) (bool, int32) {
	switch o.kind {
	case regRead:
		return o.unknown || s == o.read, s
	case regWrite:
		return true, o.to
	}
	if s == o.from {
		return true, o.to
	}
	return o.unknown, s
}

// searchRegister decides whether ops (one key's) are linearizable: porcupine.Ok,
// Illegal, or Unknown when stop is set or the deadline (zero: none) passes first.
func searchRegister(ops []regOp, deadline time.Time, stop *atomic.Bool) porcupine.CheckResult {
	var s regSearch
	return s.run(ops, deadline, stop)
}

// regSearch is a register search's memory, kept from one key's search to the next so
// that a worker checking thousands of keys does not ask for fresh memory for each.
type regSearch struct {
	order, next, prev []int32
	set, zob          []uint64
	calls             []regFrame
	cache             stateCache
}

type regFrame struct {
	call  int32
	state int32
}

// grow returns b with length n, reusing its memory when it has room.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, n, n+n/4)
	}
	return b[:n]
}

// run is searchRegister with s's memory.
func (s *regSearch) run(ops []regOp, deadline time.Time, stop *atomic.Bool) porcupine.CheckResult {
	n := len(ops)
	if n == 0 {
		return porcupine.Ok
	}
	// Entries 0..2n-1: 2i is op i's call, 2i+1 its return; sorted by time, calls
	// before returns at the same time (as Porcupine sorts them).
	order := grow(s.order, 2*n)
	for i := range order {
		order[i] = int32(i)
	}
	at := func(e int32) int64 {
		if e&1 == 0 {
			return ops[e>>1].call
		}
		return ops[e>>1].ret
	}
	slices.SortFunc(order, func(a, b int32) int {
		ta, tb := at(a), at(b)
		switch {
		case ta < tb:
			return -1
		case ta > tb:
			return 1
		}
		return int(a&1) - int(b&1)
	})
	// The list: next and prev by entry; head is the sentinel 2n, the end -1.
	head := int32(2 * n)
	next, prev := grow(s.next, 2*n+1), grow(s.prev, 2*n+1)
	p := head
	for _, e := range order {
		next[p], prev[e] = e, p
		p = e
	}
	next[p] = -1
	lift := func(c int32) {
		r := c | 1
		next[prev[c]], prev[next[c]] = next[c], prev[c] // a call is never last: its return follows
		next[prev[r]] = next[r]
		if next[r] >= 0 {
			prev[next[r]] = prev[r]
		}
	}
	unlift := func(c int32) {
		r := c | 1
		next[prev[r]] = r
		if next[r] >= 0 {
			prev[next[r]] = r
		}
		next[prev[c]], prev[next[c]] = c, c
	}
	words := (n + 63) / 64
	set := grow(s.set, words)
	clear(set)
	zob := grow(s.zob, n) // a random word per operation: the set's hash is their xor
	x := uint64(0x9e3779b97f4a7c15)
	for i := range zob {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		zob[i] = x * 0xff51afd7ed558ccd
	}
	var hash uint64
	cache := &s.cache
	cache.reset(n, words)
	calls := s.calls[:0]
	defer func() { s.order, s.next, s.prev, s.set, s.zob, s.calls = order, next, prev, set, zob, calls }()
	state := int32(0)
	e := next[head]
	for steps := 0; next[head] >= 0; steps++ {
		if steps&0xfff == 0 && (stop.Load() || !deadline.IsZero() && time.Now().After(deadline)) {
			return porcupine.Unknown
		}
		if e&1 == 0 { // a call: try to linearize it here
			i := e >> 1
			ok, ns := ops[i].step(state)
			if ok {
				w, b := i/64, uint64(1)<<(i%64)
				set[w] |= b
				h := hash ^ zob[i]
				if !cache.seen(h^mix(ns), set, ns) {
					hash = h
					calls = append(calls, regFrame{e, state})
					state = ns
					lift(e)
					e = next[head]
					continue
				}
				set[w] &^= b
			}
			e = next[e]
			continue
		}
		// a return: the call it ends found no place; undo the last linearized call
		if len(calls) == 0 {
			return porcupine.Illegal
		}
		f := calls[len(calls)-1]
		calls = calls[:len(calls)-1]
		i := f.call >> 1
		set[i/64] &^= uint64(1) << (i % 64)
		hash ^= zob[i]
		state = f.state
		unlift(f.call)
		e = next[f.call]
	}
	return porcupine.Ok
}

// mix spreads a state over the hash's bits.
func mix(s int32) uint64 { return bits.RotateLeft64(uint64(s)*0x9e3779b97f4a7c15, 31) }

// stateCache is the search's cache: the (linearized set, state) pairs met, each as the
// set's words and the state in arena, found by hash in an open-addressed table.
type stateCache struct {
	words  int
	slots  []int32 // an entry's offset in arena + 1; 0: empty
	hashes []uint64
	arena  []uint64
	n      int
}

// reset empties the cache for a search of ops operations, the set words long.
func (c *stateCache) reset(ops, words int) {
	size := 64
	for size < 2*ops {
		size *= 2
	}
	c.words, c.n = words, 0
	c.slots, c.hashes = grow(c.slots, size), grow(c.hashes, size)
	clear(c.slots)
	c.arena = c.arena[:0]
}

// seen reports whether (set, s), of hash h, was met before, and records it if not.
func (c *stateCache) seen(h uint64, set []uint64, s int32) bool {
	mask := uint64(len(c.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		off := c.slots[i]
		if off == 0 {
			break
		}
		if c.hashes[i] == h {
			e := c.arena[off-1 : int(off-1)+c.words+1]
			if e[c.words] == uint64(s) && slices.Equal(e[:c.words], set) {
				return true
			}
		}
	}
	if len(c.arena)+c.words+1 >= math.MaxInt32 {
		return true // full: a pruned branch can only lose orders, so at worst Illegal, which Porcupine re-decides
	}
	off := int32(len(c.arena) + 1)
	c.arena = append(c.arena, set...)
	c.arena = append(c.arena, uint64(s))
	c.n++
	if 2*c.n > len(c.slots) {
		c.grow()
	}
	c.put(h, off)
	return false
}

func (c *stateCache) put(h uint64, off int32) {
	mask := uint64(len(c.slots) - 1)
	i := h & mask
	for c.slots[i] != 0 {
		i = (i + 1) & mask
	}
	c.slots[i], c.hashes[i] = off, h
}

func (c *stateCache) grow() {
	slots, hashes := c.slots, c.hashes
	c.slots, c.hashes = make([]int32, 2*len(slots)), make([]uint64, 2*len(slots)) // the old ones are garbage: a rare, large search
	for i, off := range slots {
		if off != 0 {
			c.put(hashes[i], off)
		}
	}
}
