package checker

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func readFixture(t *testing.T, name string) []history.Event {
	t.Helper()
	events, info, err := history.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	require.False(t, info.Torn)
	return events
}

func TestCompose(t *testing.T) {
	for _, tc := range []struct {
		in   []Verdict
		want Verdict
	}{
		{nil, Unknown},
		{[]Verdict{Valid}, Valid},
		{[]Verdict{Valid, Unknown}, Unknown},
		{[]Verdict{Unknown, Invalid, Valid}, Invalid},
		{[]Verdict{Valid, Valid}, Valid},
	} {
		assert.Equal(t, tc.want, Compose(tc.in...), "%v", tc.in)
	}
}

func TestFixtures(t *testing.T) {
	for _, tc := range []struct {
		file     string
		workload string
		want     Verdict
		explain  string // a piece of the first explanation, for invalid ones
	}{
		{"register-ok.jsonl", "register", Valid, ""},
		{"register-bad.jsonl", "register", Invalid, `read by process 2 at 0.050s–0.060s on n3 returned "a", but write by process 1 at 0.030s–0.040s on n2 wrote "b": it began after the write of "a" completed at 0.020s and completed before the read began, and no later write restores "a" (faults in force during it: start-partition [halves n1,n2 | n3] (0.012s–0.061s))`},
		{"append-ok.jsonl", "append", Valid, ""},
		{"append-bad.jsonl", "append", Invalid, "not a prefix"},
		{"set-ok.jsonl", "set", Valid, ""},
		{"set-bad.jsonl", "set", Invalid, `"b" was lost`},
		{"register-ok.jsonl", "", Valid, ""},
		{"set-bad.jsonl", "", Invalid, ""},
	} {
		t.Run(tc.file+"/"+tc.workload, func(t *testing.T) {
			res := Check(context.Background(), readFixture(t, tc.file), Options{Model: Model(tc.workload), Timeout: 10 * time.Second})
			assert.Equal(t, tc.want, res.Verdict, res.Summary())
			assert.Empty(t, res.Notes)
			if tc.explain != "" {
				require.NotEmpty(t, res.Explanations())
				assert.Contains(t, res.Explanations()[0], tc.explain)
			}
			b, err := json.Marshal(res)
			require.NoError(t, err)
			var back struct {
				Valid    Verdict                    `json:"valid"`
				Checkers map[string]json.RawMessage `json:"checkers"`
				Stats    map[string]any             `json:"stats"`
			}
			require.NoError(t, json.Unmarshal(b, &back), string(b))
			assert.Equal(t, tc.want, back.Valid)
			assert.NotEmpty(t, back.Checkers)
			assert.Contains(t, back.Stats, "availability")
		})
	}
}

func TestRegisterFixtureDetails(t *testing.T) {
	res := Check(context.Background(), readFixture(t, "register-ok.jsonl"), Options{Model: "register"})
	l := res.Linearizability
	require.NotNil(t, l)
	assert.Equal(t, 2, l.Keys)
	assert.Equal(t, 2, l.Dropped, "the unread info write and the info read")
	assert.Equal(t, 1, res.Stats.Counts["cas"][history.Fail])
	assert.Equal(t, 1, res.Stats.Faults)
	assert.False(t, res.CanVisualize())
	assert.ErrorIs(t, res.Visualize(&bytes.Buffer{}), ErrNoVisualization)
}

func TestFirstViolation(t *testing.T) {
	events := readFixture(t, "register-bad.jsonl")
	res := Check(context.Background(), events, Options{Model: "register"})
	at, ok := res.FirstViolation(events)
	require.True(t, ok)
	assert.Equal(t, 50*time.Millisecond, at, "the stale read of k1 was invoked at 50 ms")
	_, ok = Check(context.Background(), readFixture(t, "register-ok.jsonl"), Options{Model: "register"}).FirstViolation(events)
	assert.False(t, ok, "a valid history has none")
}

func TestSetFixtureDetails(t *testing.T) {
	res := Check(context.Background(), readFixture(t, "set-ok.jsonl"), Options{Model: "set"})
	s := res.Set
	require.NotNil(t, s)
	assert.Equal(t, 2, s.OK)
	assert.Equal(t, []string{"c"}, s.Recovered)
	assert.Equal(t, []string{"d"}, s.NeverRead)
	assert.Empty(t, s.Lost)
}

func TestVisualizationOfAViolation(t *testing.T) {
	res := Check(context.Background(), readFixture(t, "register-bad.jsonl"), Options{Model: "register"})
	require.Equal(t, Invalid, res.Verdict)
	assert.Equal(t, []string{"linearizability"}, res.AnomalyKinds(), "a check without kinds is named")
	require.True(t, res.CanVisualize())
	var b bytes.Buffer
	require.NoError(t, res.Visualize(&b))
	assert.Contains(t, b.String(), "start-partition")
	assert.Contains(t, b.String(), `read() -\u003e \"a\"`)
	require.Len(t, res.Linearizability.Failures, 1)
	assert.Equal(t, "k1", res.Linearizability.Failures[0].Key)
	assert.Equal(t, int64(10), res.Linearizability.Failures[0].Op)
}

func TestUnknownWithoutData(t *testing.T) {
	res := Check(context.Background(), nil, Options{Model: "register"})
	assert.Equal(t, Unknown, res.Verdict)
	// A set with adds and no read proves nothing.
	ev := readFixture(t, "set-ok.jsonl")
	var noRead []history.Event
	for _, e := range ev {
		if e.F != "read" {
			noRead = append(noRead, e)
		}
	}
	res = Check(context.Background(), noRead, Options{Model: "set"})
	assert.Equal(t, Unknown, res.Verdict)
	assert.Equal(t, []string{"s"}, res.Set.NoFinalRead)
}

func TestSimulatedStore(t *testing.T) {
	for _, cfg := range []simConfig{
		{Seed: 1, Ops: 2000, Procs: 10, Info: 0.05, OpsPerKey: 100},
		{Seed: 2, Ops: 1000, Procs: 5, Info: 0.05},
		{Seed: 3, Ops: 3000, Procs: 20, Info: 0.1, OpsPerKey: 200},
		{Seed: 4, Ops: 500, Procs: 3, Info: 0},
	} {
		events := simulate(cfg)
		res := Check(context.Background(), events, Options{Model: "register", Timeout: time.Minute})
		require.Equal(t, Valid, res.Verdict, "seed %d: %s", cfg.Seed, res.Summary())
		assert.Empty(t, res.Notes)

		idx := makeStale(events)
		require.GreaterOrEqual(t, idx, int64(0), "seed %d has a read to make stale", cfg.Seed)
		res = Check(context.Background(), events, Options{Model: "register", Timeout: time.Minute})
		require.Equal(t, Invalid, res.Verdict, "seed %d with a stale read", cfg.Seed)
		require.Len(t, res.Linearizability.Failures, 1)
		f := res.Linearizability.Failures[0]
		assert.Contains(t, f.Explanation, "completed before the read began")
		assert.Equal(t, idx, f.Op, f.Explanation)
	}
}

func TestTimeoutIsUnknown(t *testing.T) {
	// One key, many concurrent indeterminate writes that were all read: a hard search.
	events := hardHistory(22)
	res := Check(context.Background(), events, Options{Model: "register", Timeout: time.Millisecond})
	assert.Equal(t, Unknown, res.Verdict, res.Summary())
	assert.Equal(t, []string{"k"}, res.Linearizability.UnknownKeys)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = Check(ctx, events, Options{Model: "register"})
	assert.Equal(t, Unknown, res.Verdict, "a cancelled check is unknown")
}

// hardHistory has n concurrent info writes, each read once by a later read, in an order
// that no linearization can produce, so porcupine must search every order.
func hardHistory(n int) []history.Event {
	var ev []history.Event
	add := func(e history.Event) { e.Index = int64(len(ev)); ev = append(ev, e) }
	for i := range n {
		add(history.Event{Time: 1, Process: i, Type: history.Invoke, F: "write", Key: "k", Value: history.S1(string(rune('a' + i)))})
		add(history.Event{Time: 2, Process: i, Type: history.Info, F: "write", Key: "k", Value: history.S1(string(rune('a' + i)))})
	}
	for i := range n {
		p := 100 + i
		v := history.S1(string(rune('a' + (i*3)%n)))
		add(history.Event{Time: int64(10 + 10*i), Process: p, Type: history.Invoke, F: "read", Key: "k"})
		add(history.Event{Time: int64(15 + 10*i), Process: p, Type: history.OK, F: "read", Key: "k", Value: v})
	}
	add(history.Event{Time: 1000, Process: 999, Type: history.Invoke, F: "read", Key: "k"})
	add(history.Event{Time: 1001, Process: 999, Type: history.OK, F: "read", Key: "k", Value: history.S1("zz")})
	return ev
}

func TestSimulatedListsAndSets(t *testing.T) {
	for _, cfg := range []simConfig{
		{Seed: 11, Ops: 1500, Procs: 10, Info: 0.05, OpsPerKey: 100, Workload: "append"},
		{Seed: 12, Ops: 400, Procs: 5, Info: 0.1, Workload: "append"},
		{Seed: 13, Ops: 2000, Procs: 10, Info: 0.05, OpsPerKey: 500, Workload: "set"},
		{Seed: 14, Ops: 500, Procs: 4, Info: 0.1, Workload: "set"},
	} {
		events := simulate(cfg)
		res := Check(context.Background(), events, Options{Model: Model(cfg.Workload), Timeout: time.Minute})
		require.Equal(t, Valid, res.Verdict, "seed %d: %s", cfg.Seed, res.Summary())
		assert.Empty(t, res.Notes)
		require.GreaterOrEqual(t, corrupt(events, cfg.Workload), int64(0), "seed %d", cfg.Seed)
		res = Check(context.Background(), events, Options{Model: Model(cfg.Workload), Timeout: time.Minute})
		assert.Equal(t, Invalid, res.Verdict, "seed %d with a lost element: %s", cfg.Seed, res.Summary())
		assert.Contains(t, res.AnomalyKinds(), cfg.Workload, "seed %d", cfg.Seed)
	}
}

// ev builds a history from (time, process, type, f, key, value) rows.
func ev(rows ...[]any) []history.Event {
	out := make([]history.Event, len(rows))
	for i, r := range rows {
		e := history.Event{Index: int64(i), Time: int64(r[0].(int)), Process: r[1].(int), Type: history.Type(r[2].(string)), F: r[3].(string), Key: r[4].(string)}
		switch v := r[5].(type) {
		case string:
			e.Value = history.S1(v)
		case []string:
			e.Value = history.L(v...)
		}
		out[i] = e
	}
	return out
}

func TestListLinearizabilityBeyondTheAppendChecker(t *testing.T) {
	// A is acknowledged before X begins; a read concurrent with A returns [x]: it saw X
	// but not A, which preceded X. No element is lost or reordered by the append
	// checker's rules, yet no order of the operations explains the read.
	events := ev(
		[]any{10, 0, "invoke", "append", "k", "a"},
		[]any{15, 1, "invoke", "read", "k", nil},
		[]any{20, 0, "ok", "append", "k", "a"},
		[]any{30, 2, "invoke", "append", "k", "x"},
		[]any{40, 2, "ok", "append", "k", "x"},
		[]any{50, 1, "ok", "read", "k", []string{"x"}},
	)
	res := Check(context.Background(), events, Options{Model: "append", Timeout: 10 * time.Second})
	assert.Equal(t, Valid, res.Append.Verdict)
	assert.Equal(t, Invalid, res.Linearizability.Verdict)
	assert.Equal(t, Invalid, res.Verdict)
	require.Len(t, res.Linearizability.Failures, 1)
	assert.Contains(t, res.Linearizability.Failures[0].Explanation, `holds "x" but not "a"`)
	var html bytes.Buffer
	require.NoError(t, res.Visualize(&html))
	assert.Contains(t, html.String(), "append(x)")
}

func TestMalformedOperationsNeverCryWolf(t *testing.T) {
	// A write whose value is a list is ignored, with a note; the read of what it wrote
	// then looks impossible, so the key is unknown, not invalid.
	events := ev(
		[]any{10, 0, "invoke", "write", "k", []string{"a", "b"}},
		[]any{20, 0, "ok", "write", "k", []string{"a", "b"}},
		[]any{30, 1, "invoke", "read", "k", nil},
		[]any{40, 1, "ok", "read", "k", "a"},
		[]any{50, 2, "ok", "read", "k", "a"},
	)
	res := Check(context.Background(), events, Options{Model: "register"})
	assert.Equal(t, Unknown, res.Verdict, res.Summary())
	assert.Len(t, res.Notes, 2, "the completion without an invoke and the odd write: %v", res.Notes)
	assert.Equal(t, []string{"k"}, res.Linearizability.UnknownKeys)
}

func TestVerdictJSON(t *testing.T) {
	for v, js := range map[Verdict]string{Valid: "true", Invalid: "false", Unknown: `"unknown"`} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		assert.Equal(t, js, string(b))
		var back Verdict
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, v, back)
	}
	var v Verdict
	assert.Error(t, json.Unmarshal([]byte(`3`), &v))
}

func TestManyFailingKeys(t *testing.T) {
	base := readFixture(t, "register-bad.jsonl")
	var events []history.Event
	for i := range 12 {
		for _, e := range base {
			if e.IsNemesis() {
				continue
			}
			e.Key += "-" + string(rune('a'+i))
			e.Process += 10 * i
			e.Time += int64(i) * 1e9
			e.Index = int64(len(events))
			events = append(events, e)
		}
	}
	res := Check(context.Background(), events, Options{Model: "register", Timeout: 10 * time.Second})
	require.Equal(t, Invalid, res.Verdict)
	require.Len(t, res.Linearizability.Failures, 12)
	for _, f := range res.Linearizability.Failures {
		assert.Contains(t, f.Explanation, "completed before the read began", f.Key)
	}
	assert.Len(t, res.viz.info.PartialLinearizations(), maxExplained, "only the first keys are drawn")
}

func TestJepsenEtcdLogs(t *testing.T) {
	// Both logs are known not linearizable (porcupine's and knossos's test data).
	for _, name := range []string{"etcd_000.log", "etcd_001.log"} {
		f, err := os.Open(filepath.Join("..", "history", "testdata", name))
		require.NoError(t, err)
		events, _, err := history.ReadJepsenLog(f)
		f.Close()
		require.NoError(t, err)
		res := Check(context.Background(), events, Options{Timeout: time.Minute})
		assert.Equal(t, "register", string(res.Model))
		assert.Equal(t, Invalid, res.Verdict, name)
		assert.True(t, res.Stats.Untimed, "a log has no times")
		require.Len(t, res.Linearizability.Failures, 1)
		assert.Contains(t, res.Linearizability.Failures[0].Explanation, "(events ")
		assert.NotContains(t, res.Linearizability.Failures[0].Explanation, "0.000s")
	}
}

func TestSetElementSeenThenLost(t *testing.T) {
	// An indeterminate add is read once, then missing from the final read: lost, even
	// though it was never acknowledged.
	events := ev(
		[]any{10, 0, "invoke", "add", "s", "a"},
		[]any{20, 0, "info", "add", "s", "a"},
		[]any{30, 1, "invoke", "read", "s", nil},
		[]any{40, 1, "ok", "read", "s", []string{"a"}},
		[]any{50, 2, "invoke", "read", "s", nil},
		[]any{60, 2, "ok", "read", "s", []string{}},
	)
	res := Check(context.Background(), events, Options{Model: "set"})
	assert.Equal(t, Invalid, res.Verdict)
	assert.Equal(t, []string{"a"}, res.Set.Lost)
	assert.Contains(t, res.Explanations()[0], "the read by process 1 at 0.000s–0.000s had returned it")
}

func TestAppendElementSeenThenLost(t *testing.T) {
	events := ev(
		[]any{10, 0, "invoke", "append", "l", "a"},
		[]any{12, 1, "invoke", "append", "l", "b"},
		[]any{20, 0, "ok", "append", "l", "a"},
		[]any{22, 1, "info", "append", "l", "b"},
		[]any{30, 2, "invoke", "read", "l", nil},
		[]any{40, 2, "ok", "read", "l", []string{"a", "b"}},
		[]any{50, 3, "invoke", "read", "l", nil},
		[]any{60, 3, "ok", "read", "l", []string{"a"}},
	)
	res := Check(context.Background(), events, Options{Model: "append"})
	assert.Equal(t, Invalid, res.Append.Verdict)
	assert.Equal(t, []string{"l/b"}, res.Append.Lost)
	assert.Equal(t, Invalid, res.Linearizability.Verdict)
}

func TestContradictoryListReadsFailWithoutSearch(t *testing.T) {
	// Sixty concurrent appends, read in two orders: the naive search would take ages.
	var rows [][]any
	var forward, backward []string
	for i := range 60 {
		e := fmt.Sprintf("e%d", i)
		rows = append(rows, []any{1, i, "invoke", "append", "l", e}, []any{2, i, "ok", "append", "l", e})
		forward = append(forward, e)
		backward = append([]string{e}, backward...)
	}
	rows = append(rows,
		[]any{3, 100, "invoke", "read", "l", nil}, []any{4, 100, "ok", "read", "l", forward},
		[]any{5, 101, "invoke", "read", "l", nil}, []any{6, 101, "ok", "read", "l", backward},
		[]any{7, 102, "invoke", "read", "l", nil}, []any{8, 102, "ok", "read", "l", []string{"e1", "e1"}})
	start := time.Now()
	res := Check(context.Background(), ev(rows...), Options{Model: "append", Timeout: time.Minute})
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.Equal(t, Invalid, res.Linearizability.Verdict)
	require.Len(t, res.Linearizability.Failures, 1)
	assert.Contains(t, res.Linearizability.Failures[0].Explanation, "not a prefix")
	assert.Contains(t, res.Linearizability.Failures[0].Explanation, "[e59 e58 e57 … (54 more) … e2 e1 e0]")
	assert.False(t, res.CanVisualize())
	assert.Equal(t, []string{"l/e1"}, res.Append.Duplicated)
}

func TestAddExternal(t *testing.T) {
	valid := func() Result { return Result{Verdict: Valid} }
	r := valid()
	r.AddExternal(External{Name: "hashkv", Verdict: Valid, Detail: "5 members agree"})
	assert.Equal(t, Valid, r.Verdict)
	r.AddExternal(External{Name: "other", Verdict: Unknown, Detail: "n3 did not answer"})
	assert.Equal(t, Unknown, r.Verdict, "a check that could not tell is no pass")
	assert.Contains(t, r.Why(), "n3 did not answer")
	r.AddExternal(External{Name: "hashkv2", Verdict: Invalid, Detail: "n1 and n2 differ"})
	assert.Equal(t, Invalid, r.Verdict, "a divergence found outside the history is a violation")
	assert.Empty(t, r.UnknownBecause)
	assert.Contains(t, r.Explanations(), "hashkv2: n1 and n2 differ")
	b, err := json.Marshal(r)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"hashkv":{"valid":true,"detail":"5 members agree"}`)
	r = Result{Verdict: Invalid}
	r.AddExternal(External{Name: "x", Verdict: Unknown, Detail: "?"})
	assert.Equal(t, Invalid, r.Verdict, "an unknown never hides a violation")
}

// Simulated histories with several keys active at once, as in a run, are valid too.
func TestSimulatedStoreWithActiveKeys(t *testing.T) {
	for _, cfg := range []simConfig{
		{Seed: 21, Ops: 3000, Procs: 20, Info: 0.05, Keys: 8, OpsPerKey: 200},
		{Seed: 22, Ops: 2000, Procs: 10, Info: 0.05, Keys: 4, OpsPerKey: 100, Workload: "set"},
	} {
		events := simulate(cfg)
		keys := map[string]bool{}
		for _, e := range events {
			keys[e.Key] = true
		}
		assert.Greater(t, len(keys), cfg.Ops/cfg.OpsPerKey, "keys rotate")
		res := Check(context.Background(), events, Options{Model: Model(cmp.Or(cfg.Workload, "register")), Timeout: time.Minute})
		require.Equal(t, Valid, res.Verdict, "seed %d: %s", cfg.Seed, res.Summary())
	}
}

// A check that cannot finish stops on time: no more than a second past its deadline,
// saying unknown and naming every key it could not decide.
func TestACheckStopsOnTime(t *testing.T) {
	var events []history.Event
	for _, key := range []string{"a", "b", "c", "d"} {
		for _, e := range hardHistory(22) {
			e.Key, e.Process = key, e.Process+1000*int(key[0]-'a')
			events = append(events, e)
		}
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	t0 := time.Now()
	res := Check(context.Background(), events, Options{Model: "register", Timeout: time.Second})
	took := time.Since(t0)
	assert.Equal(t, Unknown, res.Verdict, res.Summary())
	assert.ElementsMatch(t, []string{"a", "b", "c", "d"}, res.Linearizability.UnknownKeys)
	assert.Less(t, took, 2*time.Second, "a 1 s check took %v", took)
}

// Explaining a key proved illegal keeps to the check's deadline too (it was given the
// whole time limit again, and at least 10 s).
func TestExplainingKeepsToTheDeadline(t *testing.T) {
	p := pairOps(hardHistory(22))
	keys := keyHistories("register", p.ops, p.ignored.keys)
	for i := range keys {
		keys[i].prepare(nil)
	}
	t0 := time.Now()
	explainFailures(context.Background(), linJob{model: "register", keys: keys, timeout: time.Millisecond,
		deadline: time.Now()}, registerModel, keys, &LinResult{}, nil)
	assert.Less(t, time.Since(t0), explainGrace+time.Second)
}
