package checker

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/faultline/faultline/history"
)

// The transaction checker: list-append histories checked the way Elle does (Kingsbury
// and Alvaro, "Elle: Inferring Isolation Anomalies from Experimental Observations",
// VLDB 2020). Every append adds a unique value to the end of a key's list, so the
// longest read of a key gives the order of the appends in it (the version order), and
// every read says which appends it saw. From them come the dependencies between
// transactions — write-write (ww: T2 appended right after T1), write-read (wr: T2 read
// T1's append last) and read-write (rw: T1 read the list just without T2's append) —
// and the real-time order (rt: T1 completed before T2 began). A cycle of dependencies is
// an anomaly, named by its edges: G0 (ww only), G1c (ww and wr), G-single (exactly one
// rw), G2-item (more), each with a -realtime variant when it needs rt edges to close.
// Anomalies that need no cycle are found directly: G1a (a read of an append whose
// transaction failed), G1b (a read of an append its transaction later superseded),
// garbage reads (of a value nobody appended), duplicate elements, incompatible orders
// (two reads of a key that are not one a prefix of the other), and internal
// inconsistency (a transaction that does not see its own appends).

// The anomaly types.
const (
	AnomalyG0               = "G0"
	AnomalyG1a              = "G1a"
	AnomalyG1b              = "G1b"
	AnomalyG1c              = "G1c"
	AnomalyGSingle          = "G-single"
	AnomalyG2               = "G2-item"
	AnomalyGarbage          = "garbage-read"
	AnomalyDuplicate        = "duplicate-elements"
	AnomalyIncompatible     = "incompatible-order"
	AnomalyInternal         = "internal"
	realtimeSuffix          = "-realtime"
	maxTxnExplanations      = 20
	maxGSingleSearchesInSCC = 2000
)

// TxnModels are the consistency models the transaction checker can rule out, weakest
// first: each anomaly rules out the model it names and every stronger one.
var TxnModels = []string{"read-uncommitted", "read-committed", "snapshot-isolation", "serializable", "strict-serializable"}

// weakestRuledOut is the weakest model each anomaly type rules out.
func weakestRuledOut(anomaly string) string {
	if strings.HasSuffix(anomaly, realtimeSuffix) {
		return "strict-serializable"
	}
	switch anomaly {
	case AnomalyG1a, AnomalyG1b, AnomalyG1c:
		return "read-committed"
	case AnomalyGSingle:
		return "snapshot-isolation"
	case AnomalyG2:
		return "serializable"
	}
	return "read-uncommitted" // G0, and histories that make no sense under any model
}

// TxnResult is the transaction checker's result.
type TxnResult struct {
	Verdict Verdict `json:"valid"`
	// Txns counts the committed transactions checked; Indeterminate those whose outcome
	// is unknown, of which Observed were seen to commit (a read saw an append of theirs).
	Txns          int `json:"txns"`
	Indeterminate int `json:"indeterminate"`
	Observed      int `json:"observed"`
	// Edges counts the dependencies inferred (ww, wr, rw; rt are implied).
	Edges int `json:"edges"`
	// AnomalyTypes counts the anomalies found by type.
	AnomalyTypes map[string]int `json:"anomaly_types"`
	// NotModels are the models the anomalies rule out, weakest first (empty when valid).
	NotModels []string `json:"not"`
	// Ignored counts operations of another shape than a list-append transaction, or
	// that append a value already appended to the key; Malformed says what the first
	// was. Such a history is not the txn workload's input at all.
	Ignored   int    `json:"ignored"`
	Malformed string `json:"malformed,omitempty"`
	// Cycles are the first few dependency cycles found, for the report to draw.
	Cycles    []TxnCycle `json:"cycles,omitempty"`
	Anomalies []string   `json:"anomalies,omitempty"`
}

// Line is the result in one line.
func (r *TxnResult) Line() string {
	s := fmt.Sprintf("%d committed txns, %d indeterminate (%d seen to commit), %d dependencies", r.Txns, r.Indeterminate, r.Observed, r.Edges)
	if len(r.AnomalyTypes) > 0 {
		types := make([]string, 0, len(r.AnomalyTypes))
		for _, k := range slices.Sorted(maps.Keys(r.AnomalyTypes)) {
			types = append(types, fmt.Sprintf("%s×%d", k, r.AnomalyTypes[k]))
		}
		s += "; anomalies " + strings.Join(types, ", ") + "; not " + strings.Join(r.NotModels, ", ")
	}
	if r.Ignored > 0 {
		s += fmt.Sprintf("; %d malformed ignored", r.Ignored)
	}
	return s
}

func (r *TxnResult) found(anomaly, format string, args ...any) {
	if r.AnomalyTypes == nil {
		r.AnomalyTypes = map[string]int{}
	}
	r.AnomalyTypes[anomaly]++
	if len(r.Anomalies) < maxTxnExplanations {
		r.Anomalies = append(r.Anomalies, anomaly+": "+fmt.Sprintf(format, args...))
	}
}

// Edge kinds, as bits.
const (
	edgeWW uint8 = 1 << iota
	edgeWR
	edgeRW
	edgeRT
)

// tnode is one transaction of the graph; virtual nodes (the real-time chain) have none.
type tnode struct {
	o    *op
	mops []history.Mop
	kids []int32 // each micro-operation's key id; -1 for a read of a transaction not committed
}

// tedge is a dependency: to, its kind, and what it is about (a key, and the position in
// the key's version order of the append it concerns).
type tedge struct {
	to   int32
	kind uint8
	key  int32
	pos  int32
}

// appendRef names one append: its transaction and the micro-operation, whether a read
// saw it, and its position in its key's version order (-1: it has none).
type appendRef struct {
	node int32
	mop  int32
	pos  int32
	seen bool
}

type txnGraph struct {
	nodes []tnode // real nodes: 0..len(nodes)-1; virtual ones follow
	n     int     // all nodes, virtual included
	// The edges as they are found (efrom[i] → es[i]), then, once all are (csr), each
	// node's out-edges as out[off[v]:off[v+1]], in the order they were found: one
	// array, not a slice per node grown edge by edge.
	efrom []int32
	es    []tedge
	off   []int32
	out   []tedge
	keys  []string
	keyID map[string]int32
	// orders is each key's version order: the appends its longest read saw, in order
	// (the first read[k]), then the committed appends no read saw, which can only
	// follow them (a read is a prefix of the final list), in no known order.
	orders [][]string
	read   []int
	bad    map[int32]bool // keys whose reads disagree: no order
	// eachRead: readDeps checks every read's elements one by one, on every key
	eachRead bool
}

// addUnread puts after each key's read appends the committed appends that no read saw.
func (g *txnGraph) addUnread(writer map[int32]map[string]appendRef) {
	g.read = make([]int, len(g.orders))
	for k, order := range g.orders {
		g.read[k] = len(order)
		g.orders[k] = slices.Clip(order) // a read's list, in the history: append to a copy
		for i, v := range order {
			if w, ok := writer[int32(k)][v]; ok {
				w.seen, w.pos = true, int32(i)
				writer[int32(k)][v] = w
			}
		}
	}
	for ni, nd := range g.nodes {
		if nd.o.status != history.OK {
			continue
		}
		for mi, m := range nd.mops {
			k := nd.kids[mi]
			if m.F != history.MopAppend || g.bad[k] {
				continue
			}
			if w := writer[k][m.V.S]; !w.seen && w.node == int32(ni) && w.mop == int32(mi) { // not a duplicate left out
				w.pos = int32(len(g.orders[k]))
				writer[k][m.V.S] = w
				g.orders[k] = append(g.orders[k], m.V.S)
			}
		}
	}
}

func (g *txnGraph) edge(from, to int32, kind uint8, key, pos int32) {
	if from == to {
		return
	}
	g.efrom = append(g.efrom, from)
	g.es = append(g.es, tedge{to: to, kind: kind, key: key, pos: pos})
}

// csr lays the edges found out by node (a stable counting sort).
func (g *txnGraph) csr() {
	g.off = make([]int32, g.n+1)
	for _, f := range g.efrom {
		g.off[f+1]++
	}
	for v := range g.n {
		g.off[v+1] += g.off[v]
	}
	g.out = make([]tedge, len(g.es))
	at := slices.Clone(g.off[:g.n])
	for i, f := range g.efrom {
		g.out[at[f]] = g.es[i]
		at[f]++
	}
	g.efrom, g.es = nil, nil
}

// adj is v's out-edges (after csr).
func (g *txnGraph) adj(v int32) []tedge { return g.out[g.off[v]:g.off[v+1]] }

// checkTxn checks the txn workload's history.
func checkTxn(ops []op, bad *ignoredOps) (res *TxnResult, notes []string) {
	return checkTxnReads(ops, bad, false)
}

// checkTxnReads is checkTxn; eachRead checks what every read saw one by one, on every
// key (the tests hold the per-key check to it).
func checkTxnReads(ops []op, bad *ignoredOps, eachRead bool) (res *TxnResult, notes []string) {
	res = &TxnResult{}
	g := &txnGraph{eachRead: eachRead, nodes: make([]tnode, 0, len(ops))}
	failed := map[string]map[string]*op{} // key → value → a failed txn's append
	for i := range ops {
		o := &ops[i]
		if o.guessed != "" {
			continue
		}
		mops, ok := txnMops(o)
		if !ok {
			bad.add(o.key, whyShape)
			res.Ignored++
			notes = append(notes, fmt.Sprintf("event %d: %s of %v → %v is not a list-append transaction; ignored", o.invIdx, o.f, o.in, o.out))
			continue
		}
		switch o.status {
		case history.Fail:
			for _, m := range mops {
				if m.F == history.MopAppend {
					if failed[m.Key] == nil {
						failed[m.Key] = map[string]*op{}
					}
					failed[m.Key][m.V.S] = o
				}
			}
		case history.OK:
			res.Txns++
			g.nodes = append(g.nodes, tnode{o: o, mops: mops})
		default:
			res.Indeterminate++
			g.nodes = append(g.nodes, tnode{o: o, mops: mops})
		}
	}
	g.keyID = map[string]int32{}
	kid := func(k string) int32 {
		id, ok := g.keyID[k]
		if !ok {
			id = int32(len(g.keys))
			g.keyID[k] = id
			g.keys = append(g.keys, k)
		}
		return id
	}
	// Each micro-operation's key id, looked up once: appends first, then committed
	// reads, in the order of the transactions (as ids are numbered).
	total := 0
	for _, nd := range g.nodes {
		total += len(nd.mops)
	}
	ids := make([]int32, total)
	appends := []int{} // by key id
	for ni := range g.nodes {
		nd := &g.nodes[ni]
		nd.kids, ids = ids[:len(nd.mops):len(nd.mops)], ids[len(nd.mops):]
		for mi, m := range nd.mops {
			nd.kids[mi] = -1
			if m.F == history.MopAppend {
				k := kid(m.Key)
				for int(k) >= len(appends) {
					appends = append(appends, 0)
				}
				nd.kids[mi] = k
				appends[k]++
			}
		}
	}
	for _, nd := range g.nodes {
		if nd.o.status != history.OK {
			continue
		}
		for mi, m := range nd.mops {
			if m.F == history.MopRead {
				nd.kids[mi] = kid(m.Key)
			}
		}
	}
	writer := make(map[int32]map[string]appendRef, len(appends))
	for k, n := range appends {
		writer[int32(k)] = make(map[string]appendRef, n)
	}
	for ni, nd := range g.nodes {
		for mi, m := range nd.mops {
			if m.F != history.MopAppend {
				continue
			}
			k := nd.kids[mi]
			if prev, dup := writer[k][m.V.S]; dup {
				bad.add(m.Key, whyDuplicateAppend)
				res.Ignored++
				notes = append(notes, fmt.Sprintf("event %d appends %q to key %q, as event %d did: appended values must be unique; the second is ignored",
					nd.o.invIdx, m.V.S, m.Key, g.nodes[prev.node].o.invIdx))
				continue
			}
			writer[k][m.V.S] = appendRef{node: int32(ni), mop: int32(mi), pos: -1}
		}
	}
	g.orders = g.versionOrders(res)
	g.addUnread(writer)
	observed := make([]bool, len(g.nodes))
	g.n = len(g.nodes)
	// about three dependencies and three real-time edges a transaction: one allocation
	g.efrom, g.es = make([]int32, 0, 7*g.n), make([]tedge, 0, 7*g.n)
	g.readDeps(res, writer, failed, observed)
	for i, nd := range g.nodes {
		if nd.o.status != history.OK && observed[i] {
			res.Observed++
		}
	}
	for k, order := range g.orders { // ww
		for i := 1; i < len(order); i++ {
			if g.read[k] == 0 {
				break // no read saw any: the appends have no known order
			}
			a, okA := writer[int32(k)][order[min(i, g.read[k])-1]]
			b, okB := writer[int32(k)][order[i]]
			if okA && okB {
				g.edge(a.node, b.node, edgeWW, int32(k), int32(i))
			}
		}
	}
	res.Edges = len(g.es)
	g.realtime()
	g.csr()
	g.cycles(res)
	if len(notes) > 0 {
		res.Malformed = notes[0]
	}
	verdict := Valid
	if len(res.AnomalyTypes) > 0 {
		verdict = Invalid
		weakest := len(TxnModels)
		for a := range res.AnomalyTypes {
			weakest = min(weakest, slices.Index(TxnModels, weakestRuledOut(a)))
		}
		res.NotModels = slices.Clone(TxnModels[weakest:])
	} else if res.Txns == 0 {
		verdict = Unknown
	}
	res.Verdict = verdict
	return res, notes
}

// whyDuplicateAppend is why a second append of a value is left out.
const whyDuplicateAppend = "append of a value already appended to its key (ignored)"

// txnMops returns the micro-operations of a transaction as the checker reads them: the
// completion's for a committed one (reads carry what they read), the invoke's
// otherwise. ok is false when o is not a list-append transaction.
func txnMops(o *op) ([]history.Mop, bool) {
	if o.f != history.OpTxn || o.in.Kind != history.Txn {
		return nil, false
	}
	mops := o.in.T
	if o.status == history.OK {
		if o.out.Kind != history.Txn || len(o.out.T) != len(o.in.T) {
			return nil, false
		}
		mops = o.out.T
	}
	for i, m := range mops {
		in := o.in.T[i]
		if m.F != in.F || m.Key != in.Key {
			return nil, false
		}
		switch {
		case m.F == history.MopAppend && m.V.Kind == history.Str:
		case m.F == history.MopRead && (o.status != history.OK || m.V.Kind == history.List || m.V.Kind == history.None):
		default:
			return nil, false
		}
	}
	return mops, true
}

// versionOrders returns each key's order of appends: its longest committed read. Reads
// that are not a prefix of it are incompatible orders (and no order is taken for the
// key); a read with an element twice is a duplicate.
func (g *txnGraph) versionOrders(res *TxnResult) [][]string {
	longest := make([][]string, len(g.keys))
	who := make([]*op, len(g.keys))
	g.committedReads(func(o *op, m history.Mop, k int32) {
		if len(m.V.L) > len(longest[k]) {
			longest[k], who[k] = m.V.L, o
		}
	})
	orders := make([][]string, len(g.keys))
	g.bad = map[int32]bool{}
	bad := g.bad
	g.committedReads(func(o *op, m history.Mop, k int32) {
		l := longest[k]
		if !prefixOf(m.V.L, l) && !bad[k] {
			bad[k] = true
			res.found(AnomalyIncompatible, "key %q: %s read %v and %s read %v: neither is a prefix of the other, so the appends have no one order",
				m.Key, describeTxn(o), m.V, describeTxn(who[k]), history.L(l...))
		}
		if !bad[k] && (len(m.V.L) < len(l) || o != who[k]) {
			return // a prefix of the longest read (or the longest again) has a duplicate only if the longest has
		}
		if d, ok := duplicate(m.V.L); ok {
			res.found(AnomalyDuplicate, "key %q: %s read %v, with %q twice", m.Key, describeTxn(o), m.V, d)
		}
	})
	for k, l := range longest {
		if !bad[int32(k)] {
			orders[k] = l
		}
	}
	return orders
}

// committedReads calls f with every read of every committed transaction, and its key id.
func (g *txnGraph) committedReads(f func(*op, history.Mop, int32)) {
	for _, nd := range g.nodes {
		if nd.o.status != history.OK {
			continue
		}
		for mi, m := range nd.mops {
			if m.F == history.MopRead {
				f(nd.o, m, nd.kids[mi])
			}
		}
	}
}

// prefixOf says whether a is a prefix of b. Reads of a key decoded from a file share
// the storage of the longest (history's decoder): then it is one comparison.
func prefixOf(a, b []string) bool {
	if len(a) > len(b) {
		return false
	}
	if len(a) == 0 || &a[0] == &b[0] {
		return true
	}
	return slices.Equal(a, b[:len(a)])
}

func duplicate(l []string) (string, bool) {
	if len(l) < 2 {
		return "", false
	}
	seen := make(map[string]bool, len(l))
	for _, v := range l {
		if seen[v] {
			return v, true
		}
		seen[v] = true
	}
	return "", false
}

// readDeps checks every committed read — what it read exists, committed, and is not
// superseded within its transaction; a transaction sees its own appends — and adds the
// wr and rw dependencies of each read made before its transaction appended to the key.
//
// A key whose reads all agree (a prefix each of its version order) has what its reads
// saw checked once, over the read part of its order, and not again per read: a
// million-transaction history reads tens of millions of elements. A key where that
// finds an element no committed transaction appended has every read checked one by one,
// so each anomaly names a read that saw it.
func (g *txnGraph) readDeps(res *TxnResult, writer map[int32]map[string]appendRef, failed map[string]map[string]*op, observed []bool) {
	perRead := make([]bool, len(g.orders)) // the keys whose reads are checked one by one
	for k, order := range g.orders {
		if g.bad[int32(k)] || g.eachRead {
			perRead[k] = true
			continue
		}
		for _, v := range order[:g.read[k]] {
			if w, ok := writer[int32(k)][v]; ok {
				observed[w.node] = true
			} else {
				perRead[k] = true
			}
		}
	}
	for ni, nd := range g.nodes {
		if nd.o.status != history.OK {
			continue
		}
		own := map[string][]string{} // this txn's appends so far, by key
		for mi, m := range nd.mops {
			if m.F == history.MopAppend {
				own[m.Key] = append(own[m.Key], m.V.S)
				continue
			}
			k := nd.kids[mi]
			l := m.V.L
			if perRead[k] {
				g.readElements(res, ni, m, writer, failed, observed, own[m.Key])
			} else if v, ok := g.futureRead(ni, mi, len(l), writer); ok {
				res.found(AnomalyInternal, "key %q: %s read %v, with %q, which it appended only later: a read of the future",
					m.Key, describeTxn(nd.o), m.V, v)
			}
			if mine := own[m.Key]; len(mine) > 0 { // internal: the read must end with this txn's appends
				if len(l) < len(mine) || !slices.Equal(l[len(l)-len(mine):], mine) {
					res.found(AnomalyInternal, "key %q: %s read %v after appending %v itself: a transaction must see its own appends",
						m.Key, describeTxn(nd.o), m.V, history.L(mine...))
				}
				continue // not an external read: it says nothing of other transactions
			}
			if len(l) > 0 {
				v := l[len(l)-1]
				if w, ok := writer[k][v]; ok && int(w.node) != ni {
					wn := g.nodes[w.node]
					if last := lastAppend(wn.mops, m.Key); last != v {
						res.found(AnomalyG1b, "key %q: %s read %v, ending in %q, which %s appended before appending %q: an intermediate state was read",
							m.Key, describeTxn(nd.o), m.V, v, describeTxn(wn.o), last)
					}
					g.edge(w.node, int32(ni), edgeWR, k, int32(len(l)-1))
				}
			}
			order, n := g.orders[k], len(l)
			if n < g.read[k] {
				order = order[:n+1] // the next append read
			}
			last := int32(-1) // the writer of what it read last: reading part of a transaction is G1b, not also rw
			if n > 0 {
				if w, ok := writer[k][l[n-1]]; ok {
					last = w.node
				}
			}
			for i := n; i < len(order); i++ { // or, after the longest read, every append never read
				if w, ok := writer[k][order[i]]; ok && w.node != last {
					g.edge(int32(ni), w.node, edgeRW, k, int32(i))
				}
			}
		}
	}
}

// readElements checks each element of read m of node ni: appended by a transaction
// that committed (else G1a or garbage), and not by ni itself after the read (a read of
// the future); own is what ni appended to the key before the read.
func (g *txnGraph) readElements(res *TxnResult, ni int, m history.Mop, writer map[int32]map[string]appendRef, failed map[string]map[string]*op, observed []bool, own []string) {
	o, k, l := g.nodes[ni].o, g.keyID[m.Key], m.V.L
	for _, v := range l {
		w, ok := writer[k][v]
		switch {
		case ok:
			observed[w.node] = true
		case failed[m.Key][v] != nil:
			res.found(AnomalyG1a, "key %q: %s read %q, appended by %s, which failed: an aborted write was read",
				m.Key, describeTxn(o), v, strings.TrimPrefix(failed[m.Key][v].describeFail(), history.OpTxn+" by "))
		default:
			res.found(AnomalyGarbage, "key %q: %s read %q, which no transaction appended", m.Key, describeTxn(o), v)
		}
	}
	for _, v := range l { // a read of this transaction's own append, before it made it
		if w, ok := writer[k][v]; ok && int(w.node) == ni && !slices.Contains(own, v) {
			res.found(AnomalyInternal, "key %q: %s read %v, with %q, which it appended only later: a read of the future",
				m.Key, describeTxn(o), m.V, v)
			return
		}
	}
}

// futureRead is readElements' read of the future for a read that is a prefix of its
// key's version order: of the appends node ni makes to the key after its mop mi, the
// one earliest in the order among the first n, which the read then saw.
func (g *txnGraph) futureRead(ni, mi, n int, writer map[int32]map[string]appendRef) (string, bool) {
	mops := g.nodes[ni].mops
	k := g.keyID[mops[mi].Key]
	first, at := "", int32(n)
	for j := mi + 1; j < len(mops); j++ {
		m := mops[j]
		if m.F != history.MopAppend || m.Key != mops[mi].Key {
			continue
		}
		if w, ok := writer[k][m.V.S]; ok && int(w.node) == ni && w.mop == int32(j) && w.pos >= 0 && w.pos < at {
			first, at = m.V.S, w.pos
		}
	}
	return first, first != "" || at < int32(n)
}

func lastAppend(mops []history.Mop, key string) string {
	last := ""
	for _, m := range mops {
		if m.F == history.MopAppend && m.Key == key {
			last = m.V.S
		}
	}
	return last
}

// realtime adds the real-time order as a chain of virtual nodes, one per completion in
// time order: T → its completion's node → the next completion's … → every transaction
// invoked after. So T1 reaches T2 by rt edges exactly when T1 completed before T2
// began, with 3 edges per transaction rather than one per pair.
func (g *txnGraph) realtime() {
	type done struct {
		at   int64
		node int32
	}
	var ends []done
	for i, nd := range g.nodes {
		if nd.o.status == history.OK && !nd.o.untimed {
			ends = append(ends, done{nd.o.ret, int32(i)})
		}
	}
	sort.Slice(ends, func(a, b int) bool { return ends[a].at < ends[b].at })
	base := int32(g.n)
	g.n += len(ends)
	for i, d := range ends {
		g.edge(d.node, base+int32(i), edgeRT, -1, -1)
		if i > 0 {
			g.edge(base+int32(i-1), base+int32(i), edgeRT, -1, -1)
		}
	}
	for i, nd := range g.nodes {
		if nd.o.untimed {
			continue
		}
		j := sort.Search(len(ends), func(j int) bool { return ends[j].at >= nd.o.call }) - 1
		if j >= 0 {
			g.edge(base+int32(j), int32(i), edgeRT, -1, -1)
		}
	}
}

// cycles finds the strongly connected components and, in each, the cycle of the
// weakest anomaly it holds.
func (g *txnGraph) cycles(res *TxnResult) {
	all := make([]int32, g.n)
	for i := range all {
		all[i] = int32(i)
	}
	comp := g.tarjan(all, func(v int32) int { return int(v) }, edgeWW|edgeWR|edgeRW|edgeRT)
	realIn := make([]int32, g.n)
	for v := range int32(len(g.nodes)) {
		realIn[comp[v]]++
	}
	members := map[int32][]int32{}
	for v := range int32(g.n) {
		if c := comp[v]; realIn[c] > 1 {
			members[c] = append(members[c], v)
		}
	}
	ids := slices.Sorted(maps.Keys(members))
	for _, c := range ids {
		if name, cyc := g.classify(members[c], func(v int32) bool { return comp[v] == c }); cyc != nil {
			text, c := g.explainCycle(name, cyc)
			res.found(name, "%s", text)
			if len(res.Cycles) < maxCycles {
				res.Cycles = append(res.Cycles, c)
			}
		}
	}
}

// classify finds, among the nodes in, the cycle of the weakest anomaly: G0, G1c,
// G-single, G2-item, then the same with real-time edges.
func (g *txnGraph) classify(members []int32, in func(int32) bool) (string, []tedgeFrom) {
	for _, rt := range []uint8{0, edgeRT} {
		suffix := ""
		if rt != 0 {
			suffix = realtimeSuffix
		}
		if cyc := g.cycleWithin(members, in, edgeWW|rt); cyc != nil {
			return AnomalyG0 + suffix, cyc
		}
		if cyc := g.cycleWithin(members, in, edgeWW|edgeWR|rt); cyc != nil {
			return AnomalyG1c + suffix, cyc
		}
		if cyc := g.cycleThroughRW(members, in, edgeWW|edgeWR|rt); cyc != nil {
			return AnomalyGSingle + suffix, cyc
		}
		if cyc := g.cycleThroughRW(members, in, edgeWW|edgeWR|edgeRW|rt); cyc != nil {
			return AnomalyG2 + suffix, cyc
		}
	}
	return "", nil
}

// tedgeFrom is one step of a cycle: the edge and where it starts.
type tedgeFrom struct {
	from int32
	tedge
}

// cycleWithin returns a cycle among members (one component: in tells its nodes) using
// only edges of mask, or nil.
func (g *txnGraph) cycleWithin(members []int32, in func(int32) bool, mask uint8) []tedgeFrom {
	pos := make(map[int32]int, len(members))
	for i, v := range members {
		pos[v] = i
	}
	comp := g.tarjan(members, func(v int32) int {
		if i, ok := pos[v]; ok {
			return i
		}
		return -1
	}, mask)
	real := int32(len(g.nodes))
	size := map[int32]int{}
	for i, v := range members {
		if v < real {
			size[comp[i]]++
		}
	}
	for i, v := range members {
		if v < real && size[comp[i]] > 1 {
			c := comp[i]
			return g.path(v, v, mask, func(u int32) bool { j, ok := pos[u]; return ok && comp[j] == c }, nil)
		}
	}
	return nil
}

// cycleThroughRW returns a cycle among members that takes one rw edge and then only
// edges of mask back, or nil.
func (g *txnGraph) cycleThroughRW(members []int32, in func(int32) bool, mask uint8) []tedgeFrom {
	tries := 0
	real := int32(len(g.nodes))
	for _, u := range members {
		if u >= real {
			continue
		}
		for _, e := range g.adj(u) {
			if e.kind != edgeRW || !in(e.to) {
				continue
			}
			if tries++; tries > maxGSingleSearchesInSCC {
				return nil
			}
			first := tedgeFrom{from: u, tedge: e}
			if back := g.path(e.to, u, mask, in, &first); back != nil {
				return back
			}
		}
	}
	return nil
}

// path returns the path from a to b (a cycle when a == b) over edges of mask through
// nodes ok with the fewest transactions on it (a 0-1 breadth-first search: a step into
// the real-time chain's virtual nodes costs nothing), prefixed by first when given; nil
// when there is none.
func (g *txnGraph) path(a, b int32, mask uint8, ok func(int32) bool, first *tedgeFrom) []tedgeFrom {
	real := int32(len(g.nodes))
	prev := map[int32]tedgeFrom{}
	dist := map[int32]int{a: 0}
	var near []int32  // at the distance being searched (a stack: their order does not matter)
	far := []int32{a} // one further, in order
	found := false
	for (len(near) > 0 || len(far) > 0) && !found {
		var v int32
		if len(near) > 0 {
			v, near = near[len(near)-1], near[:len(near)-1]
		} else {
			v, far = far[0], far[1:]
		}
		for _, e := range g.adj(v) {
			if e.kind&mask == 0 || !ok(e.to) {
				continue
			}
			if e.to == b {
				prev[b] = tedgeFrom{from: v, tedge: e}
				found = true
				break
			}
			cost := 1
			if e.to >= real {
				cost = 0
			}
			if d, seen := dist[e.to]; seen && d <= dist[v]+cost {
				continue
			}
			dist[e.to] = dist[v] + cost
			prev[e.to] = tedgeFrom{from: v, tedge: e}
			if cost == 0 {
				near = append(near, e.to)
			} else {
				far = append(far, e.to)
			}
		}
	}
	if !found {
		return nil
	}
	var out []tedgeFrom
	for v := b; ; {
		st := prev[v]
		out = append(out, st)
		v = st.from
		if v == a {
			break
		}
	}
	slices.Reverse(out)
	if first != nil {
		out = append([]tedgeFrom{*first}, out...)
	}
	return out
}

// explainCycle tells a cycle in words: each transaction with its operations, and each
// dependency with why it holds. Runs of real-time edges through the virtual chain are
// one "completed before … began".
func (g *txnGraph) explainCycle(anomaly string, cyc []tedgeFrom) (string, TxnCycle) {
	real := int32(len(g.nodes))
	c := TxnCycle{Anomaly: anomaly}
	var steps []string
	names := map[int32]string{}
	var order []int32 // the transactions, in the order they were named
	name := func(v int32) string {
		if n, ok := names[v]; ok {
			return n
		}
		names[v] = fmt.Sprintf("T%d", len(names)+1)
		order = append(order, v)
		o := g.nodes[v].o
		c.Txns = append(c.Txns, CycleTxn{Name: names[v], Process: o.process, Node: o.node, From: secs(o.call),
			To: secs(o.end()), Ops: history.T(g.nodes[v].mops...).String()})
		return names[v]
	}
	start := int32(-1)
	for _, st := range cyc {
		if st.from < real && start < 0 {
			start = st.from
		}
		if st.to >= real { // into the chain: wait for where it comes out
			if st.from < real {
				start = st.from
			}
			continue
		}
		from := st.from
		if from >= real {
			from = start
		}
		a, b := name(from), name(st.to)
		why := g.explainEdge(from, st, a, b)
		steps = append(steps, fmt.Sprintf("%s → %s (%s)", a, b, why))
		c.Edges = append(c.Edges, CycleEdge{From: a, To: b, Why: why})
		start = st.to
	}
	txns := make([]string, len(c.Txns))
	for i, t := range c.Txns {
		txns[i] = fmt.Sprintf("%s = %s %s", t.Name, describeTxn(g.nodes[order[i]].o), t.Ops)
	}
	return strings.Join(steps, "; ") + ". Where " + strings.Join(txns, "; ") + ".", c
}

// TxnCycle is a dependency cycle for the report: its transactions in cycle order, and
// the edge from each to the next, the last closing the cycle.
type TxnCycle struct {
	Anomaly string      `json:"anomaly"`
	Txns    []CycleTxn  `json:"txns"`
	Edges   []CycleEdge `json:"edges"`
}

// CycleTxn is one transaction of a cycle.
type CycleTxn struct {
	Name    string `json:"name"`
	Process int    `json:"process"`
	Node    string `json:"node,omitempty"`
	From    string `json:"from"`
	To      string `json:"to"`
	Ops     string `json:"ops"`
}

// CycleEdge is one dependency of a cycle, with why it holds.
type CycleEdge struct {
	From string `json:"from"`
	To   string `json:"to"`
	Why  string `json:"why"`
}

// maxCycles bounds TxnResult.Cycles.
const maxCycles = 5

func (g *txnGraph) explainEdge(from int32, st tedgeFrom, a, b string) string {
	if st.kind == edgeRT {
		return fmt.Sprintf("rt: %s completed at %s, before %s began at %s", a, secs(g.nodes[from].o.ret), b, secs(g.nodes[st.to].o.call))
	}
	k := g.keys[st.key]
	order, read := g.orders[st.key], g.read[st.key]
	if st.kind == edgeWR && int(st.pos) >= len(order) {
		// a key whose reads disagree has no order: what b read last is in its read
		return fmt.Sprintf("wr on %s: %s read %s's append of %s last", k, b, a, g.readAt(st.to, k, int(st.pos)))
	}
	v := order[st.pos]
	next, after := "next", "next"
	if int(st.pos) >= read {
		next = "after it (no read saw " + v + ": it can only follow what reads saw)"
		after = "after what " + a + " read (no read saw " + v + ")"
	}
	switch st.kind {
	case edgeWW:
		return fmt.Sprintf("ww on %s: %s appended %s, and %s appended %s %s", k, a, order[min(int(st.pos), read)-1], b, v, next)
	case edgeWR:
		return fmt.Sprintf("wr on %s: %s read %s's append of %s last", k, b, a, v)
	default:
		return fmt.Sprintf("rw on %s: %s read %s without %s, which %s appended %s", k, a, history.L(order[:min(int(st.pos), read)]...), v, b, after)
	}
}

// readAt is the element at pos of node's read of key k that is pos+1 long.
func (g *txnGraph) readAt(node int32, k string, pos int) string {
	for _, m := range g.nodes[node].mops {
		if m.F == history.MopRead && m.Key == k && len(m.V.L) == pos+1 {
			return m.V.L[pos]
		}
	}
	return "?"
}

// describeTxn names a transaction by its process and times.
func describeTxn(o *op) string {
	d := o.describe()
	return strings.TrimPrefix(d, o.f+" by ")
}

// tarjan returns the strongly connected component of each of nodes (by position in
// nodes), over the graph's edges of mask that lead to nodes local places (local(v) is
// v's position in nodes, or -1 for a node outside them). Iterative: histories are long.
func (g *txnGraph) tarjan(nodes []int32, local func(int32) int, mask uint8) []int32 {
	n := len(nodes)
	index, low, comp := make([]int32, n), make([]int32, n), make([]int32, n)
	for i := range index {
		index[i] = -1
	}
	onStack := make([]bool, n)
	// as deep as the graph: the real-time chain makes a path through all of it
	stack := make([]int32, 0, n)
	var next, nextComp int32
	type frame struct {
		v, i int32 // local node, next edge of its adjacency
	}
	call := make([]frame, 0, n)
	push := func(v int) {
		index[v], low[v] = next, next
		next++
		stack = append(stack, int32(v))
		onStack[v] = true
		call = append(call, frame{v: int32(v)})
	}
	for root := range n {
		if index[root] >= 0 {
			continue
		}
		push(root)
		for len(call) > 0 {
			f := &call[len(call)-1]
			if adj := g.adj(nodes[f.v]); int(f.i) < len(adj) {
				e := adj[f.i]
				f.i++
				w := -1
				if e.kind&mask != 0 {
					w = local(e.to)
				}
				switch {
				case w < 0:
				case index[w] < 0:
					push(w)
				case onStack[w]:
					low[f.v] = min(low[f.v], index[w])
				}
				continue
			}
			v := f.v
			call = call[:len(call)-1]
			if len(call) > 0 {
				p := call[len(call)-1].v
				low[p] = min(low[p], low[v])
			}
			if low[v] == index[v] {
				for {
					w := stack[len(stack)-1]
					stack = stack[:len(stack)-1]
					onStack[w] = false
					comp[w] = nextComp
					if w == v {
						break
					}
				}
				nextComp++
			}
		}
	}
	return comp
}
