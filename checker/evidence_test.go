package checker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// trustHistories are the two histories of the acceptance script: 3 processes each
// invoking 5 writes of key "a" that all fail, and 3 processes each invoking one write
// that ends indeterminate, with nothing read.
func trustHistories() (allFail, allInfo []history.Event) {
	add := func(h *[]history.Event, e history.Event) {
		e.Index, e.Time = int64(len(*h)), int64(len(*h))*1000
		*h = append(*h, e)
	}
	for p := range 3 {
		for k := range 5 {
			v := history.S1(fmt.Sprintf("v%d%d", p, k))
			add(&allFail, history.Event{Process: p, Type: history.Invoke, F: "write", Key: "a", Value: v})
			add(&allFail, history.Event{Process: p, Type: history.Fail, F: "write", Key: "a", Value: v, Error: "unavailable"})
		}
		v := history.S1(fmt.Sprintf("w%d", p))
		add(&allInfo, history.Event{Process: p, Type: history.Invoke, F: "write", Key: "a", Value: v})
		add(&allInfo, history.Event{Process: p, Type: history.Info, F: "write", Key: "a", Value: v, Error: "timeout"})
	}
	return allFail, allInfo
}

func TestNoEvidenceIsUnknown(t *testing.T) {
	allFail, allInfo := trustHistories()
	for _, tc := range []struct {
		name     string
		workload string
		events   []history.Event
	}{
		{"every write failed", "register", allFail},
		{"every write indeterminate, nothing read", "register", allInfo},
		{"writes acknowledged, nothing read", "register", ev(
			[]any{10, 0, "invoke", "write", "k", "a"},
			[]any{20, 0, "ok", "write", "k", "a"},
			[]any{30, 1, "invoke", "read", "k", nil},
			[]any{40, 1, "info", "read", "k", nil},
		)},
		{"reads only, every write failed", "register", ev(
			[]any{10, 0, "invoke", "write", "k", "a"},
			[]any{20, 0, "fail", "write", "k", "a"},
			[]any{30, 1, "invoke", "read", "k", nil},
			[]any{40, 1, "ok", "read", "k", nil},
		)},
		{"appends indeterminate, an empty read", "append", ev(
			[]any{10, 0, "invoke", "append", "l", "a"},
			[]any{20, 0, "info", "append", "l", "a"},
			[]any{30, 1, "invoke", "read", "l", nil},
			[]any{40, 1, "ok", "read", "l", []string{}},
		)},
		{"adds failed, an empty read", "set", ev(
			[]any{10, 0, "invoke", "add", "s", "a"},
			[]any{20, 0, "fail", "add", "s", "a"},
			[]any{30, 1, "invoke", "read", "s", nil},
			[]any{40, 1, "ok", "read", "s", []string{}},
		)},
		{"adds only failed", "set", ev(
			[]any{10, 0, "invoke", "add", "s", "a"},
			[]any{20, 0, "fail", "add", "s", "a"},
		)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Check(context.Background(), tc.events, Options{Model: Model(tc.workload)})
			assert.Equal(t, Unknown, res.Verdict, res.Summary())
			require.NotEmpty(t, res.UnknownBecause)
			assert.Equal(t, ReasonNoEvidence, res.UnknownBecause[0].Code, "the most fundamental reason first: %v", res.UnknownBecause)
			assert.True(t, strings.HasPrefix(res.Summary(), "unknown: "+res.UnknownBecause[0].Detail), res.Summary())
			b, err := json.Marshal(res)
			require.NoError(t, err)
			var back struct {
				Valid          Verdict  `json:"valid"`
				UnknownBecause []Reason `json:"unknown_because"`
			}
			require.NoError(t, json.Unmarshal(b, &back))
			assert.Equal(t, Unknown, back.Valid)
			assert.Equal(t, res.UnknownBecause, back.UnknownBecause)
		})
	}
	res := Check(context.Background(), allFail, Options{Model: "register"})
	assert.Equal(t, "no acknowledged write and no acknowledged read: 0 of 15 ops were acknowledged (15 failed)", res.Why())
	res = Check(context.Background(), allInfo, Options{Model: "register"})
	assert.Equal(t, []string{ReasonNoEvidence, ReasonUnreadKeys}, codes(res.UnknownBecause))
	assert.Equal(t, "no acknowledged write and no acknowledged read: 0 of 3 ops were acknowledged (3 indeterminate)", res.UnknownBecause[0].Detail)
	res = Check(context.Background(), nil, Options{Model: "register"})
	assert.Equal(t, "no client operations in the history", res.Why())
}

func codes(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

func TestValidHasNoReasons(t *testing.T) {
	res := Check(context.Background(), readFixture(t, "register-ok.jsonl"), Options{Model: "register"})
	require.Equal(t, Valid, res.Verdict)
	assert.Empty(t, res.UnknownBecause)
	assert.Empty(t, res.Why())
	assert.False(t, strings.HasPrefix(res.Summary(), "unknown"))
	b, err := json.Marshal(res)
	require.NoError(t, err)
	assert.NotContains(t, string(b), "unknown_because")
}

func TestMakeUnknown(t *testing.T) {
	res := Check(context.Background(), readFixture(t, "register-ok.jsonl"), Options{Model: "register"})
	res.MakeUnknown(ReasonInterrupted, "the check was interrupted")
	assert.Equal(t, Unknown, res.Verdict)
	assert.Equal(t, []Reason{{ReasonInterrupted, "the check was interrupted"}}, res.UnknownBecause)
	res = Check(context.Background(), readFixture(t, "register-bad.jsonl"), Options{Model: "register"})
	res.MakeUnknown(ReasonInterrupted, "the check was interrupted")
	assert.Equal(t, Invalid, res.Verdict, "a violation found stays found")
	assert.Empty(t, res.UnknownBecause)
}

func TestEvidenceFloorIsConfigurable(t *testing.T) {
	events := ev(
		[]any{10, 0, "invoke", "write", "k", "a"},
		[]any{20, 0, "ok", "write", "k", "a"},
		[]any{30, 1, "invoke", "read", "k", nil},
		[]any{40, 1, "ok", "read", "k", "a"},
	)
	assert.Equal(t, Valid, Check(context.Background(), events, Options{Model: "register"}).Verdict)
	res := Check(context.Background(), events, Options{Model: "register", MinEvidence: 2})
	assert.Equal(t, Unknown, res.Verdict, res.Summary())
	assert.Equal(t, "only 1 acknowledged write, want at least 2 and only 1 acknowledged read, want at least 2: 2 of 2 ops were acknowledged", res.Why())
	assert.Equal(t, Valid, Check(context.Background(), events, Options{Model: "register", MinEvidence: -3}).Verdict, "below 1 is the default")
	// A successful cas is both a write and a read: it saw the value it expected.
	events = append(events, ev(
		[]any{50, 2, "invoke", "cas", "k", []string{"a", "b"}},
		[]any{60, 2, "ok", "cas", "k", []string{"a", "b"}},
	)...)
	for i := range events {
		events[i].Index = int64(i)
	}
	res = Check(context.Background(), events, Options{Model: "register", MinEvidence: 2})
	assert.Equal(t, Valid, res.Verdict, res.Summary())
}

func TestInvalidIsNeverDowngradedForLackOfEvidence(t *testing.T) {
	// No write was acknowledged, but a read returned a value no write ever wrote.
	events := ev(
		[]any{10, 0, "invoke", "write", "k", "a"},
		[]any{20, 0, "fail", "write", "k", "a"},
		[]any{30, 1, "invoke", "read", "k", nil},
		[]any{40, 1, "ok", "read", "k", "z"},
	)
	res := Check(context.Background(), events, Options{Model: "register"})
	assert.Equal(t, Invalid, res.Verdict, res.Summary())
}

func TestUnreadKeyIsUnknown(t *testing.T) {
	// Key k1 is written and read; k2 is written and never read: it proves nothing.
	for _, w := range []string{"register", "append"} {
		f := map[string]string{"register": "write", "append": "append"}[w]
		read := any("a")
		if w == "append" {
			read = []string{"a"}
		}
		events := ev(
			[]any{10, 0, "invoke", f, "k1", "a"},
			[]any{20, 0, "ok", f, "k1", "a"},
			[]any{30, 1, "invoke", "read", "k1", nil},
			[]any{40, 1, "ok", "read", "k1", read},
			[]any{50, 2, "invoke", f, "k2", "b"},
			[]any{60, 2, "ok", f, "k2", "b"},
		)
		res := Check(context.Background(), events, Options{Model: Model(w)})
		assert.Equal(t, Unknown, res.Verdict, "%s: %s", w, res.Summary())
		assert.Equal(t, []string{"k2"}, res.Linearizability.UnreadKeys)
		assert.Equal(t, []string{ReasonUnreadKeys}, codes(res.UnknownBecause))
		assert.Equal(t, `1 key was written but never read ("k2"): nothing is known of it`, res.Why())
	}
}

func TestIgnoredOperationsAreNeverValid(t *testing.T) {
	ok := [][]any{
		{10, 0, "invoke", "write", "k", "a"},
		{20, 0, "ok", "write", "k", "a"},
		{30, 1, "invoke", "read", "k", nil},
		{40, 1, "ok", "read", "k", "a"},
	}
	for _, tc := range []struct {
		name     string
		workload string
		why      string
		extra    [][]any
	}{
		{"a write of a list", "register", whyShape, [][]any{{50, 2, "invoke", "write", "k", []string{"x", "y"}}, {60, 2, "ok", "write", "k", []string{"x", "y"}}}},
		{"a completion without an invoke", "register", whyNoInvoke, [][]any{{50, 2, "ok", "write", "k", "b"}}},
		{"a completion without an invoke on another key", "register", whyNoInvoke, [][]any{{50, 2, "ok", "write", "other", "b"}}},
		{"an operation of another workload", "register", whyForeign, [][]any{{50, 2, "invoke", "add", "k", "b"}, {60, 2, "ok", "add", "k", "b"}}},
		{"a completion of another operation", "register", whyMispaired, [][]any{{50, 2, "invoke", "read", "k", nil}, {60, 2, "ok", "write", "k", "a"}}},
		{"an invoke on a process in flight", "register", whyReinvoked, [][]any{{50, 2, "invoke", "read", "k", nil}, {55, 2, "invoke", "read", "k", nil}, {60, 2, "ok", "read", "k", "a"}}},
		{"a completion timed before its invoke", "register", whyTimedBefore, [][]any{{50, 2, "invoke", "read", "k", nil}, {45, 2, "ok", "read", "k", "a"}}},
		{"register operations in a set history", "set", "", [][]any{{50, 2, "invoke", "add", "k", "b"}, {60, 2, "ok", "add", "k", "b"}, {70, 3, "invoke", "read", "k", nil}, {80, 3, "ok", "read", "k", []string{"b"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Check(context.Background(), ev(append(append([][]any{}, ok...), tc.extra...)...), Options{Model: Model(tc.workload), Timeout: 10 * time.Second})
			assert.Equal(t, Unknown, res.Verdict, res.Summary())
			assert.NotEmpty(t, res.Notes)
			assert.Equal(t, []string{ReasonMalformedOps}, codes(res.UnknownBecause))
			if tc.why != "" {
				assert.True(t, strings.HasPrefix(res.Why(), "1 operation could not be interpreted: 1 × "+tc.why), res.Why())
			} else {
				assert.Equal(t, "2 operations could not be interpreted: 1 × "+whyForeign+", 1 × "+whyShape+" (see notes)", res.Why())
			}
		})
	}
}

func TestMispairedCompletionNeverCriesWolf(t *testing.T) {
	// The completion of process 1 names a write, its invoke a read: the ok cannot be
	// taken as the read's answer ("b" was never written, which would look invalid).
	events := ev(
		[]any{10, 0, "invoke", "write", "k", "a"},
		[]any{20, 0, "ok", "write", "k", "a"},
		[]any{30, 1, "invoke", "read", "k", nil},
		[]any{40, 1, "ok", "write", "k", "b"},
		[]any{50, 2, "invoke", "read", "k", nil},
		[]any{60, 2, "ok", "read", "k", "a"},
	)
	res := Check(context.Background(), events, Options{Model: "register"})
	assert.Equal(t, Unknown, res.Verdict, res.Summary())
}

// hardAcknowledged is hardHistory with an acknowledged write before it, so that it
// holds the evidence the floor asks for.
func hardAcknowledged() []history.Event {
	events := append([]history.Event{
		{Time: 0, Process: 998, Type: history.Invoke, F: "write", Key: "k", Value: history.S1("first")},
		{Time: 0, Process: 998, Type: history.OK, F: "write", Key: "k", Value: history.S1("first")},
	}, hardHistory(22)...)
	for i := range events {
		events[i].Index = int64(i)
	}
	return events
}

func TestUndecidedKeysSayWhy(t *testing.T) {
	res := Check(context.Background(), hardAcknowledged(), Options{Model: "register", Timeout: time.Millisecond})
	require.Equal(t, Unknown, res.Verdict, res.Summary())
	assert.Equal(t, []Reason{{ReasonUndecidedKeys, "1 key was not decided: the search ran out of time"}}, res.UnknownBecause)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = Check(ctx, hardAcknowledged(), Options{Model: "register"})
	assert.Equal(t, "1 key was not decided: the check was cancelled", res.Why())

	res = Check(context.Background(), readFixture(t, "register-ok.jsonl"), Options{Model: "queue"})
	assert.Contains(t, codes(res.UnknownBecause), ReasonUnknownWorkload)
}

func TestMalformedKeySkipsTheSearch(t *testing.T) {
	// The key's ops would take ages to search; one malformed op decides it unknown
	// before any search.
	events := hardAcknowledged()
	events = append(events, history.Event{Index: int64(len(events)), Time: 2000, Process: 5000, Type: history.OK, F: "write", Key: "k", Value: history.S1("q")})
	start := time.Now()
	res := Check(context.Background(), events, Options{Model: "register", Timeout: time.Minute})
	assert.Less(t, time.Since(start), 10*time.Second)
	assert.Equal(t, Unknown, res.Verdict)
	assert.Equal(t, []string{"k"}, res.Linearizability.UnknownKeys)
	assert.Equal(t, 1, res.Linearizability.Ignored)
	assert.Equal(t, []string{ReasonMalformedOps}, codes(res.UnknownBecause))
}
