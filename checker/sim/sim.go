// Package sim simulates a linearizable store under random concurrency, for tests and
// benchmarks of the checkers: every operation takes effect at a random point between
// its invoke and its completion, so every history it makes is valid (a test breaks one
// on purpose to see it caught).
package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/faultline/faultline/history"
)

// Config describes a simulated linearizable store under random concurrency.
type Config struct {
	Seed      uint64
	Ops       int
	Procs     int     // concurrent clients
	Info      float64 // share of operations that end indeterminate
	OpsPerKey int     // a fresh key every OpsPerKey operations (0: one key)
	// Keys is how many keys are active at once, as in a run (each operation takes one at
	// random; each is replaced by a fresh key after OpsPerKey operations on it). 0: one
	// at a time, every operation on the newest.
	Keys     int
	Workload string // "" (registers), "append", "set", "txn" or "keyspace"
	// Revisions gives register, append and set answers the store's revision, as etcd's
	// clients record it (history.Event.Rev): each write that takes effect makes one.
	Revisions bool
}

// simOp is one simulated operation: lp is its linearization point, apply whether an
// indeterminate one took effect.
type simOp struct {
	proc          int
	f, key        string
	in            history.Value
	call, ret, lp int64
	info, apply   bool
	rev           int64 // with Config.Revisions, the revision an ok answer was made at
	out           history.Value
	outSet        bool // the completion carries out, whatever its status
	status        history.Type
}

// Simulate runs cfg against a linearizable store: every operation takes effect at a
// random point between its invoke and its completion, in that order. An indeterminate
// operation takes effect or not at random; its process is retired. Times are abstract
// ticks, events in time order, indexed.
func Simulate(cfg Config) []history.Event {
	r := rand.New(rand.NewPCG(cfg.Seed, 1))
	ops := simGenerate(cfg, r)
	simApply(cfg, r, ops)
	return simEvents(ops)
}

// simGenerate draws the operations: which worker, when, what.
func simGenerate(cfg Config, r *rand.Rand) []*simOp {
	ops := make([]*simOp, 0, cfg.Ops)
	free := make([]int64, cfg.Procs) // when each worker is next free
	proc := make([]int, cfg.Procs)
	for w := range proc {
		proc[w] = w
	}
	next := cfg.Procs
	slots, used, fresh := make([]int, cfg.Keys), make([]int, cfg.Keys), cfg.Keys
	for k := range slots {
		slots[k] = k
	}
	pick := func(i int) string { // a key for operation i
		switch {
		case cfg.Keys > 0:
			k := r.IntN(cfg.Keys)
			key := fmt.Sprintf("k%d", slots[k])
			if used[k]++; cfg.OpsPerKey > 0 && used[k] >= cfg.OpsPerKey {
				slots[k], used[k], fresh = fresh, 0, fresh+1
			}
			return key
		case cfg.OpsPerKey > 0:
			return fmt.Sprintf("k%d", i/cfg.OpsPerKey)
		}
		return "k0"
	}
	for i := range cfg.Ops {
		w := r.IntN(cfg.Procs)
		o := &simOp{proc: proc[w], key: pick(i)}
		o.call = free[w] + 1 + r.Int64N(1000)
		o.ret = o.call + 1 + r.Int64N(5000)
		o.lp = o.call + r.Int64N(o.ret-o.call+1)
		free[w] = o.ret
		switch x := r.IntN(10); {
		case cfg.Workload == "txn":
			o.f, o.key = history.OpTxn, ""
			mops := make([]history.Mop, 1+r.IntN(4))
			for j := range mops {
				mops[j] = history.Mop{F: history.MopRead, Key: pick(i)}
				if r.IntN(2) == 0 {
					mops[j] = history.Mop{F: history.MopAppend, Key: mops[j].Key, V: history.S1(fmt.Sprintf("%d.%d", i, j))}
				}
			}
			o.in = history.T(mops...)
		case cfg.Workload == "keyspace":
			// conditions and lists are decided where the operation takes effect
			o.f = []string{history.OpCreate, history.OpUpdate, history.OpUpdate, history.OpUpdate, history.OpUpdate,
				history.OpDelete, history.OpGet, history.OpGet, history.OpList, history.OpList}[x]
			switch o.f {
			case history.OpCreate:
				o.in = history.S1(fmt.Sprintf("v%d", i))
			case history.OpUpdate:
				o.in = history.L(fmt.Sprintf("v%d", i), "0")
			case history.OpDelete:
				o.in = history.S1("0")
			case history.OpList:
				o.key, o.in = "k", history.L("0", "k", "10")
			}
		case cfg.Workload == "append" && x < 6, cfg.Workload == "set" && x < 9:
			o.f = map[string]string{"append": "append", "set": "add"}[cfg.Workload]
			o.in = history.S1(fmt.Sprintf("e%d", i))
		case x < 5, cfg.Workload != "":
			o.f = history.OpRead
		case x < 8:
			o.f, o.in = history.OpWrite, history.S1(fmt.Sprintf("v%d", i))
		default:
			o.f, o.in = history.OpCAS, history.L("", fmt.Sprintf("v%d", i))
		}
		if r.Float64() < cfg.Info {
			o.info, o.apply = true, r.IntN(2) == 0
			proc[w], next = next, next+1
		}
		ops = append(ops, o)
	}
	if cfg.Workload == "set" { // final reads, after everything
		end, keys := slices.Max(free)+10, 1
		switch {
		case cfg.Keys > 0:
			keys = fresh
		case cfg.OpsPerKey > 0:
			keys = (cfg.Ops + cfg.OpsPerKey - 1) / cfg.OpsPerKey
		}
		for k := range keys {
			ops = append(ops, &simOp{proc: next + k, f: history.OpRead, key: fmt.Sprintf("k%d", k), call: end, ret: end + 5, lp: end + 2})
		}
	}
	return ops
}

// simApply runs the operations against the store in linearization order. A cas
// expects the value of a recent write.
func simApply(cfg Config, r *rand.Rand, ops []*simOp) {
	sorted := append([]*simOp(nil), ops...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].lp < sorted[b].lp })
	state := map[string]history.Value{}
	recent := map[string][]string{}
	ks := keyspace{rev: 1, mod: map[string]int64{}, value: map[string]string{}}
	rev := int64(1) // the registers' and lists' revision (Config.Revisions)
	for _, o := range sorted {
		cur, effect := state[o.key], !o.info || o.apply
		o.status = history.OK
		wrote := false // a register, list or set write that took effect: it made a revision
		switch o.f {
		case history.OpCreate, history.OpUpdate, history.OpDelete, history.OpGet, history.OpList:
			ks.apply(r, o, effect)
		case history.OpTxn:
			o.out = history.T(slices.Clone(o.in.T)...)
			for j, m := range o.out.T {
				l := state[m.Key].L
				if m.F == history.MopRead {
					o.out.T[j].V = history.L(slices.Clone(l)...)
				} else if effect {
					state[m.Key] = history.L(append(slices.Clone(l), m.V.S)...)
				}
			}
		case history.OpRead:
			o.out = cur
			if cfg.Workload != "" {
				o.out = history.L(slices.Clone(cur.L)...)
			}
		case history.OpAppend, history.OpAdd:
			if effect {
				state[o.key] = history.L(append(slices.Clone(cur.L), o.in.S)...)
				wrote = true
			}
		case history.OpWrite:
			if effect {
				state[o.key] = o.in
				wrote = true
			}
			recent[o.key] = append(recent[o.key], o.in.S)
		case history.OpCAS:
			from := "none"
			if rc := recent[o.key]; len(rc) > 0 {
				from = rc[max(0, len(rc)-1-r.IntN(2))]
			}
			o.in.L[0] = from
			switch {
			case cur.Kind != history.Str || cur.S != from:
				o.status = history.Fail
			case effect:
				state[o.key] = history.S1(o.in.L[1])
				recent[o.key] = append(recent[o.key], o.in.L[1])
				wrote = true
			}
		}
		if o.info {
			o.status = history.Info
		}
		if cfg.Revisions && o.f != history.OpTxn && !ks.owns(o.f) {
			if wrote {
				rev++
			}
			if o.status == history.OK {
				o.rev = rev
			}
		}
	}
}

// simEvents records the operations as a history, in time order.
func simEvents(ops []*simOp) []history.Event {
	var events []history.Event
	for _, o := range ops {
		done := history.Event{Time: o.ret, Process: o.proc, Type: o.status, F: o.f, Key: o.key, Value: o.in, Rev: o.rev}
		if o.status == history.OK && (o.f == history.OpRead || o.f == history.OpTxn) || o.outSet && o.status != history.Info {
			done.Value = o.out
		}
		if o.outSet && o.status == history.Fail {
			done.Error = history.Conflict
		}
		events = append(events, history.Event{Time: o.call, Process: o.proc, Type: history.Invoke, F: o.f, Key: o.key, Value: o.in}, done)
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].Time < events[b].Time })
	for i := range events {
		events[i].Index = int64(i)
	}
	return events
}

// owns says whether f is one of the keyspace's operations.
func (ks *keyspace) owns(f string) bool {
	switch f {
	case history.OpCreate, history.OpUpdate, history.OpDelete, history.OpGet, history.OpList:
		return true
	}
	return false
}

// keyspace is a revisioned keyspace (the keyspace workload's store): each write makes a
// revision, each key has its mod revision (absent: none).
type keyspace struct {
	rev   int64
	mod   map[string]int64
	value map[string]string
}

// apply runs a keyspace operation at its linearization point: an update expects the
// key's mod revision (one in five a stale one: a conflict), a delete of an absent key
// is a get instead, a list reads the first ten keys.
func (k *keyspace) apply(r *rand.Rand, o *simOp, effect bool) {
	num := func(n int64) string { return fmt.Sprint(n) }
	mod := k.mod[o.key]
	if o.f == history.OpDelete && mod == 0 {
		o.f, o.in = history.OpGet, history.Value{}
	}
	o.outSet = true
	switch o.f {
	case history.OpGet:
		o.out = history.L(num(k.rev), "0")
		if mod > 0 {
			o.out = history.L(num(k.rev), num(mod), k.value[o.key])
		}
		return
	case history.OpList:
		keys := make([]string, 0, len(k.mod))
		for key := range k.mod {
			keys = append(keys, key)
		}
		slices.Sort(keys)
		l := []string{num(k.rev), "0"}
		if len(keys) > 10 {
			keys, l[1] = keys[:10], "1"
		}
		for _, key := range keys {
			l = append(l, key, num(k.mod[key]), k.value[key])
		}
		o.out = history.L(l...)
		return
	}
	expect := int64(0)
	switch o.f {
	case history.OpUpdate:
		expect = mod
		if r.IntN(5) == 0 && expect > 1 {
			expect--
		}
		o.in = history.L(o.in.L[0], num(expect))
	case history.OpDelete:
		expect = mod
		o.in = history.S1(num(expect))
	}
	if mod != expect {
		o.status, o.out = history.Fail, history.S1(num(mod))
		return
	}
	if !effect {
		return
	}
	k.rev++
	o.out = history.S1(num(k.rev))
	if o.f == history.OpDelete {
		delete(k.mod, o.key)
		delete(k.value, o.key)
		return
	}
	k.mod[o.key], k.value[o.key] = k.rev, o.in.S
	if o.f == history.OpUpdate {
		k.value[o.key] = o.in.L[0]
	}
}
