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

// revPoint is an acknowledged answer and the revision it was made at; write says that
// it made that revision.
type revPoint struct {
	o     *op
	rev   int64
	write bool
}

// revisionOrder calls bad for each of pts answered at a revision below the highest one
// answered before it began (a write: at or below it), with the earlier answer that
// first reached that revision: one sort by end, one by start, and a sweep. Operations
// of a history without times are left out.
func revisionOrder(pts []revPoint, bad func(p, before revPoint)) {
	byDone := slices.Clone(pts)
	slices.SortStableFunc(byDone, func(a, b revPoint) int { return cmp.Compare(a.o.done, b.o.done) })
	byCall := slices.Clone(pts)
	slices.SortStableFunc(byCall, func(a, b revPoint) int { return cmp.Compare(a.o.call, b.o.call) })
	j := 0
	var seen revPoint // of the ended, the first to reach the highest revision
	for _, p := range byCall {
		for ; j < len(byDone) && byDone[j].o.done < p.o.call; j++ {
			if byDone[j].rev > seen.rev {
				seen = byDone[j]
			}
		}
		if seen.o == nil || p.o.untimed {
			continue
		}
		if p.rev < seen.rev || p.write && p.rev == seen.rev {
			bad(p, seen)
		}
	}
}

// checkRevisions is the revision check of ops (nil when none carries a revision).
func checkRevisions(ops []op) *RevisionResult {
	var pts []revPoint
	for i := range ops {
		o := &ops[i]
		if o.status == history.OK && o.rev > 0 && o.guessed == "" {
			pts = append(pts, revPoint{o: o, rev: o.rev, write: o.f != history.OpRead})
		}
	}
	if len(pts) == 0 {
		return nil
	}
	res := &RevisionResult{Ops: len(pts)}
	found := func(kind string, rev int64, o *op, format string, args ...any) {
		res.add(kind, rev, o, fmt.Sprintf(format, args...))
	}
	// every write's revision once
	byRev := make(map[int64]*op, len(pts)/2)
	for _, p := range pts {
		if !p.write {
			continue
		}
		res.Writes++
		if other, ok := byRev[p.rev]; ok {
			found(KSDuplicateRevision, p.rev, p.o, "%s and %s both made revision %d", describeKeyed(other), describeKeyed(p.o), p.rev)
			continue
		}
		byRev[p.rev] = p.o
	}
	revisionOrder(pts, func(p, before revPoint) {
		if p.rev < before.rev {
			found(KSRevisionOrder, p.rev, p.o, "%s answered at revision %d, but %s had answered at revision %d before it began",
				describeKeyed(p.o), p.rev, describeKeyed(before.o), before.rev)
			return
		}
		found(KSRevisionOrder, p.rev, p.o, "%s made revision %d, but %s had answered at revision %d before it began: a write makes a later one",
			describeKeyed(p.o), p.rev, describeKeyed(before.o), before.rev)
	})
	res.Verdict = Valid
	if len(res.AnomalyTypes) > 0 {
		res.Verdict = Invalid
	}
	return res
}
