package checker

import (
	"fmt"

	"github.com/faultline/faultline/history"
)

// AppendResult is the append checker's result: what the reads of each key's list say
// about the appends, independent of the linearizability check of the list model.
type AppendResult struct {
	Verdict Verdict `json:"valid"`
	// Lost are elements missing from a read that began after their append was
	// acknowledged, or after another read had returned them.
	Lost []string `json:"lost"`
	// Duplicated are elements a read returned more than once.
	Duplicated []string `json:"duplicated"`
	// Reordered are pairs of reads of a key neither of which is a prefix of the other.
	Reordered []string `json:"reordered"`
	// Unexpected are elements read that no append ever tried to append.
	Unexpected []string `json:"unexpected"`
	Anomalies  []string `json:"anomalies,omitempty"`
}

// checkAppend checks every key's reads against each other and against the appends.
func checkAppend(ops []op) *AppendResult {
	res := &AppendResult{Lost: []string{}, Duplicated: []string{}, Reordered: []string{}, Unexpected: []string{}}
	keys, m := byKey(ops)
	read := false
	for _, k := range keys {
		read = checkAppendKey(res, k, m[k]) || read
	}
	res.Verdict = Valid
	switch {
	case len(res.Lost)+len(res.Duplicated)+len(res.Reordered)+len(res.Unexpected) > 0:
		res.Verdict = Invalid
	case !read:
		res.Verdict = Unknown // no list was read: nothing was checked
	}
	return res
}

func (res *AppendResult) anomaly(format string, args ...any) {
	if len(res.Anomalies) < 20 {
		res.Anomalies = append(res.Anomalies, fmt.Sprintf(format, args...))
	}
}

// checkAppendKey checks one key and reports whether it had a successful read. (The
// operations it cannot interpret, the list model notes and counts: see listOps.)
func checkAppendKey(res *AppendResult, key string, ops []*op) bool {
	var appends, reads []*op
	appended := map[string]bool{}
	for i := range ops {
		o := ops[i]
		switch {
		case o.f == history.OpAppend && o.in.Kind == history.Str:
			appends = append(appends, o)
			appended[o.in.S] = true
		case o.f == history.OpRead && !o.open() && o.out.Kind != history.Str:
			reads = append(reads, o)
		}
	}
	ks := knownElements(appends, reads)
	var longest *op
	lost := map[string]bool{}
	for _, r := range reads {
		in := map[string]bool{}
		for _, e := range r.out.L {
			if in[e] {
				res.Duplicated = append(res.Duplicated, key+"/"+e)
				res.anomaly("key %q: %s returned %q twice", key, r.describe(), e)
			}
			in[e] = true
			if !appended[e] {
				res.Unexpected = append(res.Unexpected, key+"/"+e)
				res.anomaly("key %q: %s returned %q, which no append ever appended", key, r.describe(), e)
			}
		}
		for _, k := range ks {
			if k.at >= r.call {
				break
			}
			if !in[k.elem] && !lost[k.elem] {
				lost[k.elem] = true
				res.Lost = append(res.Lost, key+"/"+k.elem)
				res.anomaly("key %q: %s does not contain %q, although %s before the read began", key, r.describe(), k.elem, k.why)
			}
		}
		if longest == nil || len(r.out.L) > len(longest.out.L) {
			longest = r
		}
	}
	// Every read must be a prefix of the longest one, or two reads disagree on the order.
	for _, r := range reads {
		if !isPrefix(r.out.L, longest.out.L) {
			res.Reordered = append(res.Reordered, fmt.Sprintf("%s: events %d and %d", key, r.invIdx, longest.invIdx))
			res.anomaly("key %q: %s returned %s and %s returned %s: neither is a prefix of the other", key, r.describe(), brief(r.out.L), longest.describe(), brief(longest.out.L))
		}
	}
	return len(reads) > 0
}
