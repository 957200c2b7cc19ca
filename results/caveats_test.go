package results

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

func TestCaveats(t *testing.T) {
	healed := []history.Event{{Process: history.NemesisProcess, Type: history.Info, F: history.HealAll}}
	write := func(t *testing.T, dir, name, body string) {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	codes := func(rs []checker.Reason) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Code)
		}
		return out
	}

	dir := t.TempDir()
	assert.Empty(t, Caveats(dir, nil), "not a run directory: a history file like any other")

	write(t, dir, "test.json", `{}`)
	assert.Equal(t, []string{checker.ReasonInterrupted}, codes(Caveats(dir, nil)), "a run that never healed is partial")
	assert.Empty(t, Caveats(dir, healed), "a whole run")

	write(t, dir, ResultsFile, `{"valid": "unknown", "unknown_because": [{"code": "run_error", "detail": "the run ended in an error: boom"}, {"code": "unread_keys", "detail": "x"}]}`)
	got := Caveats(dir, healed)
	require.Len(t, got, 1, "the run's own reasons are kept; the checker's are the checker's to find again")
	assert.Equal(t, checker.ReasonRunError, got[0].Code)
	assert.Contains(t, got[0].Detail, "boom")
}
