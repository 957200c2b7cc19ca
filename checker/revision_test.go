package checker

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// revHistory builds register histories whose completions carry revisions.
type revHistory struct{ events []history.Event }

func (h *revHistory) op(p int, call, done int64, f, key, in, out string, rev int64) {
	inv := history.Event{Index: int64(len(h.events)), Time: call, Process: p, Type: history.Invoke, F: f, Key: key}
	if in != "" {
		inv.Value = history.S1(in)
	}
	h.events = append(h.events, inv)
	ok := history.Event{Time: done, Process: p, Type: history.OK, F: f, Key: key, Value: history.S1(out), Rev: rev}
	if out == "" {
		ok.Value = history.Value{}
	}
	h.events = append(h.events, ok)
}

func (h *revHistory) check(t *testing.T) Result {
	t.Helper()
	slices.SortStableFunc(h.events, func(a, b history.Event) int { return cmp.Compare(a.Time, b.Time) })
	for i := range h.events {
		h.events[i].Index = int64(i)
	}
	return Check(context.Background(), h.events, Options{Model: Register, MinEvidence: 1})
}

func TestRevisionCheck(t *testing.T) {
	t.Run("answers in revision order across keys are valid", func(t *testing.T) {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 2)
		h.op(1, 5, 15, history.OpWrite, "b", "2", "2", 3) // concurrent with the first
		h.op(0, 20, 30, history.OpRead, "b", "", "2", 3)
		h.op(1, 20, 30, history.OpRead, "a", "", "1", 4) // a later revision: another key's write
		res := h.check(t)
		require.NotNil(t, res.Revision)
		assert.Equal(t, Valid, res.Revision.Verdict, res.Revision.Line())
		assert.Equal(t, Valid, res.Verdict, res.Summary())
		assert.Equal(t, 4, res.Revision.Ops)
		assert.Equal(t, 2, res.Revision.Writes)
	})
	t.Run("a stale read of an unchanged key is caught, though each key is linearizable", func(t *testing.T) {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 2)
		h.op(0, 20, 30, history.OpWrite, "b", "2", "2", 3)
		h.op(2, 32, 38, history.OpRead, "b", "", "2", 3)
		h.op(1, 40, 50, history.OpRead, "a", "", "1", 2) // a member at revision 2 served it: b's write was acknowledged
		res := h.check(t)
		require.NotNil(t, res.Linearizability)
		assert.Equal(t, Valid, res.Linearizability.Verdict, "key a alone is linearizable")
		assert.Equal(t, Invalid, res.Verdict, res.Summary())
		assert.Equal(t, []string{KSRevisionOrder}, res.AnomalyKinds())
		assert.EqualValues(t, 2, res.Revision.FirstBad)
		assert.Contains(t, strings.Join(res.Explanations(), "\n"), "answered at revision 2, but write of b")
		at, ok := res.FirstViolation(h.events)
		assert.True(t, ok, "the stale read is blamed")
		assert.EqualValues(t, 40, at, "when it was invoked")
	})
	t.Run("a write that makes a revision no later than one answered before it began", func(t *testing.T) {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 2)
		h.op(1, 20, 30, history.OpRead, "a", "", "1", 5)
		h.op(0, 40, 50, history.OpWrite, "b", "2", "2", 5)
		res := h.check(t)
		assert.Equal(t, Invalid, res.Verdict, res.Summary())
		assert.Contains(t, strings.Join(res.Explanations(), "\n"), "a write makes a later one")
	})
	t.Run("two writes that made one revision", func(t *testing.T) {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 2)
		h.op(1, 5, 15, history.OpWrite, "b", "2", "2", 2)
		h.op(0, 20, 30, history.OpRead, "a", "", "1", 2)
		h.op(1, 20, 30, history.OpRead, "b", "", "2", 2)
		res := h.check(t)
		assert.Equal(t, Invalid, res.Verdict, res.Summary())
		assert.Equal(t, []string{KSDuplicateRevision}, res.AnomalyKinds())
	})
	t.Run("a history without revisions has no revision check", func(t *testing.T) {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 0)
		h.op(0, 20, 30, history.OpRead, "a", "", "1", 0)
		res := h.check(t)
		assert.Nil(t, res.Revision)
		assert.Equal(t, Valid, res.Verdict, res.Summary())
	})
}

// Simulated stores that record revisions (what the bench checks) are valid, and a read
// moved back below a revision acknowledged before it began is caught.
func TestRevisionCheckOnSimulatedStores(t *testing.T) {
	for _, w := range []string{"", "append", "set"} {
		cfg := simConfig{Seed: 21, Ops: 3000, Procs: 8, Info: 0.05, Keys: 4, OpsPerKey: 300, Workload: w, Revisions: true}
		events := simulate(cfg)
		model := Model(w)
		if w == "" {
			model = Register
		}
		res := Check(context.Background(), events, Options{Model: model, Timeout: time.Minute})
		require.NotNil(t, res.Revision, w)
		require.Equal(t, Valid, res.Verdict, "%q: %s\n%v", w, res.Summary(), res.Explanations())
		assert.Greater(t, res.Revision.Ops, 2000, w)
		// the last ok read: pull its revision below the highest acknowledged before it began
		var last *history.Event
		for i := range events {
			if e := &events[i]; e.Type == history.OK && e.F == history.OpRead && e.Rev > 2 {
				last = e
			}
		}
		require.NotNil(t, last, w)
		last.Rev = 1
		res = Check(context.Background(), events, Options{Model: model, Timeout: time.Minute})
		assert.Equal(t, Invalid, res.Verdict, "%q: %s", w, res.Summary())
		assert.Contains(t, res.AnomalyKinds(), KSRevisionOrder, w)
	}
}

// A run whose system answered little is flagged, whatever its verdict; answers about the
// data (a conflict, a mismatch) count as answers.
func TestLowAvailabilityIsAWarning(t *testing.T) {
	mk := func(unanswered int, err string) []history.Event {
		h := &revHistory{}
		h.op(0, 0, 10, history.OpWrite, "a", "1", "1", 0)
		h.op(0, 20, 30, history.OpRead, "a", "", "1", 0)
		for i := range unanswered {
			p := 10 + i
			h.events = append(h.events,
				history.Event{Time: int64(40 + i), Process: p, Type: history.Invoke, F: history.OpCAS, Key: "a", Value: history.L("x", "y")},
				history.Event{Time: int64(41 + i), Process: p, Type: history.Fail, F: history.OpCAS, Key: "a", Value: history.L("x", "y"), Error: err})
		}
		slices.SortStableFunc(h.events, func(a, b history.Event) int { return cmp.Compare(a.Time, b.Time) })
		for i := range h.events {
			h.events[i].Index = int64(i)
		}
		return h.events
	}
	res := Check(context.Background(), mk(8, "no leader"), Options{Model: Register, MinEvidence: 1})
	assert.Equal(t, Valid, res.Verdict, res.Summary())
	require.Len(t, res.Warnings, 1)
	assert.Equal(t, WarnLowAvailability, res.Warnings[0].Code)
	assert.Contains(t, res.Summary(), "warning: low availability: the system answered 20.0%")
	b, err := res.MarshalJSON()
	require.NoError(t, err)
	assert.Contains(t, string(b), `"warnings":[{"code":"low_availability"`)

	res = Check(context.Background(), mk(8, history.Mismatch), Options{Model: Register, MinEvidence: 1})
	assert.Empty(t, res.Warnings, "a mismatch is an answer")
	res = Check(context.Background(), mk(8, "no leader"), Options{Model: Register, MinEvidence: 1, MinAvailability: -1})
	assert.Empty(t, res.Warnings, "negative: no floor")
	res = Check(context.Background(), mk(1, "no leader"), Options{Model: Register, MinEvidence: 1})
	assert.Empty(t, res.Warnings, "two in three answered")
}
