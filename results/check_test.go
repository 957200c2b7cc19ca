package results

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriteCheck(t *testing.T) {
	for _, tc := range []struct {
		fixture string
		valid   any
		html    bool
	}{
		{"register-bad.jsonl", false, true},
		{"register-ok.jsonl", true, false},
		{"set-bad.jsonl", false, false},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			events, _, err := history.ReadFile(filepath.Join("..", "checker", "testdata", tc.fixture))
			require.NoError(t, err)
			res := checker.Check(context.Background(), events, checker.Options{})
			dir := t.TempDir()
			// A stale view from an earlier check must not survive a valid one.
			require.NoError(t, os.WriteFile(filepath.Join(dir, VisualizationFile), []byte("old"), 0o644))
			require.NoError(t, WriteCheck(dir, res))
			b, err := os.ReadFile(filepath.Join(dir, ResultsFile))
			require.NoError(t, err)
			var got map[string]any
			require.NoError(t, json.Unmarshal(b, &got))
			assert.Equal(t, tc.valid, got["valid"])
			assert.Contains(t, got, "checkers")
			assert.Contains(t, got, "stats")
			html, err := os.ReadFile(filepath.Join(dir, VisualizationFile))
			if tc.html {
				require.NoError(t, err)
				assert.Contains(t, string(html), "<html")
				assert.Contains(t, string(html), "start-partition")
			} else {
				assert.True(t, os.IsNotExist(err), "no view without a linearizability violation")
			}
			left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
			assert.Empty(t, left)
		})
	}
	assert.Error(t, WriteCheck(filepath.Join(t.TempDir(), "missing"), checker.Result{}))
}
