package checker

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// txnHistory builds list-append histories by hand: each transaction an invoke and its
// completion, times in milliseconds.
type txnHistory struct{ events []history.Event }

func ap(k, v string) history.Mop { return history.Mop{F: history.MopAppend, Key: k, V: history.S1(v)} }
func rd(k string, l ...string) history.Mop {
	return history.Mop{F: history.MopRead, Key: k, V: history.L(l...)}
}

// txn records process p's transaction from `from` to `to` ms, ending as typ; the
// completion carries mops, the invoke the same with nothing read.
func (h *txnHistory) txn(p, from, to int, typ history.Type, mops ...history.Mop) {
	in := make([]history.Mop, len(mops))
	for i, m := range mops {
		in[i] = m
		if m.F == history.MopRead {
			in[i].V = history.Value{}
		}
	}
	out := history.T(mops...)
	if typ != history.OK {
		out = history.T(in...)
	}
	h.events = append(h.events,
		history.Event{Index: int64(len(h.events)), Time: int64(from) * 1e6, Process: p, Type: history.Invoke, F: history.OpTxn, Value: history.T(in...)},
		history.Event{Index: int64(len(h.events) + 1), Time: int64(to) * 1e6, Process: p, Type: typ, F: history.OpTxn, Value: out})
}

func checkTxns(t *testing.T, h *txnHistory) Result {
	t.Helper()
	res := Check(context.Background(), h.events, Options{Model: Txn})
	require.NotNil(t, res.Txn, res.Summary())
	return res
}

func TestTxnCheck(t *testing.T) {
	ok := history.OK
	for _, tc := range []struct {
		name    string
		build   func(h *txnHistory)
		anomaly string   // "" for valid
		not     string   // the weakest model ruled out
		explain []string // pieces of the first explanation
	}{
		{name: "serial appends and reads are valid", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x", "1"), ap("x", "2"))
			h.txn(2, 40, 50, ok, rd("x", "1", "2"), rd("y"))
		}},
		{name: "G0: two transactions' appends in opposite orders", anomaly: AnomalyG0, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, ap("x", "1"), ap("y", "1"))
			h.txn(1, 0, 100, ok, ap("x", "2"), ap("y", "2"))
			h.txn(2, 200, 210, ok, rd("x", "1", "2"))
			h.txn(3, 200, 210, ok, rd("y", "2", "1"))
		}, explain: []string{"T1 → T2 (ww on x: T1 appended 1, and T2 appended 2 next)", "T2 → T1 (ww on y: T2 appended 2, and T1 appended 1 next)"}},
		{name: "G1a: an aborted append read", anomaly: AnomalyG1a, not: "read-committed", build: func(h *txnHistory) {
			h.txn(0, 0, 10, history.Fail, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x", "1"))
		}, explain: []string{`read "1", appended by process 0 at 0.000s–0.010s, which failed`}},
		{name: "G1b: an intermediate state read", anomaly: AnomalyG1b, not: "read-committed", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"), ap("x", "2"))
			h.txn(1, 5, 30, ok, rd("x", "1"))
		}, explain: []string{`ending in "1", which process 0`, `before appending "2"`}},
		{name: "G1c: each read the other's write", anomaly: AnomalyG1c, not: "read-committed", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, ap("x", "1"), rd("y", "1"))
			h.txn(1, 0, 100, ok, ap("y", "1"), rd("x", "1"))
		}, explain: []string{"wr on x: T2 read T1's append of 1 last", "wr on y"}},
		{name: "G-single: read skew", anomaly: AnomalyGSingle, not: "snapshot-isolation", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, ap("x", "1"), ap("y", "1"))
			h.txn(1, 0, 100, ok, rd("x"), rd("y", "1"))
			h.txn(2, 200, 210, ok, rd("x", "1"))
		}, explain: []string{"T1 → T2 (rw on x: T1 read [] without 1, which T2 appended next)", "T2 → T1 (wr on y: T1 read T2's append of 1 last)"}},
		{name: "G2-item: write skew", anomaly: AnomalyG2, not: "serializable", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, rd("x"), ap("y", "1"))
			h.txn(1, 0, 100, ok, rd("y"), ap("x", "1"))
			h.txn(2, 200, 210, ok, rd("x", "1"), rd("y", "1"))
		}, explain: []string{"rw on x", "rw on y"}},
		{name: "G2-item through an append no read saw, which can only follow what reads saw", anomaly: AnomalyG2, not: "serializable", build: func(h *txnHistory) {
			// x's order: [2], then 5 (never read). So T1 -ww-> T3 and T4 -rw-> T3 on x;
			// T2 -rw-> T1 on x; T3 -rw-> T2 on y and T3 -rw-> T4 on z; T1 -wr-> T4 on x.
			h.txn(0, 0, 100, ok, ap("x", "2"))
			h.txn(1, 0, 100, ok, ap("y", "1"), rd("x"))
			h.txn(2, 0, 100, ok, rd("z"), rd("y"), ap("x", "5"))
			h.txn(3, 0, 100, ok, ap("z", "2"), rd("x", "2"))
		}, explain: []string{"rw on"}},
		{name: "appends to a key no read saw have no order", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, ap("x", "1"), rd("y"))
			h.txn(1, 0, 100, ok, ap("x", "2"))
		}},
		{name: "G-single-realtime: a stale read", anomaly: AnomalyGSingle + realtimeSuffix, not: "strict-serializable", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x"))
			h.txn(2, 40, 50, ok, rd("x", "1"))
		}, explain: []string{"rw on x: T1 read [] without 1", "T2 → T1 (rt: T2 completed at 0.010s, before T1 began at 0.020s)"}},
		{name: "a garbage read", anomaly: AnomalyGarbage, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x", "1", "9"))
		}, explain: []string{`read "9", which no transaction appended`}},
		{name: "internal: a transaction that misses its own append", anomaly: AnomalyInternal, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"), rd("x"))
		}, explain: []string{"after appending [1] itself"}},
		{name: "internal: a read of the transaction's own later append", anomaly: AnomalyInternal, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, rd("x", "1"), ap("x", "1"))
		}, explain: []string{"which it appended only later"}},
		{name: "G0 beside G-single: the weakest is named (an unread append follows the read ones)", anomaly: AnomalyG0, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 100, ok, ap("x", "1"), ap("y", "1"))
			h.txn(1, 0, 100, ok, ap("x", "2"), ap("y", "2"))
			h.txn(2, 0, 100, ok, ap("x", "3"), ap("y", "3"))
			h.txn(3, 0, 100, ok, rd("x", "1", "2"))
			h.txn(4, 0, 100, ok, rd("y", "2"))
		}},
		{name: "a lost update is G2-item: each read the other's append away", anomaly: AnomalyG2, not: "serializable", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "0"))
			h.txn(1, 20, 100, ok, rd("x", "0"), ap("x", "1"))
			h.txn(2, 20, 100, ok, rd("x", "0"), ap("x", "2"))
		}},
		{name: "one transaction appending twice over its read is valid", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, rd("x"), ap("x", "1"), ap("x", "2"))
			h.txn(1, 20, 30, ok, rd("x", "1", "2"))
		}},
		{name: "duplicate elements", anomaly: AnomalyDuplicate, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x", "1", "1"))
		}, explain: []string{`with "1" twice`}},
		{name: "incompatible orders", anomaly: AnomalyIncompatible, not: "read-uncommitted", build: func(h *txnHistory) {
			h.txn(0, 0, 10, ok, ap("x", "1"))
			h.txn(1, 0, 10, ok, ap("x", "2"))
			h.txn(2, 20, 30, ok, rd("x", "1", "2"))
			h.txn(3, 20, 30, ok, rd("x", "2", "1"))
		}, explain: []string{"neither is a prefix of the other"}},
		{name: "an indeterminate append seen by a read committed", build: func(h *txnHistory) {
			h.txn(0, 0, 10, history.Info, ap("x", "1"))
			h.txn(1, 20, 30, ok, rd("x", "1"), ap("x", "2"))
			h.txn(2, 40, 50, ok, rd("x", "1", "2"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &txnHistory{}
			tc.build(h)
			res := checkTxns(t, h)
			if tc.anomaly == "" {
				assert.Equal(t, Valid, res.Verdict, res.Summary())
				assert.Empty(t, res.Txn.AnomalyTypes)
				return
			}
			require.Equal(t, Invalid, res.Verdict, res.Summary())
			assert.Equal(t, map[string]int{tc.anomaly: 1}, res.Txn.AnomalyTypes, res.Summary())
			assert.Equal(t, []string{tc.anomaly}, res.AnomalyKinds())
			assert.Contains(t, AnomalyKindNames(), tc.anomaly, "every kind found is one a campaign can name")
			require.NotEmpty(t, res.Txn.NotModels)
			assert.Equal(t, tc.not, res.Txn.NotModels[0])
			assert.Equal(t, "strict-serializable", res.Txn.NotModels[len(res.Txn.NotModels)-1])
			require.NotEmpty(t, res.Explanations())
			for _, want := range tc.explain {
				assert.Contains(t, res.Explanations()[0], want)
			}
			t.Log(res.Explanations()[0])
		})
	}
	t.Run("an indeterminate transaction is counted as seen to commit", func(t *testing.T) {
		h := &txnHistory{}
		h.txn(0, 0, 10, history.Info, ap("x", "1"))
		h.txn(1, 20, 30, ok, rd("x", "1"))
		res := checkTxns(t, h)
		assert.Equal(t, 1, res.Txn.Observed)
		assert.Equal(t, 1, res.Txn.Indeterminate)
	})
	t.Run("a transaction of another shape is never valid", func(t *testing.T) {
		h := &txnHistory{}
		h.txn(0, 0, 10, ok, ap("x", "1"))
		h.txn(1, 20, 30, ok, rd("x", "1"))
		h.events[3].Value.T[0].V = history.S1("1") // a read that returned a string
		res := checkTxns(t, h)
		assert.Equal(t, Unknown, res.Verdict)
		assert.Equal(t, 1, res.Txn.Ignored)
	})
	t.Run("a value appended twice is malformed input, named", func(t *testing.T) {
		h := &txnHistory{}
		h.txn(0, 0, 10, ok, ap("x", "1"))
		h.txn(1, 20, 30, ok, ap("x", "1"))
		h.txn(2, 40, 50, ok, rd("x", "1"))
		res := checkTxns(t, h)
		assert.Equal(t, Unknown, res.Verdict)
		assert.Contains(t, res.Notes[0], `appends "1" to key "x", as event 0 did`)
	})
	t.Run("the model is guessed from the transactions", func(t *testing.T) {
		h := &txnHistory{}
		h.txn(0, 0, 10, ok, ap("x", "1"))
		assert.Equal(t, Txn, Check(context.Background(), h.events, Options{}).Model)
	})
}

// TestTxnReadsCheckedOncePerKey: checking what reads saw once per key (readDeps' fast
// path) finds exactly what checking every read one by one finds, on random histories
// full of anomalies: garbage, aborted and future reads, reads that skip, reorder or
// repeat elements, and reads of a transaction's own appends.
func TestTxnReadsCheckedOncePerKey(t *testing.T) {
	for seed := range int64(300) {
		rng := rand.New(rand.NewPCG(uint64(seed), 7))
		h := &txnHistory{}
		lists := map[string][]string{}
		next := 0
		for i := range 40 {
			var mops []history.Mop
			typ := history.OK
			switch rng.IntN(10) {
			case 0:
				typ = history.Fail
			case 1:
				typ = history.Info
			}
			for range 1 + rng.IntN(4) {
				k := []string{"x", "y", "z"}[rng.IntN(3)]
				if rng.IntN(2) == 0 {
					next++
					v := strconv.Itoa(next)
					mops = append(mops, ap(k, v))
					if typ == history.OK || rng.IntN(2) == 0 && typ == history.Info {
						lists[k] = append(lists[k], v)
					}
					continue
				}
				l := slices.Clone(lists[k][:rng.IntN(len(lists[k])+1)])
				switch rng.IntN(40) { // mostly agreeing reads, so that keys take the fast path too
				case 0:
					l = append(l, "garbage")
				case 1:
					l = append(l, strconv.Itoa(next+1)) // the future, maybe its own
				case 2:
					if len(l) > 1 {
						l[0], l[1] = l[1], l[0]
					}
				case 3:
					if len(l) > 0 {
						l = append(l, l[0])
					}
				case 4:
					if len(l) > 1 {
						l = l[1:]
					}
				}
				mops = append(mops, rd(k, l...))
			}
			h.txn(i%5, i*10, i*10+5+rng.IntN(30), typ, mops...)
		}
		p := pairOps(h.events)
		fast, _ := checkTxnReads(p.ops, &ignoredOps{}, false)
		slow, _ := checkTxnReads(p.ops, &ignoredOps{}, true)
		require.Equal(t, slow, fast, "seed %d", seed)
	}
}
