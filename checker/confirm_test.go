package checker

import (
	"context"
	"slices"
	"testing"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/checker/sim"
	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// failedBySearch prepares the register keys of events as checkKey leaves a key the
// register search found illegal: Porcupine's operations made, not yet confirmed.
func failedBySearch(events []history.Event) ([]keyHistory, []porcupine.CheckResult) {
	p := pairOps(events)
	keys := keyHistories("register", p.ops, p.ignored.keys)
	outcomes := make([]porcupine.CheckResult, len(keys))
	for i := range keys {
		k := &keys[i]
		k.prepare(nil)
		k.ops = slices.Clone(k.ops)
		k.pops = registerPops(k.ops)
		k.unconfirmed = true
		outcomes[i] = porcupine.Illegal
	}
	return keys, outcomes
}

// A key the register search failed but Porcupine orders is Ok, with a note: drawn keys
// by the verbose search, the rest (past maxExplained) by a plain one.
func TestConfirmPorcupineOverrulesTheRegisterSearch(t *testing.T) {
	events := sim.Simulate(sim.Config{Seed: 7, Ops: 600, Procs: 5, OpsPerKey: 40, Keys: 4})
	keys, outcomes := failedBySearch(events)
	require.Greater(t, len(keys), maxExplained, "too few keys to have some not drawn")
	pass := confirm(context.Background(), linJob{model: "register", keys: keys}, registerModel, keys, outcomes)
	assert.Nil(t, pass, "no key is left failing: nothing to draw")
	for i, k := range keys {
		assert.Equal(t, porcupine.Ok, outcomes[i], "key %q", k.key)
		assert.False(t, k.unconfirmed)
		require.Len(t, k.notes, 1, "key %q", k.key)
		assert.Contains(t, k.notes[0], "Porcupine's answer stands")
	}
}

// A key Porcupine finds illegal stays illegal, searched once by it: the search it was
// confirmed by is the one explainFailures draws.
func TestConfirmKeepsTheDrawingsSearch(t *testing.T) {
	keys, outcomes := failedBySearch(hardHistory(6))
	job := linJob{model: "register", keys: keys}
	pass := confirm(context.Background(), job, registerModel, keys, outcomes)
	require.NotNil(t, pass)
	assert.Equal(t, []porcupine.CheckResult{porcupine.Illegal}, outcomes)
	assert.False(t, pass.cut)
	assert.False(t, pass.ordered(0))
	assert.Empty(t, keys[0].notes)
	res := &LinResult{}
	viz := explainFailures(context.Background(), job, registerModel, keys, res, pass)
	require.NotNil(t, viz)
	assert.Equal(t, pass.info, viz.info, "the drawing is the confirming search")
	require.Len(t, res.Failures, 1)
	assert.Contains(t, res.Failures[0].Explanation, `key "k"`)
}

// A search that could not finish decides nothing: the key is undecided, not illegal.
func TestConfirmCutShortIsUndecided(t *testing.T) {
	keys, outcomes := failedBySearch(hardHistory(22))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	pass := confirm(ctx, linJob{model: "register", keys: keys}, registerModel, keys, outcomes)
	assert.Nil(t, pass)
	assert.Equal(t, []porcupine.CheckResult{porcupine.Unknown}, outcomes)
}
