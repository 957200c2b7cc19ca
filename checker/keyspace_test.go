package checker

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// ksHistory builds keyspace histories by hand: each operation an invoke and its
// completion, times in milliseconds.
type ksHistory struct{ events []history.Event }

func (h *ksHistory) op(p, from, to int, f, key string, in history.Value, typ history.Type, out history.Value, err string) {
	h.events = append(h.events,
		history.Event{Index: int64(len(h.events)), Time: int64(from) * 1e6, Process: p, Type: history.Invoke, F: f, Key: key, Value: in},
		history.Event{Index: int64(len(h.events) + 1), Time: int64(to) * 1e6, Process: p, Type: typ, F: f, Key: key, Value: out, Error: err})
}

func rv(n int) string { return strconv.Itoa(n) }

// nemesisCompact is the maintenance fault compacting to rev: its start at from, the
// compaction noted (f: history.NemesisCompact or NemesisCompactAsked) at to.
func (h *ksHistory) nemesisCompact(from, to int, f string, rev int) {
	h.events = append(h.events,
		history.Event{Index: int64(len(h.events)), Time: int64(from) * 1e6, Process: history.NemesisProcess, Type: history.Invoke, F: "start-maintenance"},
		history.Event{Index: int64(len(h.events) + 1), Time: int64(to) * 1e6, Process: history.NemesisProcess, Type: history.Info, F: f, Value: history.S1(rv(rev))})
}

// create: ok at rev, or a conflict that found mod.
func (h *ksHistory) create(p, from, to int, key, value string, rev int) {
	h.op(p, from, to, history.OpCreate, key, history.S1(value), history.OK, history.S1(rv(rev)), "")
}
func (h *ksHistory) update(p, from, to int, key, value string, expect, rev int) {
	h.op(p, from, to, history.OpUpdate, key, history.L(value, rv(expect)), history.OK, history.S1(rv(rev)), "")
}
func (h *ksHistory) del(p, from, to int, key string, expect, rev int) {
	h.op(p, from, to, history.OpDelete, key, history.S1(rv(expect)), history.OK, history.S1(rv(rev)), "")
}

// get: [header, mod, value], or absent when mod is 0.
func (h *ksHistory) get(p, from, to int, key string, header, mod int, value string) {
	out := history.L(rv(header), rv(mod), value)
	if mod == 0 {
		out = history.L(rv(header), "0")
	}
	h.op(p, from, to, history.OpGet, key, history.Value{}, history.OK, out, "")
}

// list: kvs as key, mod, value triples.
func (h *ksHistory) list(p, from, to int, prefix string, at int, start string, limit, header int, more bool, kvs ...string) {
	m := "0"
	if more {
		m = "1"
	}
	h.op(p, from, to, history.OpList, prefix, history.L(rv(at), start, rv(limit)), history.OK, history.L(append([]string{rv(header), m}, kvs...)...), "")
}

// watch: events as revision, type, key, value, previous value (five strings each).
func (h *ksHistory) watch(p, from, to int, prefix string, fromRev int, events ...string) {
	h.op(p, from, to, history.OpWatch, prefix, history.S1(rv(fromRev)), history.OK, history.L(events...), "")
}

// cancelledWatch is a watch the server cancelled for compaction: its events, then the
// cancel at compact revision compactRev.
func (h *ksHistory) cancelledWatch(p, from, to int, prefix string, fromRev, compactRev int, events ...string) {
	events = append(events, rv(compactRev), history.WatchCompacted, "", "", "")
	h.op(p, from, to, history.OpWatch, prefix, history.S1(rv(fromRev)), history.Fail, history.L(events...), history.Compacted)
}

func checkKS(t *testing.T, h *ksHistory) Result {
	t.Helper()
	res := Check(context.Background(), h.events, Options{Model: Keyspace, MinEvidence: 1})
	require.NotNil(t, res.Keyspace, res.Summary())
	return res
}

// A cancel for compaction anywhere but last in a watch cancelled for compaction is a
// history this checker cannot read: the watch is ignored, with a note saying why.
func TestKeyspaceCheckRefusesMisplacedCancel(t *testing.T) {
	h := &ksHistory{}
	h.create(0, 0, 10, "/p/a", "a1", 2)
	h.get(1, 20, 30, "/p/a", 2, 2, "a1")
	h.watch(3, 5, 80, "/p/", 2, "2", history.WatchCompacted, "", "", "", "2", "put", "/p/a", "a1", "")
	h.cancelledWatch(4, 5, 80, "/p/", 2, 2, "2", history.WatchCompacted, "", "", "")
	res := checkKS(t, h)
	assert.Equal(t, 2, res.Keyspace.Ignored)
	assert.Contains(t, strings.Join(res.Notes, "\n"), "not the last event of a watch cancelled for compaction")
}

// A watch that begins from a revision already acknowledged replays history: resumed; one
// from the future, or begun before any write was acknowledged, is not.
func TestWatchesResumedAreCounted(t *testing.T) {
	h := &ksHistory{}
	h.create(0, 0, 10, "/p/a", "a1", 2)
	h.update(0, 20, 30, "/p/a", "a2", 2, 3)
	h.get(1, 40, 50, "/p/a", 3, 3, "a2")
	h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "3", "put", "/p/a", "a2", "a1") // began before any acknowledgement
	h.watch(3, 35, 80, "/p/", 3, "3", "put", "/p/a", "a2", "a1")                              // from revision 3, acknowledged at 30: resumed
	h.watch(4, 35, 80, "/p/", 4, "3", "progress", "", "", "")                                 // from the next revision
	res := checkKS(t, h)
	require.NotNil(t, res.Watch)
	assert.Equal(t, Valid, res.Verdict, "%s\n%v", res.Summary(), res.Explanations())
	assert.Equal(t, 3, res.Watch.Watches)
	assert.Equal(t, 1, res.Watch.Resumed)
	assert.Contains(t, res.Watch.Line(), "1 resumed from a past revision")
}

func TestKeyspaceCheck(t *testing.T) {
	for _, tc := range []struct {
		name    string
		build   func(h *ksHistory)
		anomaly string // "" for valid
		rev     int64  // the first bad revision
		explain string // a piece of the first explanation
	}{
		{name: "creates, updates, deletes, gets and lists in revision order are valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.create(1, 20, 30, "/p/b", "b1", 3)
			h.update(0, 40, 50, "/p/a", "a2", 2, 4)
			h.get(1, 60, 70, "/p/a", 4, 4, "a2")
			h.list(2, 60, 70, "/p/", 0, "/p/", 1, 4, true, "/p/a", "4", "a2")
			h.list(2, 80, 90, "/p/", 4, "/p/a\x00", 1, 4, false, "/p/b", "3", "b1")
			h.del(0, 100, 110, "/p/b", 3, 5)
			h.get(1, 120, 130, "/p/b", 5, 0, "")
			h.list(2, 120, 130, "/p/", 3, "", 0, 5, false, "/p/a", "2", "a1", "/p/b", "3", "b1") // an old revision
		}},
		{name: "a conflict that found another mod revision is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.op(1, 40, 50, history.OpUpdate, "/p/a", history.L("a3", "2"), history.Fail, history.S1("3"), history.Conflict)
			h.get(1, 60, 70, "/p/a", 3, 3, "a2")
		}},
		{name: "an indeterminate write a read saw is placed at its mod revision", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.op(0, 20, 30, history.OpUpdate, "/p/a", history.L("a2", "2"), history.Info, history.Value{}, "timeout")
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
			h.update(1, 60, 70, "/p/a", "a3", 3, 4)
		}},
		{name: "an indeterminate delete no read saw explains an absence", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.op(0, 20, 30, history.OpDelete, "/p/a", history.S1("2"), history.Info, history.Value{}, "timeout")
			h.get(1, 40, 50, "/p/a", 3, 0, "")
			h.create(1, 60, 70, "/p/a", "a2", 4)
		}},
		{name: "an update that found a mod revision no longer the key's is a lost update", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.update(1, 40, 50, "/p/a", "a3", 2, 4) // expected 2, the key was at 3
			h.get(1, 60, 70, "/p/a", 4, 4, "a3")
		}, anomaly: KSLostUpdate, rev: 4, explain: `expecting mod revision 2 happened at revision 4, but the key was then "a2" at revision 3`},
		{name: "a create of a key that is there is a lost update", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.create(1, 20, 30, "/p/a", "a2", 3)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
		}, anomaly: KSLostUpdate, rev: 3, explain: `but the key was there: "a1" at revision 2`},
		{name: "a get that misses a write at or below its revision is stale", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 3, 2, "a1")
		}, anomaly: KSStaleRead, rev: 2, explain: `read /p/a at revision 3 as "a1" (mod revision 2), but it was "a2" at revision 3`},
		{name: "a read whose revision is below one seen before it began goes back in time", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 2, 2, "a1") // consistent with revision 2, but 3 was acknowledged at 30
		}, anomaly: KSRevisionOrder, rev: 2, explain: "answered at revision 2, but it began after"},
		{name: "two writes at one revision", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.create(1, 0, 10, "/p/b", "b1", 2)
			h.get(1, 40, 50, "/p/a", 2, 2, "a1")
		}, anomaly: KSDuplicateRevision, rev: 2},
		{name: "a value no write wrote", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.get(1, 40, 50, "/p/a", 2, 2, "zz")
		}, anomaly: KSGarbageRead, rev: 2, explain: `a value no write gave that key`},
		{name: "a value whose write failed", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.op(0, 20, 30, history.OpUpdate, "/p/a", history.L("a2", "1"), history.Fail, history.S1("2"), history.Conflict)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
		}, anomaly: KSAbortedRead, rev: 3},
		{name: "a conflict that found the expected revision", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.op(0, 20, 30, history.OpUpdate, "/p/a", history.L("a2", "2"), history.Fail, history.S1("2"), history.Conflict)
			h.get(1, 40, 50, "/p/a", 2, 2, "a1")
		}, anomaly: KSFalseConflict, rev: 2},
		{name: "a list page that leaves out a key of its range", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.create(0, 20, 30, "/p/b", "b1", 3)
			h.create(0, 40, 50, "/p/c", "c1", 4)
			h.list(1, 60, 70, "/p/", 0, "/p/", 10, 4, false, "/p/a", "2", "a1", "/p/c", "4", "c1")
		}, anomaly: KSIncompleteList, rev: 3, explain: `left out /p/b, which was "b1" at revision 3`},
		{name: "a list page over its limit", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.create(0, 20, 30, "/p/b", "b1", 3)
			h.list(1, 60, 70, "/p/", 0, "/p/", 1, 3, true, "/p/a", "2", "a1", "/p/b", "3", "b1")
		}, anomaly: KSIncompleteList, explain: "over its limit of 1"},
		{name: "a read of a compacted revision that returned data", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.op(2, 40, 50, history.OpCompact, "", history.S1("3"), history.OK, history.Value{}, "")
			h.list(1, 60, 70, "/p/", 2, "", 0, 3, false, "/p/a", "2", "a1")
		}, anomaly: KSCompactedRead, rev: 2, explain: "had compacted to revision 3 before it began"},
		{name: "a watch that delivers every write in order, with previous values and progress, is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.create(1, 20, 30, "/q/x", "x1", 4) // another prefix
			h.del(0, 40, 50, "/p/a", 3, 5)
			h.get(1, 60, 70, "/p/a", 5, 0, "")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "3", "put", "/p/a", "a2", "a1",
				"5", "delete", "/p/a", "", "a2", "5", "progress", "", "", "")
		}},
		{name: "a watch event without the previous value of a compacted revision is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.op(2, 40, 50, history.OpCompact, "", history.S1("3"), history.OK, history.Value{}, "")
			h.get(1, 60, 70, "/p/a", 3, 3, "a2")
			h.watch(2, 45, 80, "/p/", 3, "3", "put", "/p/a", "a2", "") // etcd: prev_kv of a compacted revision is not sent
		}},
		{name: "a watch from the compacted revision without the delete made there is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.del(0, 20, 30, "/p/a", 2, 3)
			h.create(0, 20, 30, "/p/b", "b1", 4)
			h.op(2, 40, 50, history.OpCompact, "", history.S1("3"), history.OK, history.Value{}, "")
			h.get(1, 60, 70, "/p/b", 4, 4, "b1")
			h.watch(2, 55, 80, "/p/", 3, "4", "put", "/p/b", "b1", "") // etcd dropped the tombstone at 3
		}},
		{name: "a watch that began before the compaction must deliver the delete", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.del(0, 20, 30, "/p/a", 2, 3)
			h.create(0, 20, 30, "/p/b", "b1", 4)
			h.op(2, 40, 50, history.OpCompact, "", history.S1("3"), history.OK, history.Value{}, "")
			h.get(1, 60, 70, "/p/b", 4, 4, "b1")
			h.watch(2, 35, 80, "/p/", 3, "4", "put", "/p/b", "b1", "")
		}, anomaly: KSWatchLost, rev: 3},
		{name: "a watch that goes back in revision (etcd#15271)", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "3", "put", "/p/a", "a2", "a1", "2", "put", "/p/a", "a1", "")
		}, anomaly: KSWatchOrder, rev: 2, explain: "delivered revision 2 (put /p/a) after revision 3: it went back in time"},
		{name: "a watch cancelled for a compaction it had passed is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.update(0, 40, 50, "/p/a", "a3", 3, 4)
			h.op(2, 60, 70, history.OpCompact, "", history.S1("4"), history.OK, history.Value{}, "")
			h.get(1, 80, 90, "/p/a", 4, 4, "a3")
			h.cancelledWatch(3, 5, 80, "/p/", 2, 4, "2", "put", "/p/a", "a1", "")
		}},
		{name: "a watch cancelled for a compaction below an event it delivered (etcd#15271)", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.update(0, 40, 50, "/p/a", "a3", 3, 4)
			h.op(2, 60, 70, history.OpCompact, "", history.S1("3"), history.OK, history.Value{}, "")
			h.get(1, 80, 90, "/p/a", 4, 4, "a3")
			h.cancelledWatch(3, 5, 80, "/p/", 2, 3, "2", "put", "/p/a", "a1", "", "3", "put", "/p/a", "a2", "a1", "4", "put", "/p/a", "a3", "a2")
		}, anomaly: KSWatchCompaction, rev: 3, explain: "cancelled as compacted at revision 3 after it had delivered revision 4"},
		{name: "a watch cancelled for the nemesis's compaction, without the previous value it compacted, is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.update(0, 40, 50, "/p/a", "a3", 3, 4)
			h.nemesisCompact(52, 60, history.NemesisCompact, 4)
			h.get(1, 80, 90, "/p/a", 4, 4, "a3")
			h.cancelledWatch(3, 5, 70, "/p/", 2, 4, "2", "put", "/p/a", "a1", "")
			h.watch(4, 55, 80, "/p/", 4, "4", "put", "/p/a", "a3", "") // a2 compacted away
		}},
		{name: "a watch cancelled for a compaction the nemesis only asked for is valid", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.nemesisCompact(32, 60, history.NemesisCompactAsked, 3)
			h.get(1, 80, 90, "/p/a", 3, 3, "a2")
			h.cancelledWatch(3, 5, 40, "/p/", 2, 3, "2", "put", "/p/a", "a1", "") // cancelled before the note: asked since the fault began
		}},
		{name: "a read below the nemesis's acknowledged compaction that returned data", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.nemesisCompact(32, 40, history.NemesisCompact, 3)
			h.list(1, 60, 70, "/p/", 2, "", 0, 3, false, "/p/a", "2", "a1")
		}, anomaly: KSCompactedRead, rev: 2},
		{name: "a watch cancelled for a compaction nobody asked", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 80, 90, "/p/a", 3, 3, "a2")
			h.cancelledWatch(3, 5, 80, "/p/", 2, 3)
		}, anomaly: KSWatchCompaction, rev: 3, explain: "no compaction to it had been asked"},
		{name: "a watch that skips a write before its last event", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.update(0, 40, 50, "/p/a", "a3", 3, 4)
			h.get(1, 60, 70, "/p/a", 4, 4, "a3")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "4", "put", "/p/a", "a3", "a2")
		}, anomaly: KSWatchLost, rev: 3, explain: `never delivered /p/a "a2" at revision 3`},
		{name: "a progress notification past an undelivered write (etcd#15220)", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.get(1, 60, 70, "/p/a", 2, 2, "a1")
			h.watch(2, 5, 80, "/p/", 2, "2", "progress", "", "", "")
		}, anomaly: KSWatchProgress, rev: 2, explain: "a progress notification at revision 2 claimed /p/a"},
		{name: "an event at or below a progress notification's revision (etcd#15220)", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "3", "progress", "", "", "", "3", "put", "/p/a", "a2", "a1")
		}, anomaly: KSWatchProgress, rev: 3, explain: "after a progress notification at revision 3"},
		{name: "a progress notification behind an event already delivered", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "3", "put", "/p/a", "a2", "a1", "2", "progress", "", "", "")
		}, anomaly: KSWatchProgress, rev: 2, explain: "behind revision 3"},
		{name: "a watch that delivers one event twice", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.get(1, 60, 70, "/p/a", 2, 2, "a1")
			h.watch(2, 5, 80, "/p/", 2, "2", "put", "/p/a", "a1", "", "2", "put", "/p/a", "a1", "")
		}, anomaly: KSWatchDuplicate, rev: 2},
		{name: "a watch event with the wrong previous value", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 60, 70, "/p/a", 3, 3, "a2")
			h.watch(2, 5, 80, "/p/", 3, "3", "put", "/p/a", "a2", "zz")
		}, anomaly: KSWatchPrevKV, rev: 3, explain: `with previous value "zz", but it was "a1"`},
		{name: "a read refused as compacted with no compaction asked", build: func(h *ksHistory) {
			h.create(0, 0, 10, "/p/a", "a1", 2)
			h.update(0, 20, 30, "/p/a", "a2", 2, 3)
			h.get(1, 40, 50, "/p/a", 3, 3, "a2")
			h.op(1, 60, 70, history.OpList, "/p/", history.L("2", "", "0"), history.Fail, history.Value{}, history.Compacted)
		}, anomaly: KSFalseCompaction, rev: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &ksHistory{}
			tc.build(h)
			res := checkKS(t, h)
			// the keyspace's anomalies, or the watches' when the test is about one
			anomalies, types, first, line := res.Keyspace.Anomalies, res.Keyspace.AnomalyTypes, res.Keyspace.FirstBad, res.Keyspace.Line()
			if w := res.Watch; w != nil && strings.HasPrefix(tc.anomaly, "watch-") {
				anomalies, types, first, line = w.Anomalies, w.AnomalyTypes, w.FirstBad, w.Line()
			}
			if tc.anomaly == "" {
				assert.Equal(t, Valid, res.Verdict, "%s\n%v", line, res.Explanations())
				assert.Empty(t, res.Explanations())
				assert.Empty(t, res.AnomalyKinds())
				return
			}
			assert.Equal(t, Invalid, res.Verdict, line)
			assert.Contains(t, res.AnomalyKinds(), tc.anomaly)
			_, blamed := res.FirstViolation(h.events)
			assert.True(t, blamed, "an operation is blamed: the campaign's first anomaly")
			assert.Contains(t, AnomalyKindNames(), tc.anomaly, "every kind found is one a campaign can name")
			require.NotEmpty(t, anomalies, line)
			assert.Contains(t, types, tc.anomaly, "%v", anomalies)
			if tc.rev > 0 {
				assert.Equal(t, tc.rev, first, "%v", anomalies)
			}
			if tc.explain != "" {
				assert.True(t, strings.Contains(strings.Join(anomalies, "\n"), tc.explain), "%v", anomalies)
			}
		})
	}
}

// ksSim is a correct keyspace store with revisions and compaction, driven by processes
// whose operations overlap in time and take effect in the order of the steps: its
// histories must all be valid.
type ksSim struct {
	rng      *rand.Rand
	h        ksHistory
	rev      int64
	compact  int64
	keys     map[string]ksVal // the latest
	past     []map[string]ksVal
	now      int
	free     []int // per process, when it may invoke again
	nextVal  int
	lastList map[int][2]string // per process, a list in progress: its header and next key
}

type ksVal struct {
	value    string
	mod      int64
	creation int64
}

func (s *ksSim) snapshot() {
	m := make(map[string]ksVal, len(s.keys))
	for k, v := range s.keys {
		m[k] = v
	}
	for int64(len(s.past)) <= s.rev {
		s.past = append(s.past, nil)
	}
	s.past[s.rev] = m
}

func (s *ksSim) stateAt(rev int64) map[string]ksVal {
	for r := rev; r >= 0; r-- {
		if r < int64(len(s.past)) && s.past[r] != nil {
			return s.past[r]
		}
	}
	return map[string]ksVal{}
}

// step runs one operation of process p, taking effect now.
func (s *ksSim) step(p int) {
	if s.free[p] > s.now { // still busy with its last operation
		s.now++
		return
	}
	from := max(s.free[p], s.now-1-s.rng.IntN(3))
	to := s.now + 1 + s.rng.IntN(3)
	s.free[p] = to + 1
	defer func() { s.now++ }()
	keys := []string{"/p/a", "/p/b", "/p/c", "/q/a", "/q/b"}
	key := keys[s.rng.IntN(len(keys))]
	lost := s.rng.IntN(10) == 0 // the answer of a write is lost: info, applied or not
	write := func(f string, in history.Value, ok bool, apply func()) {
		if lost {
			if s.rng.IntN(2) == 0 && ok {
				apply()
			}
			s.h.op(p, from, to, f, key, in, history.Info, history.Value{}, "timeout")
			return
		}
		if !ok {
			s.h.op(p, from, to, f, key, in, history.Fail, history.S1(rv(int(s.keys[key].mod))), history.Conflict)
			return
		}
		apply()
		s.h.op(p, from, to, f, key, in, history.OK, history.S1(rv(int(s.rev))), "")
	}
	cur, present := s.keys[key]
	switch n := s.rng.IntN(20); {
	case n < 4:
		s.nextVal++
		v := "v" + rv(s.nextVal)
		write(history.OpCreate, history.S1(v), !present, func() {
			s.rev++
			s.keys[key] = ksVal{v, s.rev, s.rev}
			s.snapshot()
		})
	case n < 9:
		s.nextVal++
		v := "v" + rv(s.nextVal)
		expect := cur.mod
		if s.rng.IntN(5) == 0 && expect > 1 {
			expect-- // stale: a conflict, or (absent) a miss
		}
		write(history.OpUpdate, history.L(v, rv(int(expect))), expect == cur.mod, func() { // absent: mod revision 0
			s.rev++
			s.keys[key] = ksVal{v, s.rev, cur.creation}
			s.snapshot()
		})
	case n < 11 && present:
		expect := cur.mod
		if s.rng.IntN(5) == 0 {
			expect-- // stale: a conflict
		}
		write(history.OpDelete, history.S1(rv(int(expect))), expect == cur.mod, func() {
			s.rev++
			delete(s.keys, key)
			s.snapshot()
		})
	case n < 14:
		if v, ok := s.keys[key]; ok {
			s.h.get(p, from, to, key, int(s.rev), int(v.mod), v.value)
		} else {
			s.h.get(p, from, to, key, int(s.rev), 0, "")
		}
	case n < 19:
		prefix := key[:3]
		at, start := int64(0), prefix
		if l, ok := s.lastList[p]; ok && l[1] != "" {
			a, _ := strconv.ParseInt(l[0], 10, 64)
			at, start, prefix = a, l[1], l[1][:3]
		}
		delete(s.lastList, p)
		view := s.rev
		if at > 0 {
			view = at
		}
		if at > 0 && at < s.compact {
			s.h.op(p, from, to, history.OpList, prefix, history.L(rv(int(at)), start, "2"), history.Fail, history.Value{}, history.Compacted)
			return
		}
		st := s.stateAt(view)
		var names []string
		for k := range st {
			if strings.HasPrefix(k, prefix) && k >= start {
				names = append(names, k)
			}
		}
		slices.Sort(names)
		more := len(names) > 2
		names = names[:min(len(names), 2)]
		var kvs []string
		for _, k := range names {
			kvs = append(kvs, k, rv(int(st[k].mod)), st[k].value)
		}
		s.h.list(p, from, to, prefix, int(at), start, 2, int(s.rev), more, kvs...)
		if more {
			s.lastList[p] = [2]string{rv(int(view)), names[len(names)-1] + "\x00"}
		}
	default:
		c := max(s.rev-int64(s.rng.IntN(4)), 1)
		if c <= s.compact {
			s.h.op(p, from, to, history.OpCompact, "", history.S1(rv(int(c))), history.Fail, history.Value{}, history.Compacted)
			return
		}
		s.compact = c
		s.h.op(p, from, to, history.OpCompact, "", history.S1(rv(int(c))), history.OK, history.Value{}, "")
	}
}

// TestKeyspaceCorrectStorePasses: histories of a correct store, with lost answers,
// conflicts, paginated lists at old revisions and compactions, are valid, seed after
// seed; and one stale read slipped into each is caught.
func TestKeyspaceCorrectStorePasses(t *testing.T) {
	for seed := range uint64(300) {
		s := &ksSim{rng: rand.New(rand.NewPCG(seed, 11)), rev: 1, keys: map[string]ksVal{}, free: make([]int, 4), lastList: map[int][2]string{}}
		s.snapshot()
		for range 300 {
			s.step(s.rng.IntN(4))
		}
		res := Check(context.Background(), s.h.events, Options{Model: Keyspace, MinEvidence: 1})
		require.Equal(t, Valid, res.Verdict, "seed %d: %s\n%v\n%v\n%v", seed, res.Keyspace.Line(), res.Keyspace.Anomalies, res.UnknownBecause, res.Notes)

		// a get that read an older version of a key rewritten since
		for i := len(s.h.events) - 1; i > 0; i-- {
			e := &s.h.events[i]
			if e.F != history.OpGet || e.Type != history.OK || len(e.Value.L) != 3 {
				continue
			}
			vs := s.versionsOf(e.Key, e.Value.L[1])
			if vs == nil || !s.acked(e.Value.L[2]) {
				continue // no older version, or one an unacknowledged write replaced: no proof
			}
			events := slices.Clone(s.h.events)
			events[i].Value = history.L(e.Value.L[0], rv(int(vs.mod)), vs.value)
			bad := Check(context.Background(), events, Options{Model: Keyspace, MinEvidence: 1})
			require.Equal(t, Invalid, bad.Verdict, "seed %d: a stale get passed: %s", seed, bad.Keyspace.Line())
			break
		}
	}
}

// acked says whether the write of value v was acknowledged.
func (s *ksSim) acked(v string) bool {
	for i := 0; i+1 < len(s.h.events); i += 2 {
		in := s.h.events[i].Value
		if in.Kind == history.Str && in.S == v || in.Kind == history.List && len(in.L) == 2 && in.L[0] == v {
			return s.h.events[i+1].Type == history.OK
		}
	}
	return false
}

// versionsOf returns a version of key older than the one at mod revision mod (nil:
// none).
func (s *ksSim) versionsOf(key, mod string) *ksVal {
	m, _ := strconv.ParseInt(mod, 10, 64)
	for r := m - 1; r > 0; r-- {
		if v, ok := s.stateAt(r)[key]; ok && v.mod < m {
			return &v
		}
	}
	return nil
}

// TestKeyspaceSimulatedStore: checker/sim's keyspace histories (what the bench checks)
// are valid, at every concurrency the bench uses, with indeterminate writes.
func TestKeyspaceSimulatedStore(t *testing.T) {
	for _, procs := range []int{1, 10, 100} {
		events := simulate(simConfig{Seed: uint64(procs), Ops: 5000, Procs: procs, Info: 0.05, Keys: 8, OpsPerKey: 200, Workload: "keyspace"})
		res := Check(context.Background(), events, Options{Model: Keyspace})
		require.Equal(t, Valid, res.Verdict, "%d clients: %s\n%v", procs, res.Summary(), res.Explanations())
		assert.Greater(t, res.Keyspace.Writes, 1000)
	}
}
