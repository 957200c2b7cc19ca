package results

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Runs of a campaign start side by side, in the same second, under the same root: each
// gets a directory of its own, and none fails on the latest link.
func TestRunDirsSideBySide(t *testing.T) {
	root := t.TempDir()
	base := time.Now()
	dirs := make([]string, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range dirs {
		wg.Go(func() { dirs[i], errs[i] = NewRunDir(root, []string{"a", "b"}[i%2], base) })
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range dirs {
		require.NoError(t, errs[i])
		assert.False(t, seen[dirs[i]], "a directory of its own")
		seen[dirs[i]] = true
	}
	latest, err := filepath.EvalSymlinks(filepath.Join(root, "latest"))
	require.NoError(t, err)
	assert.True(t, seen[latest], "latest points at one of them")
	left, _ := filepath.Glob(filepath.Join(root, "latest.*"))
	assert.Empty(t, left, "no temporary link is left")
}
