package runtime_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Runtimes know no target: no runtime source names one (a target is a package beside
// them; adding one must touch no runtime file).
func TestRuntimesNameNoTarget(t *testing.T) {
	targets := regexp.MustCompile(`(?i)` + "raft" + "node|" + "et" + "cd") // spelled so this file passes too
	var files []string
	require.NoError(t, filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") {
			return nil
		}
		files = append(files, path)
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		for i, line := range strings.Split(string(b), "\n") {
			assert.False(t, targets.MatchString(line), "%s:%d names a target: %s", path, i+1, line)
		}
		return nil
	}))
	assert.Contains(t, files, filepath.Join("process", "process.go"))
	assert.Contains(t, files, filepath.Join("docker", "docker.go"))
}
