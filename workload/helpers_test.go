package workload

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// runOnSim runs cfg against a sim store (4 ms latency, 2% of replies lost) made from
// cfg.Seed and set up by setup, in a synctest bubble (time is the bubble's: a busy
// machine changes nothing), with the final reads when final; it returns the history,
// well formed.
func runOnSim(t *testing.T, cfg Config, setup func(*SimStore), final bool) []history.Event {
	t.Helper()
	var events []history.Event
	synctest.Test(t, func(t *testing.T) {
		store := NewSimStore(cfg.Seed)
		store.Latency, store.Lost = 4*time.Millisecond, 0.02
		if setup != nil {
			setup(store)
		}
		rec := newRecorder()
		st, err := Run(context.Background(), cfg, store.Opener(3), rec)
		require.NoError(t, err)
		if final {
			require.NoError(t, FinalReads(context.Background(), cfg, store.Opener(3), rec, st.Keys))
		}
		events = rec.Events()
	})
	wellFormed(t, events)
	return events
}

// wellFormed checks the rules every recorded history obeys (see checkWellFormed).
func wellFormed(t *testing.T, events []history.Event) {
	t.Helper()
	require.NoError(t, checkWellFormed(events))
}

// checkWellFormed returns the first breach of the rules every recorded history obeys:
// indices count up; each invoke is followed by exactly one completion on the same
// process with the same f, key and node; a process runs one operation at a time and
// none is used after an info; every value written, swapped in, appended or added is
// unique per key.
func checkWellFormed(events []history.Event) error {
	open := map[int]history.Event{}
	retired := map[int]bool{}
	written := map[string]map[string]bool{}
	for i, e := range events {
		switch inv, busy := open[e.Process]; {
		case e.Index != events[0].Index+int64(i):
			return fmt.Errorf("event %d: index %d", i, e.Index)
		case e.IsNemesis():
		case retired[e.Process]:
			return fmt.Errorf("event %d on process %d after its info", i, e.Process)
		case e.Type == history.Invoke && busy:
			return fmt.Errorf("event %d: process %d invokes while %v is in flight", i, e.Process, inv)
		case e.Type == history.Invoke:
			open[e.Process] = e
			v, ok := newValue(e)
			if !ok {
				break
			}
			if written[e.Key] == nil {
				written[e.Key] = map[string]bool{}
			}
			if written[e.Key][v] {
				return fmt.Errorf("event %d: value %q of key %q not unique", i, v, e.Key)
			}
			written[e.Key][v] = true
		case !busy:
			return fmt.Errorf("event %d: completion without invoke on process %d", i, e.Process)
		case inv.F != e.F || inv.Key != e.Key || inv.Node != e.Node:
			return fmt.Errorf("event %d: completion %s %s on %s of invoke %s %s on %s", i,
				e.F, e.Key, e.Node, inv.F, inv.Key, inv.Node)
		default:
			delete(open, e.Process)
			retired[e.Process] = e.Type == history.Info
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("%d operations left without completion", len(open))
	}
	return nil
}

// newValue is the value an invoke brings into existence, if any.
func newValue(e history.Event) (string, bool) {
	switch {
	case e.F == "cas" && len(e.Value.L) == 2:
		return e.Value.L[1], true
	case e.F == "write" || e.F == "append" || e.F == "add":
		return e.Value.S, true
	}
	return "", false
}

// counts tallies completions by type, and invokes by key.
func counts(events []history.Event) (byType map[history.Type]int64, byKey map[string]int) {
	byType, byKey = map[history.Type]int64{}, map[string]int{}
	for _, e := range events {
		byType[e.Type]++
		if e.Type == history.Invoke {
			byKey[e.Key]++
		}
	}
	return byType, byKey
}

func newRecorder() *history.Recorder { return history.NewRecorder(time.Now(), nil) }

// blockingClient blocks every call until ctx ends and returns ctx's error.
type blockingClient struct{}

func (blockingClient) Read(ctx context.Context, _ string) (string, bool, error) {
	<-ctx.Done()
	return "", false, ctx.Err()
}
func (blockingClient) Write(ctx context.Context, _, _ string) error { <-ctx.Done(); return ctx.Err() }
func (blockingClient) CAS(ctx context.Context, _, _, _ string) error {
	<-ctx.Done()
	return ctx.Err()
}
func (blockingClient) Append(ctx context.Context, _, _ string) error { <-ctx.Done(); return ctx.Err() }
func (blockingClient) ReadList(ctx context.Context, _ string) ([]string, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// errClient fails every call with err.
type errClient struct{ err error }

func (c errClient) Read(context.Context, string) (string, bool, error) { return "", false, c.err }
func (c errClient) Write(context.Context, string, string) error        { return c.err }
func (c errClient) CAS(context.Context, string, string, string) error  { return c.err }
func (c errClient) Append(context.Context, string, string) error       { return c.err }
func (c errClient) ReadList(context.Context, string) ([]string, error) { return nil, c.err }
func constOpener(c Client) Opener {
	return func(_ context.Context, p int) (Client, string, error) { return c, fmt.Sprintf("n%d", p%3), nil }
}

func TestCheckWellFormed(t *testing.T) {
	inv := func(p int, f, k string, v history.Value) history.Event {
		return history.Event{Process: p, Type: history.Invoke, F: f, Key: k, Value: v}
	}
	done := func(e history.Event, typ history.Type) history.Event { e.Type = typ; return e }
	w1 := inv(0, "write", "r0", history.S1("1"))
	w2 := inv(1, "write", "r0", history.S1("2"))
	for _, tc := range []struct {
		name   string
		events []history.Event
		want   string
	}{
		{"ok", []history.Event{w1, w2, done(w2, history.OK), done(w1, history.Info)}, ""},
		{"open", []history.Event{w1}, "left without completion"},
		{"reused after info", []history.Event{w1, done(w1, history.Info), w2, done(w2, history.OK),
			inv(0, "read", "r0", history.Value{})}, "after its info"},
		{"two in flight", []history.Event{w1, inv(0, "read", "r0", history.Value{})}, "in flight"},
		{"orphan completion", []history.Event{done(w1, history.OK)}, "without invoke"},
		{"other f", []history.Event{w1, done(inv(0, "read", "r0", history.Value{}), history.OK)}, "of invoke"},
		{"value reused", []history.Event{w1, done(w1, history.Fail), w1}, "not unique"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.events {
				tc.events[i].Index = int64(i)
			}
			err := checkWellFormed(tc.events)
			if tc.want == "" {
				assert.NoError(t, err)
			} else {
				assert.ErrorContains(t, err, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		typ  history.Type
		msg  string
	}{
		{"nil", nil, history.OK, ""},
		{"mismatch", ErrMismatch, history.Fail, "mismatch"},
		{"wrapped mismatch", fmt.Errorf("cas r1: %w", ErrMismatch), history.Fail, "mismatch"},
		{"definite", Definite(errors.New("not leader")), history.Fail, "not leader"},
		{"wrapped definite", fmt.Errorf("put: %w", Definite(errors.New("no quorum"))), history.Fail, "put: no quorum"},
		{"definite false", notDefinite{}, history.Info, "maybe"},
		{"timeout", fmt.Errorf("post: %w", context.DeadlineExceeded), history.Info, "timeout"},
		{"cancelled", context.Canceled, history.Info, "cancelled"},
		{"other", errors.New("connection reset"), history.Info, "connection reset"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			typ, msg := classify(tc.err)
			assert.Equal(t, tc.typ, typ)
			assert.Equal(t, tc.msg, msg)
		})
	}
	assert.Nil(t, Definite(nil))
}

type notDefinite struct{}

func (notDefinite) Error() string  { return "maybe" }
func (notDefinite) Definite() bool { return false }
