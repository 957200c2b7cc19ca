package etcd

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/harness/sut"
)

// The end-of-run check that every member holds the same key-value history:
// sut.Consistency, with etcd's HashKV.

var _ sut.Consistency = (*Target)(nil)

// ConsistencyName is the name of Consistent's result.
const ConsistencyName = "etcd-hashkv"

// applyWait bounds how long Consistent waits for every member to apply the leader's
// revision.
const applyWait = 30 * time.Second

// hashResult is one member's HashKV answer at a revision.
type hashResult struct {
	hash       uint32
	compactRev int64
	err        error // it did not answer
}

// Consistent implements sut.Consistency, on the healed cluster after the final
// reads: it takes the leader's current revision R, waits (up to 30 s, within ctx) until
// every member has applied R, then asks each member, at its own endpoint, for HashKV(R):
// the hash of its key-value history up to R. All hashes must agree (compareHashes). A
// member that does not answer, or does not reach R, makes the result unknown (Valid
// nil), never a pass; so do members whose histories start at different compaction
// revisions (their hashes cover different ranges), if that persists over a few tries.
func (t *Target) Consistent(ctx context.Context) sut.ConsistencyResult {
	unknown := func(format string, args ...any) sut.ConsistencyResult {
		return sut.ConsistencyResult{Name: ConsistencyName, Detail: fmt.Sprintf(format, args...)}
	}
	l, err := t.Leader(ctx)
	if err != nil || l == "" {
		return unknown("no leader to take the revision from (%v)", err)
	}
	st, err := t.status(ctx, l, 2*time.Second)
	if err != nil {
		return unknown("the leader's revision: %v", err)
	}
	rev := st.revision
	wctx, cancel := context.WithTimeout(ctx, applyWait)
	defer cancel()
	err = sut.Poll(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		var behind []string
		sts, errs := t.statuses(ctx, time.Second)
		for _, n := range t.names {
			if s, ok := sts[n]; ok && s.revision < rev {
				behind = append(behind, fmt.Sprintf("%s at %d", n, s.revision))
			}
		}
		if len(behind) > 0 {
			errs = append(errs, fmt.Errorf("not at revision %d yet: %s", rev, strings.Join(behind, ", ")))
		}
		return errors.Join(errs...)
	})
	if err != nil {
		sts, _ := t.statuses(ctx, time.Second)
		if d := revisionsDiverged(rev, st.applied, sts); d != "" {
			f := false
			return sut.ConsistencyResult{Name: ConsistencyName, Valid: &f, Detail: d}
		}
		return unknown("not every member applied revision %d: %v", rev, err)
	}
	var res sut.ConsistencyResult
	for try := 0; try < 5; try++ {
		var again bool
		if res, again = compareHashes(rev, t.hashes(ctx, rev)); !again {
			return res
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(time.Second):
		}
	}
	return res
}

// revisionsDiverged names the members that have applied every raft entry the leader
// had applied when it was at revision rev (raft index applied), and yet are short of
// rev: a revision follows from the entries applied, so such a member applied them
// differently (etcd#14685: entries applied twice after a crash in a defragmentation).
// "" when there is none, or when the release reports no applied index (0). Read on the
// quiescent cluster (the workload has stopped), where a status's revision and applied index
// are one state.
func revisionsDiverged(rev int64, applied uint64, sts map[string]status) string {
	if applied == 0 {
		return ""
	}
	var out []string
	for _, n := range slices.Sorted(maps.Keys(sts)) {
		if s := sts[n]; s.applied >= applied && s.revision < rev {
			out = append(out, fmt.Sprintf("%s applied raft index %d and is at revision %d", n, s.applied, s.revision))
		}
	}
	if len(out) == 0 {
		return ""
	}
	return fmt.Sprintf("members' revisions diverged: the leader was at revision %d at raft index %d; %s", rev, applied, strings.Join(out, "; "))
}

// hashes asks every member for HashKV(rev) at its own endpoint, all at once.
func (t *Target) hashes(ctx context.Context, rev int64) map[string]hashResult {
	type answer struct {
		node string
		r    hashResult
	}
	ch := make(chan answer, len(t.names))
	for _, n := range t.names {
		go func() {
			ch <- answer{n, t.hashOf(ctx, n, rev)}
		}()
	}
	out := map[string]hashResult{}
	for range t.names {
		a := <-ch
		out[a.node] = a.r
	}
	return out
}

func (t *Target) hashOf(ctx context.Context, node string, rev int64) hashResult {
	c, err := t.admin(node)
	if err != nil {
		return hashResult{err: err}
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, err := c.HashKV(hctx, t.clientAddr(node), rev)
	if err != nil {
		return hashResult{err: err}
	}
	return hashResult{hash: r.Hash, compactRev: r.CompactRevision}
}

// compareHashes is Consistent's verdict on the members' HashKV answers at revision rev:
// unknown (Valid nil) if any member gave none, or if their compaction revisions differ
// (the hashes then cover different histories, so a difference proves nothing); else
// valid if all hashes are equal, invalid if not, the detail naming the members, their
// hashes and the revision. compactsDiffer says the result is unknown for the
// compaction revisions (worth asking again: a member may still be compacting).
func compareHashes(rev int64, rs map[string]hashResult) (res sut.ConsistencyResult, compactsDiffer bool) {
	res = sut.ConsistencyResult{Name: ConsistencyName}
	nodes := make([]string, 0, len(rs))
	for n := range rs {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	if len(nodes) == 0 {
		res.Detail = "no member to compare"
		return res, false
	}
	var failed []string
	for _, n := range nodes {
		if err := rs[n].err; err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", n, err))
		}
	}
	if len(failed) > 0 {
		res.Detail = fmt.Sprintf("HashKV at revision %d: no answer from %s", rev, strings.Join(failed, "; "))
		return res, false
	}
	group := func(key func(hashResult) string) (map[string][]string, []string) {
		g := map[string][]string{}
		for _, n := range nodes {
			k := key(rs[n])
			g[k] = append(g[k], n)
		}
		var parts []string
		for k, ns := range g {
			parts = append(parts, strings.Join(ns, ", ")+" "+k)
		}
		slices.Sort(parts)
		return g, parts
	}
	if g, parts := group(func(r hashResult) string { return compacted(r.compactRev) }); len(g) > 1 {
		res.Detail = fmt.Sprintf("HashKV at revision %d: members compacted at different revisions, "+
			"so their hashes cover different histories: %s", rev, strings.Join(parts, "; "))
		return res, true
	}
	g, parts := group(func(r hashResult) string { return fmt.Sprintf("hash 0x%08x", r.hash) })
	ok := len(g) == 1
	res.Valid = &ok
	first := rs[nodes[0]]
	if ok {
		res.Detail = fmt.Sprintf("all %d members hash 0x%08x at revision %d (%s)",
			len(nodes), first.hash, rev, compacted(first.compactRev))
	} else {
		res.Detail = fmt.Sprintf("members' key-value histories differ at revision %d (%s): %s",
			rev, compacted(first.compactRev), strings.Join(parts, "; "))
	}
	return res, false
}

// compacted says where a member's history starts (etcd 3.6+ reports -1, older releases
// 0, for a store never compacted).
func compacted(rev int64) string {
	if rev < 1 {
		return "never compacted"
	}
	return fmt.Sprintf("compacted at %d", rev)
}
