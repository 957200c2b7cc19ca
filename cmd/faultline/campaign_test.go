package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/results"
)

// A real campaign from the command line: run whole, then as two shards merged, the same
// verdict for every scenario and seed; and --count.
func TestCampaignShardsMergeToTheWholeRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("whole runs: skipped in -short mode")
	}
	if ok, why := netns.Available(); !ok {
		t.Skip("partitions need network namespaces (root, ip, nsenter): " + why)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "c.yaml")
	require.NoError(t, os.WriteFile(file, []byte(`name: tiny
runs: 2
seed: 5
base: {runtime: process, nodes: 3, time-limit: 3s, nemesis-interval: 1s, recovery: 1s}
scenarios:
  - name: correct
    spec: {nemesis: [partition, kill]}
  - name: stale
    spec: {unsafe: stale-read, nemesis: partition}
    min-detection: 0
`), 0o644))
	camp := func(t *testing.T, args ...string) (results.ExitCode, string, string) {
		var out, errb bytes.Buffer
		code := run(context.Background(), append([]string{"campaign", "-f", file}, args...), &out, &errb)
		ix, err := results.ReadCampaign(lastDir(t, &out))
		require.NoError(t, err, "%s%s", out.String(), errb.String())
		return code, lastDir(t, &out), verdicts(ix)
	}
	// The whole campaign, its two shards and a --count run are independent runs: side
	// by side (the merge below waits for them all).
	var wholeCode results.ExitCode
	var whole, s1, s2 string
	var cout bytes.Buffer
	var countCode results.ExitCode
	t.Run("runs", func(t *testing.T) {
		t.Run("whole", func(t *testing.T) {
			t.Parallel()
			wholeCode, _, whole = camp(t, "--results", filepath.Join(dir, "whole"), "--junit", filepath.Join(dir, "whole.xml"))
		})
		t.Run("shard 1", func(t *testing.T) {
			t.Parallel()
			_, s1, _ = camp(t, "--results", filepath.Join(dir, "s1"), "--shard", "1/2")
		})
		t.Run("shard 2", func(t *testing.T) {
			t.Parallel()
			_, s2, _ = camp(t, "--results", filepath.Join(dir, "s2"), "--shard", "2/2")
		})
		t.Run("count", func(t *testing.T) {
			t.Parallel()
			countCode = run(context.Background(), []string{"test", "--runtime", "process", "--nodes", "3", "--time-limit", "3s", "--nemesis", "kill",
				"--recovery", "1s", "--count", "2", "--seed", "9", "--results", filepath.Join(dir, "count")}, &cout, &cout)
		})
	})
	require.False(t, t.Failed())
	var out bytes.Buffer
	mergedDir := filepath.Join(dir, "merged")
	code := run(context.Background(), []string{"campaign", "merge", "-o", mergedDir, s1, s2}, &out, &out)
	ix, err := results.ReadCampaign(mergedDir)
	require.NoError(t, err, out.String())
	assert.Equal(t, whole, verdicts(ix), "the merged shards found what the whole campaign found, seed by seed")
	assert.Equal(t, wholeCode, code)
	assert.Contains(t, out.String(), "merged 2 shards (1/2, 2/2)")
	assert.Equal(t, results.ExitValid, wholeCode, "the correct node valid; the stale row gates nothing (min-detection 0):\n%s", whole)
	assert.FileExists(t, filepath.Join(dir, "whole.xml"))

	assert.Equal(t, results.ExitValid, countCode, cout.String())
	cix, err := results.ReadCampaign(lastDir(t, &cout))
	require.NoError(t, err)
	assert.Len(t, cix.Runs, 2)
	assert.Equal(t, []int64{9, 10}, []int64{cix.Runs[0].Seed, cix.Runs[1].Seed})
}

// lastDir is the campaign directory a campaign printed (its second line).
func lastDir(t *testing.T, out *bytes.Buffer) string {
	t.Helper()
	lines := bytes.Split(out.Bytes(), []byte("\n"))
	require.Greater(t, len(lines), 1, out.String())
	return string(bytes.TrimSpace(lines[1]))
}

// verdicts lists the runs: scenario, seed, verdict. The stale node's verdicts are left
// out (a run of it says "checked" when it reached one): a seed draws the same fault
// schedule, but whether a 3 s run happens to read a stale value depends on timing, and
// on a busy machine the same seed went invalid in one campaign and valid in the other.
func verdicts(ix results.CampaignIndex) string {
	var b bytes.Buffer
	for _, r := range ix.Runs {
		v := r.Verdict
		if r.Scenario == "stale" && (v == "valid" || v == "invalid") {
			v = "checked"
		}
		b.WriteString(r.Scenario + " " + string(rune('0'+r.Seed%10)) + " " + v + "\n")
	}
	return b.String()
}

// The CI examples' faultline command lines are ones faultline takes: each is dry-run,
// with the CI system's shard index put in.
func TestCIExamplesCommandLinesParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/ci/*/*.y*ml")
	require.NoError(t, err)
	require.Len(t, files, 3)
	re := regexp.MustCompile(`faultline (campaign [^|;\n]*?)(\|\||;|\n)`)
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		text := strings.NewReplacer("${{ matrix.shard }}", "1", `"$((JOB_COMPLETION_INDEX + 1))/4"`, "1/4",
			"\n              --", " --", "-f /campaigns/", "-f examples/campaigns/").Replace(string(b))
		for _, m := range re.FindAllStringSubmatch(text, -1) {
			args := strings.Fields(m[1])
			if args[1] == "merge" {
				continue // needs shard directories: TestCampaignShardsMergeToTheWholeRun runs merge
			}
			for i, a := range args {
				if strings.HasPrefix(a, "examples/") {
					args[i] = "../../" + a
				}
			}
			var out bytes.Buffer
			code := run(context.Background(), append(args, "--dry-run"), &out, &out)
			assert.Equal(t, results.ExitValid, code, "%s: faultline %s\n%s", f, strings.Join(args, " "), out.String())
			n++
		}
	}
	assert.GreaterOrEqual(t, n, 3, "every example's campaign command was tried")
}
