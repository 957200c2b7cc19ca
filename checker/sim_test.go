package checker

import (
	"slices"

	"github.com/faultline/faultline/checker/sim"
	"github.com/faultline/faultline/history"
)

// simConfig and simulate are package sim's, for this package's tests.
type simConfig = sim.Config

func simulate(cfg simConfig) []history.Event { return sim.Simulate(cfg) }

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
