package workload

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/faultline/faultline/history"
)

// maxTxnMops is the most micro-operations a transaction of the txn workload holds.
const maxTxnMops = 4

// txnSource makes the txn workload's transactions: 1 to maxTxnMops micro-operations,
// each a read or an append (by the mix) of one of the Config.Keys active keys, drawn
// from the key slots of a keyed generator, whose values are unique per key and whose
// keys are retired after Config.OpsPerKey micro-operations, as Elle's list-append
// workload rotates them so that no list grows without bound.
type txnSource struct {
	keys *generator
}

func newTxnSource(d *Def, cfg Config) source { return &txnSource{keys: newGenerator(d, cfg)} }

// next draws the same numbers for every transaction: its length, then a slot and an
// operation for each of maxTxnMops micro-operations (the generator's draws).
func (s *txnSource) next(r *rand.Rand) op {
	n := 1 + r.IntN(maxTxnMops)
	o := op{f: history.OpTxn}
	for i := range maxTxnMops {
		m := s.keys.next(r)
		if i >= n {
			continue
		}
		mop := history.Mop{F: history.MopRead, Key: m.key}
		if m.f == history.OpAppend {
			mop = history.Mop{F: history.MopAppend, Key: m.key, V: history.S1(m.arg)}
		}
		o.mops = append(o.mops, mop)
	}
	o.key = o.mops[0].Key
	return o
}

func (s *txnSource) done(op, history.Type, history.Value, string) {}

// finalTxnRead is a key's final read: a transaction of one read.
func finalTxnRead(key string) op {
	return op{f: history.OpTxn, key: key, mops: []history.Mop{{F: history.MopRead, Key: key}}}
}

// applyTxn runs a transaction on c, which must implement Transactor.
func applyTxn(ctx context.Context, c Client, o op) (history.Value, error) {
	t, ok := c.(Transactor)
	if !ok {
		return o.invokeValue(), Definite(fmt.Errorf("the target's client (%T) has no transactions", c))
	}
	out, err := t.Txn(ctx, o.mops)
	if err != nil {
		return o.invokeValue(), err
	}
	if len(out) != len(o.mops) {
		return o.invokeValue(), fmt.Errorf("the client answered %d micro-operations for %d", len(out), len(o.mops))
	}
	return history.T(out...), nil
}
