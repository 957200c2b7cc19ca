package checker

import (
	"fmt"
	"sort"

	"github.com/faultline/faultline/history"
)

// SetResult is the set checker's result, over every key of a set workload. Elements
// are named "key/element" when the history has more than one key.
type SetResult struct {
	Verdict Verdict `json:"valid"`
	// OK counts acknowledged adds present in their key's final read.
	OK int `json:"ok_count"`
	// Lost are acknowledged adds absent from the final read that began after they
	// completed.
	Lost []string `json:"lost"`
	// Unexpected are elements read that no add ever tried to add.
	Unexpected []string `json:"unexpected"`
	// Stale counts (read, element) pairs where a read missed an element whose add had
	// completed before the read began (lost for a while, or a stale read).
	Stale int `json:"stale_count"`
	// Recovered are indeterminate adds that the final read found.
	Recovered []string `json:"recovered"`
	// NeverRead are adds that no read found, that were not acknowledged before the
	// final read began: they may or may not have happened.
	NeverRead []string `json:"never_read"`
	// NoFinalRead are keys with adds but no successful read: they prove nothing, and
	// make the verdict unknown.
	NoFinalRead []string `json:"no_final_read,omitempty"`
	// Ignored counts the operations left out because they are not set operations (an f
	// other than add and read, or a value of another shape); any makes the verdict
	// unknown rather than valid.
	Ignored   int      `json:"ignored"`
	Anomalies []string `json:"anomalies,omitempty"`
}

// checkSet checks each key's adds against its reads; the last read of a key to begin
// is its final read. Operations it cannot interpret are noted (in notes) and counted in
// bad. With no successful read at all, it has checked nothing: unknown.
func checkSet(ops []op, bad *ignoredOps) (res *SetResult, notes []string) {
	res = &SetResult{Lost: []string{}, Unexpected: []string{}, Recovered: []string{}, NeverRead: []string{}}
	keys, m := byKey(ops)
	verdicts := []Verdict{Valid}
	read := false
	for _, k := range keys {
		name := func(e string) string {
			if len(keys) == 1 {
				return e
			}
			return k + "/" + e
		}
		for _, o := range m[k] {
			switch {
			case o.f == history.OpAdd && o.in.Kind == history.Str:
			case o.f == history.OpRead && (o.open() || o.out.Kind != history.Str):
				read = read || !o.open()
			case o.guessed != "": // counted by the pairing
			default:
				why := whyForeign
				if o.f == history.OpAdd || o.f == history.OpRead {
					why = whyShape
				}
				bad.add(k, why)
				res.Ignored++
				v := o.in
				if o.f == history.OpRead {
					v = o.out
				}
				notes = append(notes, fmt.Sprintf("event %d: %s of %v on key %q is not a set operation; ignored", o.invIdx, o.f, v, k))
			}
		}
		verdicts = append(verdicts, checkSetKey(res, k, m[k], name))
	}
	if !read {
		verdicts = append(verdicts, Unknown)
	}
	res.Verdict = Compose(verdicts...)
	return res, notes
}

// anomaly records the explanation of an anomaly, the first few of them.
func (res *SetResult) anomaly(format string, args ...any) {
	if len(res.Anomalies) < 20 {
		res.Anomalies = append(res.Anomalies, fmt.Sprintf(format, args...))
	}
}

// known is when an element is known to be in the set: its add was acknowledged, or a
// read that returned it completed. A linearizable set never loses it after that.
type known struct {
	elem string
	at   int64
	why  string
}

func checkSetKey(res *SetResult, key string, ops []*op, name func(string) string) Verdict {
	var adds, reads []*op
	added := map[string]bool{}
	for _, o := range ops {
		switch {
		case o.f == history.OpAdd && o.in.Kind == history.Str:
			adds = append(adds, o)
			added[o.in.S] = true
		case o.f == history.OpRead && !o.open() && o.out.Kind != history.Str:
			reads = append(reads, o)
		}
	}
	if len(reads) == 0 {
		if len(adds) > 0 {
			res.NoFinalRead = append(res.NoFinalRead, key)
			return Unknown
		}
		return Valid
	}
	sort.SliceStable(reads, func(a, b int) bool { return reads[a].call < reads[b].call })
	ks := knownElements(adds, reads)
	verdict := Valid
	for _, r := range reads {
		in := make(map[string]bool, len(r.out.L))
		for _, e := range r.out.L {
			in[e] = true
			if !added[e] {
				res.Unexpected = append(res.Unexpected, name(e))
				res.anomaly("key %q: %s returned %q, which no add ever added", key, r.describe(), e)
				verdict = Invalid
			}
		}
		if r == reads[len(reads)-1] {
			verdict = Compose(verdict, finalRead(res, key, r, in, adds, ks, name))
			continue
		}
		for _, k := range ks {
			if k.at >= r.call {
				break
			}
			if !in[k.elem] {
				res.Stale++
				res.anomaly("key %q: %s missed %q, although %s before the read began", key, r.describe(), k.elem, k.why)
				verdict = Invalid
			}
		}
	}
	return verdict
}

// knownElements returns, in time order, when each element became known to be present.
func knownElements(adds, reads []*op) []known {
	m := map[string]known{}
	note := func(e string, at int64, why func() string) {
		if k, ok := m[e]; !ok || at < k.at {
			m[e] = known{elem: e, at: at, why: why()}
		}
	}
	for _, a := range adds {
		if !a.open() {
			note(a.in.S, a.ret, func() string { return "its " + a.describe() + " was acknowledged" })
		}
	}
	for _, r := range reads {
		for _, e := range r.out.L {
			note(e, r.ret, func() string { return "the " + r.describe() + " had returned it" })
		}
	}
	ks := make([]known, 0, len(m))
	for _, k := range m {
		ks = append(ks, k)
	}
	sort.Slice(ks, func(a, b int) bool { return ks[a].at < ks[b].at || ks[a].at == ks[b].at && ks[a].elem < ks[b].elem })
	return ks
}

// finalRead sorts every add of the key by what the final read r found.
func finalRead(res *SetResult, key string, r *op, in map[string]bool, adds []*op, ks []known, name func(string) string) Verdict {
	since := make(map[string]known, len(ks))
	for _, k := range ks {
		since[k.elem] = k
	}
	verdict := Valid
	for _, a := range adds {
		k, isKnown := since[a.in.S]
		switch {
		case in[a.in.S]:
			if a.open() {
				res.Recovered = append(res.Recovered, name(a.in.S))
			} else {
				res.OK++
			}
		case isKnown && k.at < r.call:
			res.Lost = append(res.Lost, name(a.in.S))
			res.anomaly("key %q: %q was lost: %s, but the final %s does not contain it", key, a.in.S, k.why, r.describe())
			verdict = Invalid
		default:
			res.NeverRead = append(res.NeverRead, name(a.in.S))
		}
	}
	return verdict
}
