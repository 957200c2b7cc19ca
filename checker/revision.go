package checker

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/faultline/faultline/history"
)

// RevisionResult is the revision check's verdict ("revision" in results.json), made
// when the acknowledged operations of a register, set or append history carry the
// store's revisions (history.Event.Rev: etcd's clients report their response header's).
//
// The other checks hold each key to itself (linearizability is local: a history is
// linearizable when each key's is). A store with one revision counter orders every key
// at once, and its revisions say where each answer was made, so this check holds every
// answer to real time across keys, in one pass:
//
//   - an operation that began after another ended answers at that one's revision or
//     later, and a write, which makes a revision, later only: a read served by a member
//     that had not applied a write already acknowledged — a stale read even where the
//     key it read had not changed since, which no per-key check can see
//     (revision-order);
//   - no two writes make the same revision (duplicate-revision).
type RevisionResult struct {
	Verdict Verdict `json:"valid"`
	// Ops counts the acknowledged operations with a revision; Writes those of them that
	// wrote.
	Ops    int `json:"ops"`
	Writes int `json:"writes"`
	revisionAnomalies
}

// Line is the result in one line.
func (r *RevisionResult) Line() string {
	return fmt.Sprintf("%d operations at revisions (%d writes)", r.Ops, r.Writes) + r.line()
}

// describeKeyed describes o with its key: "write of k by process 1 at …".
func describeKeyed(o *op) string {
	d := o.describe()
	if f, rest, ok := strings.Cut(d, " "); ok && f == o.f {
		return fmt.Sprintf("%s of %s %s", f, o.key, rest)
	}
	return d
}

// revisioned is an acknowledged operation and the revision it answered at.
type revisioned struct {
	o     *op
	write bool
}

// checkRevisions is the revision check of ops (nil when none carries a revision).
func checkRevisions(ops []op) *RevisionResult {
	var rs []revisioned
	for i := range ops {
		o := &ops[i]
		if o.status == history.OK && o.rev > 0 && o.guessed == "" {
			rs = append(rs, revisioned{o: o, write: o.f != history.OpRead})
		}
	}
	if len(rs) == 0 {
		return nil
	}
	res := &RevisionResult{Ops: len(rs)}
	found := func(kind string, rev int64, o *op, format string, args ...any) {
		res.add(kind, rev, o, fmt.Sprintf(format, args...))
	}
	// every write's revision once
	byRev := make(map[int64]*op, len(rs)/2)
	for _, r := range rs {
		if !r.write {
			continue
		}
		res.Writes++
		if other, ok := byRev[r.o.rev]; ok {
			found(KSDuplicateRevision, r.o.rev, r.o, "%s and %s both made revision %d", describeKeyed(other), describeKeyed(r.o), r.o.rev)
			continue
		}
		byRev[r.o.rev] = r.o
	}
	// the highest revision of the operations ended by each time: a sweep over the
	// operations by end, against each by its start
	ended := slices.Clone(rs)
	slices.SortFunc(ended, func(a, b revisioned) int { return cmp.Compare(a.o.done, b.o.done) })
	highest := make([]*op, len(ended)) // highest[i]: the highest revision among ended[:i+1]
	for i, r := range ended {
		highest[i] = r.o
		if i > 0 && highest[i-1].rev >= r.o.rev { // on a tie the first: the write that made it, if one did
			highest[i] = highest[i-1]
		}
	}
	for _, r := range rs {
		// the operations that ended before r began
		n, _ := slices.BinarySearchFunc(ended, r.o.call, func(e revisioned, call int64) int {
			if e.o.done < call {
				return -1
			}
			return 1
		})
		if n == 0 {
			continue
		}
		before := highest[n-1]
		switch {
		case r.o.rev < before.rev:
			found(KSRevisionOrder, r.o.rev, r.o, "%s answered at revision %d, but %s had answered at revision %d before it began",
				describeKeyed(r.o), r.o.rev, describeKeyed(before), before.rev)
		case r.write && r.o.rev == before.rev:
			found(KSRevisionOrder, r.o.rev, r.o, "%s made revision %d, but %s had answered at revision %d before it began: a write makes a later one",
				describeKeyed(r.o), r.o.rev, describeKeyed(before), before.rev)
		}
	}
	res.Verdict = Valid
	if len(res.AnomalyTypes) > 0 {
		res.Verdict = Invalid
	}
	return res
}
