package refcheck

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker/sim"
	"github.com/faultline/faultline/history"
)

// The reference checker is a checker: a valid history passes, one stale read fails it.
func TestRawCheckJudges(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.jsonl")
	w, err := history.CreateWriter(ok, time.Hour)
	require.NoError(t, err)
	for _, e := range sim.Simulate(sim.Config{Seed: 3, Ops: 3000, Procs: 10, Info: 0.05, Keys: 4, OpsPerKey: 100}) {
		require.NoError(t, w.Append(e))
	}
	require.NoError(t, w.Close())
	v, err := Check(ok, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "ok", v)

	events, _, err := history.ReadFile(ok)
	require.NoError(t, err)
	// A read that returns a value no write ever wrote is a violation in any model.
	for i, e := range events {
		if e.Type == history.OK && e.F == "read" && !e.Value.IsNone() {
			events[i].Value = history.S1("never-written")
			break
		}
	}
	bad := filepath.Join(dir, "bad.jsonl")
	w, err = history.CreateWriter(bad, time.Hour)
	require.NoError(t, err)
	for _, e := range events {
		require.NoError(t, w.Append(e))
	}
	require.NoError(t, w.Close())
	v, err = Check(bad, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "illegal", v)
}
