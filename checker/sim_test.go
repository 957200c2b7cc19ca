package checker

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"

	"github.com/faultline/faultline/history"
)

// simConfig describes a simulated linearizable register store under random concurrency.
type simConfig struct {
	seed      uint64
	ops       int
	procs     int     // concurrent clients
	info      float64 // share of operations that end indeterminate
	opsPerKey int     // a fresh key every opsPerKey operations (0: one key)
	workload  string  // "register" (default), "append" or "set"
}

// simOp is one simulated operation: lp is its linearization point, apply whether an
// indeterminate one took effect.
type simOp struct {
	proc          int
	f, key        string
	in            history.Value
	call, ret, lp int64
	info, apply   bool
	out           history.Value
	status        history.Type
}

// simulate runs cfg against a linearizable store: every operation takes effect at a
// random point between its invoke and its completion, in that order. An indeterminate
// operation takes effect or not at random; its process is retired.
func simulate(cfg simConfig) []history.Event {
	r := rand.New(rand.NewPCG(cfg.seed, 1))
	ops := simGenerate(cfg, r)
	simApply(cfg, r, ops)
	return simEvents(ops)
}

// simGenerate draws the operations: which worker, when, what.
func simGenerate(cfg simConfig, r *rand.Rand) []*simOp {
	ops := make([]*simOp, 0, cfg.ops)
	free := make([]int64, cfg.procs) // when each worker is next free
	proc := make([]int, cfg.procs)
	for w := range proc {
		proc[w] = w
	}
	next := cfg.procs
	for i := range cfg.ops {
		w := r.IntN(cfg.procs)
		o := &simOp{proc: proc[w], key: "k0"}
		if cfg.opsPerKey > 0 {
			o.key = fmt.Sprintf("k%d", i/cfg.opsPerKey)
		}
		o.call = free[w] + 1 + r.Int64N(1000)
		o.ret = o.call + 1 + r.Int64N(5000)
		o.lp = o.call + r.Int64N(o.ret-o.call+1)
		free[w] = o.ret
		switch x := r.IntN(10); {
		case cfg.workload == "append" && x < 6, cfg.workload == "set" && x < 9:
			o.f = map[string]string{"append": "append", "set": "add"}[cfg.workload]
			o.in = history.S1(fmt.Sprintf("e%d", i))
		case x < 5, cfg.workload != "":
			o.f = "read"
		case x < 8:
			o.f, o.in = "write", history.S1(fmt.Sprintf("v%d", i))
		default:
			o.f, o.in = "cas", history.L("", fmt.Sprintf("v%d", i))
		}
		if r.Float64() < cfg.info {
			o.info, o.apply = true, r.IntN(2) == 0
			proc[w], next = next, next+1
		}
		ops = append(ops, o)
	}
	if cfg.workload == "set" { // final reads, after everything
		end, keys := slices.Max(free)+10, 1
		if cfg.opsPerKey > 0 {
			keys = (cfg.ops + cfg.opsPerKey - 1) / cfg.opsPerKey
		}
		for k := range keys {
			ops = append(ops, &simOp{proc: next + k, f: "read", key: fmt.Sprintf("k%d", k), call: end, ret: end + 5, lp: end + 2})
		}
	}
	return ops
}

// simApply runs the operations against the store in linearization order. A cas
// expects the value of a recent write.
func simApply(cfg simConfig, r *rand.Rand, ops []*simOp) {
	sorted := append([]*simOp(nil), ops...)
	sort.SliceStable(sorted, func(a, b int) bool { return sorted[a].lp < sorted[b].lp })
	state := map[string]history.Value{}
	recent := map[string][]string{}
	for _, o := range sorted {
		cur, effect := state[o.key], !o.info || o.apply
		o.status = history.OK
		switch o.f {
		case "read":
			o.out = cur
			if cfg.workload != "" {
				o.out = history.L(slices.Clone(cur.L)...)
			}
		case "append", "add":
			if effect {
				state[o.key] = history.L(append(slices.Clone(cur.L), o.in.S)...)
			}
		case "write":
			if effect {
				state[o.key] = o.in
			}
			recent[o.key] = append(recent[o.key], o.in.S)
		case "cas":
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
			}
		}
		if o.info {
			o.status = history.Info
		}
	}
}

// simEvents records the operations as a history, in time order.
func simEvents(ops []*simOp) []history.Event {
	var events []history.Event
	for _, o := range ops {
		done := history.Event{Time: o.ret, Process: o.proc, Type: o.status, F: o.f, Key: o.key, Value: o.in}
		if o.status == history.OK && o.f == "read" {
			done.Value = o.out
		}
		events = append(events, history.Event{Time: o.call, Process: o.proc, Type: history.Invoke, F: o.f, Key: o.key, Value: o.in}, done)
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].Time < events[b].Time })
	for i := range events {
		events[i].Index = int64(i)
	}
	return events
}

// makeStale finds an ok read that a later, completed write makes provably stale and
// makes it return the overwritten value. It returns the index of the read's invoke, or
// -1 if the history has no such read.
func makeStale(events []history.Event) int64 {
	type w struct {
		v         string
		call, ret int64
	}
	p := pairOps(events)
	writes := map[string][]w{}
	for _, o := range p.ops {
		if o.f == "write" && o.status == history.OK {
			writes[o.key] = append(writes[o.key], w{o.in.S, o.call, o.ret})
		}
	}
	for _, o := range p.ops {
		if o.f != "read" || o.status != history.OK {
			continue
		}
		for _, w1 := range writes[o.key] {
			for _, w2 := range writes[o.key] {
				if w2.call > w1.ret && w2.ret < o.call && o.out.S != w1.v {
					events[o.retIdx].Value = history.S1(w1.v)
					return o.invIdx
				}
			}
		}
	}
	return -1
}

// corrupt breaks one read of a simulated append or set history the way a lost write
// does: it drops an element whose append or add completed before the read began (for
// a set, from a key's final read). It returns the read's invoke index, or -1.
func corrupt(events []history.Event, workload string) int64 {
	p := pairOps(events)
	for i := len(p.ops) - 1; i >= 0; i-- {
		r := p.ops[i]
		if r.f != "read" || r.status != history.OK || len(r.out.L) == 0 {
			continue
		}
		for _, a := range p.ops {
			if a.key != r.key || a.f == "read" || a.status != history.OK || a.ret >= r.call {
				continue
			}
			if j := slices.Index(r.out.L, a.in.S); j >= 0 {
				events[r.retIdx].Value = history.L(slices.Delete(slices.Clone(r.out.L), j, j+1)...)
				return r.invIdx
			}
		}
	}
	return -1
}
