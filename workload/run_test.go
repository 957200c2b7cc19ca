package workload

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

func TestRunWellFormed(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		latency   time.Duration
		lost      float64
		wantInfo  bool
		keyPrefix string
	}{
		{name: "register", cfg: Config{Workload: "register", Concurrency: 5, Keys: 3, OpsPerKey: 20}, keyPrefix: "r"},
		{name: "register latency lost", cfg: Config{Workload: "register", Concurrency: 8, Keys: 2, OpsPerKey: 30},
			latency: 2 * time.Millisecond, lost: 0.1, wantInfo: true, keyPrefix: "r"},
		{name: "append", cfg: Config{Workload: "append", Concurrency: 4, Keys: 2, OpsPerKey: 25}, keyPrefix: "a"},
		{name: "append lost", cfg: Config{Workload: "append", Concurrency: 4, OpsPerKey: 10},
			latency: time.Millisecond, lost: 0.2, wantInfo: true, keyPrefix: "a"},
		{name: "set", cfg: Config{Workload: "set", Concurrency: 3, Keys: 3, OpsPerKey: 5}, keyPrefix: "s"},
		{name: "defaults", cfg: Config{}, latency: time.Millisecond, keyPrefix: "r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := NewSimStore(7)
			store.Latency, store.Lost = tc.latency, tc.lost
			cfg := tc.cfg
			cfg.TimeLimit, cfg.Seed, cfg.Progress = 200*time.Millisecond, 42, NewProgress()
			rec := newRecorder()
			stats, err := Run(context.Background(), cfg, store.Opener(3), rec)
			require.NoError(t, err)
			events := rec.Events()
			wellFormed(t, events)

			byType, byKey := counts(events)
			require.Positive(t, byType[history.OK])
			assert.Equal(t, byType[history.OK], stats.OK)
			assert.Equal(t, byType[history.Fail], stats.Fail)
			assert.Equal(t, byType[history.Info], stats.Info)
			assert.Equal(t, stats, cfg.Progress.Stats(), "progress and stats agree")
			assert.Equal(t, tc.wantInfo, byType[history.Info] > 0, "info ops")
			assert.ElementsMatch(t, keysOf(byKey), stats.Keys)

			n, _ := cfg.normalize()
			for key, ops := range byKey {
				assert.Regexp(t, "^"+tc.keyPrefix+"[0-9]+$", key)
				if n.Workload != "set" {
					assert.LessOrEqual(t, ops, n.OpsPerKey, "key %s not retired", key)
				} else {
					num, _ := strconv.Atoi(key[1:])
					assert.Less(t, num, n.Keys, "set keys never rotate")
				}
			}
			if n.Workload != "set" && byType[history.Invoke] > int64(2*n.Keys*n.OpsPerKey) {
				assert.Greater(t, len(byKey), n.Keys, "keys rotate")
			}
		})
	}
}

func keysOf(m map[string]int) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// TestRegisterReadsAndCas checks the register mix against the linearizable store: a
// read sees a value some write or cas put there, and some cas operations succeed.
func TestRegisterReadsAndCas(t *testing.T) {
	store := NewSimStore(1)
	rec := newRecorder()
	cfg := Config{Workload: "register", Concurrency: 4, Keys: 2, OpsPerKey: 100, TimeLimit: 150 * time.Millisecond, Seed: 3}
	_, err := Run(context.Background(), cfg, store.Opener(3), rec)
	require.NoError(t, err)
	written := map[string]map[string]bool{}
	casOK, casFail, reads := 0, 0, 0
	for _, e := range rec.Events() {
		if v, ok := newValue(e); ok && e.Type == history.Invoke {
			if written[e.Key] == nil {
				written[e.Key] = map[string]bool{}
			}
			written[e.Key][v] = true
		}
		switch {
		case e.F == "read" && e.Type == history.OK && !e.Value.IsNone():
			reads++
			assert.True(t, written[e.Key][e.Value.S], "read %v of %s was never written", e.Value, e.Key)
		case e.F == "cas" && e.Type == history.OK:
			casOK++
		case e.F == "cas" && e.Type == history.Fail:
			casFail++
			assert.Equal(t, "mismatch", e.Error)
		}
	}
	assert.Positive(t, reads)
	assert.Positive(t, casOK, "some cas succeeds")
	assert.Positive(t, casFail, "some cas mismatches")
}

// invokes returns, per worker, the invokes of a run with concurrency c.
func invokes(events []history.Event, c int) [][]history.Event {
	per := make([][]history.Event, c)
	for _, e := range events {
		if e.Type == history.Invoke {
			per[e.Process%c] = append(per[e.Process%c], e)
		}
	}
	return per
}

// prefixEqual asserts that the shorter of a and b (projected by f) is a prefix of the
// longer, and that it is at least min long.
func prefixEqual[T comparable](t *testing.T, a, b []history.Event, minLen int, f func(history.Event) T) {
	t.Helper()
	n := min(len(a), len(b))
	require.GreaterOrEqual(t, n, minLen, "too few ops to compare")
	for i := range n {
		require.Equal(t, f(a[i]), f(b[i]), "op %d", i)
	}
}

func TestSeededDeterminism(t *testing.T) {
	type full struct {
		P    int
		F    string
		Key  string
		V    string
		Type history.Type
	}
	project := func(e history.Event) full { return full{e.Process, e.F, e.Key, e.Value.String(), e.Type} }
	// Each run is in a bubble of its own (synthetic time): a busy machine changes
	// nothing, and the store's latencies are what moves the clock.
	run := func(t *testing.T, cfg Config, latency time.Duration) []history.Event {
		var events []history.Event
		synctest.Test(t, func(t *testing.T) {
			store := NewSimStore(cfg.Seed)
			store.Latency = latency
			rec := newRecorder()
			_, err := Run(context.Background(), cfg, store.Opener(3), rec)
			require.NoError(t, err)
			// the workers' events: the kubernetes workload's long watches run beside
			// them, interleaved as the scheduler pleases
			events = slices.DeleteFunc(rec.Events(), func(e history.Event) bool { return e.Process >= watcherProcess })
		})
		return events
	}
	for _, wl := range Names() {
		t.Run(wl+" one worker: the whole history", func(t *testing.T) {
			// 2 s: a kubernetes watch alone takes half a second (synthetic time: free)
			cfg := Config{Workload: Kind(wl), Concurrency: 1, Keys: 3, OpsPerKey: 10, TimeLimit: 2 * time.Second, Seed: 11}
			a, b := run(t, cfg, time.Millisecond), run(t, cfg, time.Millisecond)
			prefixEqual(t, a, b, 100, project)
			cfg.Seed = 12
			c := run(t, cfg, time.Millisecond)
			require.GreaterOrEqual(t, len(c), 40)
			var pa, pc []full
			for i := range 40 {
				pa, pc = append(pa, project(a[i])), append(pc, project(c[i]))
			}
			assert.NotEqual(t, pa, pc, "another seed, other ops")
		})
	}
	t.Run("set, four workers: each worker's ops and keys", func(t *testing.T) {
		cfg := Config{Workload: "set", Concurrency: 4, Keys: 5, TimeLimit: 80 * time.Millisecond, Seed: 5}
		a, b := invokes(run(t, cfg, time.Millisecond), 4), invokes(run(t, cfg, time.Millisecond), 4)
		for w := range 4 {
			prefixEqual(t, a[w], b[w], 10, func(e history.Event) string { return e.F + " " + e.Key })
		}
	})
	t.Run("register, four workers: each worker's ops", func(t *testing.T) {
		cfg := Config{Workload: "register", Concurrency: 4, Keys: 5, TimeLimit: 80 * time.Millisecond, Seed: 5}
		a, b := invokes(run(t, cfg, time.Millisecond), 4), invokes(run(t, cfg, time.Millisecond), 4)
		for w := range 4 {
			prefixEqual(t, a[w], b[w], 10, func(e history.Event) string { return e.F })
		}
	})
}

// TestRateLimit runs in a synctest bubble: on the wall clock, a busy machine bunched
// the invokes and failed it.
func TestRateLimit(t *testing.T) { synctest.Test(t, testRateLimit) }

func testRateLimit(t *testing.T) {
	store := NewSimStore(1)
	rec := newRecorder()
	const rate, limit = 100.0, 500 * time.Millisecond
	cfg := Config{Concurrency: 4, Rate: rate, TimeLimit: limit, Seed: 1}
	start := time.Now()
	stats, err := Run(context.Background(), cfg, store.Opener(3), rec)
	require.NoError(t, err)
	elapsed := time.Since(start)
	total := stats.OK + stats.Fail + stats.Info
	assert.LessOrEqual(t, total, int64(rate*limit.Seconds())+1, "at most rate × time limit")
	assert.GreaterOrEqual(t, total, int64(rate*limit.Seconds()/2), "roughly the rate")
	assert.Less(t, elapsed, limit+300*time.Millisecond, "stops at the time limit")
	// No two invokes closer than the interval allows, beyond scheduling jitter.
	var last int64
	tooClose := 0
	for _, e := range rec.Events() {
		if e.Type == history.Invoke {
			if last != 0 && time.Duration(e.Time-last) < 5*time.Millisecond {
				tooClose++
			}
			last = e.Time
		}
	}
	assert.LessOrEqual(t, tooClose, int(total)/10, "invokes spaced about 1/rate apart")
}

func TestCancelTurnsInFlightIntoInfo(t *testing.T) {
	rec := newRecorder()
	prog := NewProgress()
	cfg := Config{Concurrency: 3, OpTimeout: time.Minute, Progress: prog}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { // poll while running, as a progress renderer does
		for ctx.Err() == nil {
			prog.Counts()
			prog.Keys()
			time.Sleep(time.Millisecond)
		}
	})
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	stats, err := Run(ctx, cfg, constOpener(blockingClient{}), rec)
	require.NoError(t, err)
	wg.Wait()
	assert.Less(t, time.Since(start), 2*time.Second)
	events := rec.Events()
	wellFormed(t, events)
	require.Len(t, events, 6)
	assert.EqualValues(t, 3, stats.Info)
	for _, e := range events[3:] {
		assert.Equal(t, history.Info, e.Type)
		assert.Equal(t, "cancelled", e.Error)
	}
}

func TestOpTimeoutRetiresProcess(t *testing.T) { synctest.Test(t, testOpTimeoutRetiresProcess) }

func testOpTimeoutRetiresProcess(t *testing.T) {
	rec := newRecorder()
	cfg := Config{Concurrency: 2, OpTimeout: 20 * time.Millisecond, TimeLimit: 150 * time.Millisecond}
	var mu sync.Mutex
	var opened []int
	open := func(_ context.Context, p int) (Client, string, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, p)
		return blockingClient{}, "n1", nil
	}
	_, err := Run(context.Background(), cfg, open, rec)
	require.NoError(t, err)
	events := rec.Events()
	wellFormed(t, events)
	seen := map[int]int{}
	for _, e := range events {
		if e.Type != history.Invoke {
			assert.Equal(t, history.Info, e.Type)
			assert.Equal(t, "timeout", e.Error)
			continue
		}
		w := e.Process % 2
		assert.Equal(t, seen[w], e.Process/2, "worker %d's processes count up by concurrency", w)
		seen[w]++
	}
	assert.GreaterOrEqual(t, seen[0], 3)
	assert.Len(t, opened, seen[0]+seen[1], "one open per process")
}

func TestDefiniteErrorKeepsProcess(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		msg  string
	}{
		{"definite", Definite(errors.New("not leader")), "not leader"},
		{"mismatch", ErrMismatch, "mismatch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := newRecorder()
			cfg := Config{Concurrency: 3, TimeLimit: 30 * time.Millisecond, Rate: 1000}
			stats, err := Run(context.Background(), cfg, constOpener(errClient{tc.err}), rec)
			require.NoError(t, err)
			wellFormed(t, rec.Events())
			assert.Positive(t, stats.Fail)
			assert.Zero(t, stats.OK+stats.Info)
			for _, e := range rec.Events() {
				assert.Less(t, e.Process, 3, "no process retired")
				if e.Type == history.Fail {
					assert.Equal(t, tc.msg, e.Error)
				}
			}
		})
	}
}

func TestErrorsBackOffButMismatchesDoNot(t *testing.T) {
	run := func(err error) int64 {
		cfg := Config{Concurrency: 2, TimeLimit: 500 * time.Millisecond}
		stats, rerr := Run(context.Background(), cfg, constOpener(errClient{err}), newRecorder())
		require.NoError(t, rerr)
		return stats.Fail
	}
	refused := run(Definite(errors.New("connection refused")))
	assert.LessOrEqual(t, refused, int64(2*(500*time.Millisecond/errorBackoff+1)),
		"a node that refuses at once is not hammered")
	assert.Greater(t, run(ErrMismatch), 10*refused, "a cas mismatch is a normal outcome: no back-off")
}

func TestOpenerErrorsAreRetried(t *testing.T) {
	store := NewSimStore(1)
	var mu sync.Mutex
	calls := map[int]int{}
	open := func(ctx context.Context, p int) (Client, string, error) {
		mu.Lock()
		defer mu.Unlock()
		if calls[p]++; calls[p] < 2 {
			return nil, "", errors.New("dial: refused")
		}
		return store.Opener(1)(ctx, p)
	}
	rec := newRecorder()
	stats, err := Run(context.Background(), Config{Concurrency: 2, TimeLimit: 300 * time.Millisecond}, open, rec)
	require.NoError(t, err)
	wellFormed(t, rec.Events())
	assert.Positive(t, stats.OK)
}

func TestRunRejectsBadConfig(t *testing.T) {
	store := NewSimStore(1)
	for _, tc := range []struct {
		name string
		cfg  Config
		open Opener
		rec  *history.Recorder
	}{
		{"unknown workload", Config{Workload: "bank"}, store.Opener(1), newRecorder()},
		{"negative concurrency", Config{Concurrency: -1}, store.Opener(1), newRecorder()},
		{"negative rate", Config{Rate: -1}, store.Opener(1), newRecorder()},
		{"no opener", Config{}, nil, newRecorder()},
		{"no recorder", Config{}, store.Opener(1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Run(context.Background(), tc.cfg, tc.open, tc.rec)
			assert.Error(t, err)
			assert.Error(t, FinalReads(context.Background(), tc.cfg, tc.open, tc.rec, []string{"r0"}))
		})
	}
}

// panicClient panics on every call.
type panicClient struct{ errClient }

func (panicClient) Write(context.Context, string, string) error { panic("client bug") }
func (panicClient) Read(context.Context, string) (string, bool, error) {
	panic("client bug")
}

// A client that panics answered nothing: its operation is indeterminate, the process
// is retired, and the run goes on to its end.
func TestAPanickingClientIsIndeterminateNotACrash(t *testing.T) {
	rec := newRecorder()
	cfg := Config{Concurrency: 2, TimeLimit: 50 * time.Millisecond, Rate: 500}
	stats, err := Run(context.Background(), cfg, constOpener(panicClient{}), rec)
	require.NoError(t, err)
	wellFormed(t, rec.Events())
	assert.Positive(t, stats.Info)
	for _, e := range rec.Events() {
		if e.Type == history.Info {
			assert.Contains(t, e.Error, "client panicked: client bug")
		}
	}
}

// A worker that panics outside a client call (a bug of ours) stops; Run says so.
func TestAPanickingWorkerIsAnError(t *testing.T) {
	rec := newRecorder()
	cfg := Config{Concurrency: 2, TimeLimit: 50 * time.Millisecond}
	opener := func(context.Context, int) (Client, string, error) { panic("opener bug") }
	_, err := Run(context.Background(), cfg, opener, rec)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "panicked: opener bug")
}
