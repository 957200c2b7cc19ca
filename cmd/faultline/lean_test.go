package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The lean build (make build's bin/faultline) links nothing of the harness: that is what
// makes check start like a small program.
func TestLeanBuildLinksNoHarness(t *testing.T) {
	out, err := exec.Command("go", "list", "-tags", "lean", "-deps", ".").Output()
	require.NoError(t, err)
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"github.com/faultline/faultline/harness", "github.com/faultline/faultline/node",
			"google.golang.org/grpc", "go.etcd.io/", "github.com/hanwen/go-fuse"} {
			assert.False(t, strings.HasPrefix(pkg, heavy), "the lean build links %s", pkg)
		}
	}
}

// The lean build checks by itself and hands every other command to faultline-full beside
// it, whose output and exit code are the command's; without one it says what is missing.
func TestLeanBuildHandsOverToTheFullBinary(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	lean, full := filepath.Join(dir, "faultline"), filepath.Join(dir, "faultline-full")
	build := func(out string, tags ...string) {
		cmd := exec.Command("go", append(append([]string{"build"}, tags...), "-o", out, ".")...)
		b, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", b)
	}
	build(lean, "-tags", "lean")
	alone := filepath.Join(t.TempDir(), "faultline")
	b, err := os.ReadFile(lean)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(alone, b, 0o755))
	build(full)
	run := func(bin string, args ...string) (int, string) {
		t.Helper()
		cmd := exec.CommandContext(context.Background(), bin, args...)
		cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin") // no faultline-full found there
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), out.String()
		}
		require.NoError(t, err)
		return 0, out.String()
	}

	hist := copyFixture(t, "checker/testdata/register-bad.jsonl", "history.jsonl")
	for _, bin := range []string{lean, alone} { // check needs nothing beside it
		code, out := run(bin, "check", hist)
		assert.Equal(t, 1, code, out)
		assert.Contains(t, out, "verdict: INVALID")
		code, out = run(bin, "version")
		assert.Equal(t, 0, code, out)
		assert.Contains(t, out, "faultline ")
	}
	assert.FileExists(t, filepath.Join(filepath.Dir(hist), "report.html"))

	code, out := run(lean, "test", "--nodes", "0")
	assert.Equal(t, 4, code, "the full binary's exit code: %s", out)
	assert.Contains(t, out, "nodes: 0 is outside", "and its words")
	code, out = run(lean, "campaign", "merge", "--help")
	assert.Equal(t, 0, code, out)
	assert.Contains(t, out, "usage: faultline campaign merge")

	code, out = run(alone, "test", "--nodes", "0")
	assert.Equal(t, 3, code, out)
	assert.Contains(t, out, "faultline-full", "names what it looked for")
	assert.Contains(t, out, "go build ./cmd/faultline", "and how to get the whole harness")
}
