package workload

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

func TestFinalReads(t *testing.T) {
	ctx := context.Background()
	store := NewSimStore(1)
	require.NoError(t, store.Write(ctx, "r0", "5"))
	require.NoError(t, store.Write(ctx, "r1", "7"))
	require.NoError(t, store.Append(ctx, "s0", "1"))
	require.NoError(t, store.Append(ctx, "s0", "2"))
	for _, tc := range []struct {
		workload string
		keys     []string
		want     map[string]history.Value
	}{
		{"register", []string{"r0", "r1", "r2"},
			map[string]history.Value{"r0": history.S1("5"), "r1": history.S1("7"), "r2": {}}},
		{"set", []string{"s0", "s1"}, map[string]history.Value{"s0": history.L("1", "2"), "s1": history.L()}},
		{"append", []string{"s0"}, map[string]history.Value{"s0": history.L("1", "2")}},
	} {
		t.Run(tc.workload, func(t *testing.T) {
			rec := newRecorder()
			rec.Record(history.Event{Process: 41, Type: history.Invoke, F: "read", Key: "r0"})
			rec.Record(history.Event{Process: 41, Type: history.Info, F: "read", Key: "r0"})
			rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Info, F: "heal-all"})
			cfg := Config{Workload: Kind(tc.workload), Concurrency: 2, Progress: NewProgress()}
			require.NoError(t, FinalReads(ctx, cfg, store.Opener(3), rec, tc.keys))
			ok, _, _ := cfg.Progress.Counts()
			assert.EqualValues(t, len(tc.keys), ok)
			wellFormed(t, rec.Events())
			events := rec.Events()[3:]
			require.Len(t, events, 2*len(tc.keys))
			got := map[string]history.Value{}
			for _, e := range events {
				assert.Greater(t, e.Process, 41, "fresh processes")
				assert.Equal(t, "read", e.F)
				if e.Type == history.Invoke {
					assert.True(t, e.Value.IsNone())
				} else {
					assert.Equal(t, history.OK, e.Type)
					got[e.Key] = e.Value
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

// flakyClient fails a process's first operations with an indeterminate or a definite
// error, by the process's id, then serves from the store.
type flakyClient struct {
	*SimStore
	err error
}

func (c flakyClient) Read(ctx context.Context, key string) (string, bool, error) {
	if c.err != nil {
		return "", false, c.err
	}
	return c.SimStore.Read(ctx, key)
}

func TestFinalReadsRetryOnOtherProcesses(t *testing.T) {
	store := NewSimStore(1)
	var mu sync.Mutex
	attempts := map[int]bool{}
	open := func(ctx context.Context, p int) (Client, string, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts[p] = true
		switch len(attempts) % 4 {
		case 1:
			return nil, "", errors.New("dial: refused")
		case 2:
			return flakyClient{store, errors.New("connection reset")}, "n1", nil
		case 3:
			return flakyClient{store, Definite(errors.New("not leader"))}, "n2", nil
		}
		return store, "n3", nil
	}
	rec := newRecorder()
	keys := []string{"r0", "r1", "r2"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, FinalReads(ctx, Config{Concurrency: 3}, open, rec, keys))
	events := rec.Events()
	wellFormed(t, events)
	byType, byKey := counts(events)
	assert.EqualValues(t, 3, byType[history.OK], "one ok read per key")
	assert.Positive(t, byType[history.Info])
	assert.Positive(t, byType[history.Fail])
	assert.Len(t, byKey, 3)
	procs := map[int]int{}
	for _, e := range events {
		if e.Type == history.Invoke {
			procs[e.Process]++
		}
	}
	for p, n := range procs {
		assert.Equal(t, 1, n, "process %d used for one attempt", p)
	}
}

func TestFinalReadsGiveUpWhenCtxEnds(t *testing.T) {
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := FinalReads(ctx, Config{Concurrency: 4, OpTimeout: 50 * time.Millisecond},
		constOpener(blockingClient{}), rec, []string{"r0", "r1"})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Contains(t, err.Error(), "2 of 2 keys unread")
	wellFormed(t, rec.Events())
	byType, _ := counts(rec.Events())
	assert.Positive(t, byType[history.Info])
	assert.Zero(t, byType[history.OK])
}
