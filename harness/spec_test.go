package harness

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/sut/file"

	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseTestArgsDefaults(t *testing.T) {
	s, err := ParseTestArgs([]string{"--seed", "9"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "raftnode-register", s.Name)
	assert.Equal(t, 5, s.Nodes)
	assert.Equal(t, List{"partition", "kill", "pause"}, s.Nemesis)
	assert.Equal(t, 60*time.Second, s.TimeLimit.D())
	assert.Equal(t, int64(9), s.Seed)
}

func TestParseTestArgsNamesTheBadField(t *testing.T) {
	for args, field := range map[string][]string{
		"nodes":            {"--nodes", "0"},
		"workload":         {"--workload", "queue"},
		"nemesis":          {"--nemesis", "partition,flood"},
		"unsafe":           {"--unsafe", "yolo"},
		"time-limit":       {"--time-limit", "soon"},
		"nemesis-interval": {"--nemesis-interval", "1ms"},
		"runtime":          {"--runtime", "vm"},
		"concurrency":      {"--concurrency", "-1"},
		"flag provided":    {"--frobnicate"},
		"unexpected":       {"extra"},
		"an option of target raftnode, and the target is etcd": {"--target", "etcd", "--unsafe", "stale-read"},
		"an option of target etcd, and the target is raftnode": {"--target", "raftnode", "--etcd-version", "v3.7.3"},
		"give one of them": {"--target", "etcd", "--etcd-version", "v3.7.3", "--etcd-binary", "/usr/bin/etcd"},
		"target":           {"--target", "zookeeper"},
	} {
		t.Run(args, func(t *testing.T) {
			_, err := ParseTestArgs(field, io.Discard)
			require.Error(t, err)
			var ue *UsageError
			require.ErrorAs(t, err, &ue)
			assert.Contains(t, err.Error(), args)
		})
	}
}

func TestSpecFileThenFlags(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "spec.yaml")
	require.NoError(t, os.WriteFile(f, []byte("nodes: 3\nworkload: append\nnemesis: [kill, pause]\ntime-limit: 10s\nseed: 5\n"), 0o644))
	s, err := ParseTestArgs([]string{"-f", f, "--nodes", "7"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 7, s.Nodes, "an explicit flag overrides the file")
	assert.Equal(t, workload.Append, s.Workload, "the file overrides the defaults")
	assert.Equal(t, List{"kill", "pause"}, s.Nemesis)
	assert.Equal(t, 10*time.Second, s.TimeLimit.D())
	assert.Equal(t, int64(5), s.Seed)

	require.NoError(t, os.WriteFile(f, []byte("nodes: 3\nnodez: 4\n"), 0o644))
	_, err = ParseTestArgs([]string{"-f", f}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "nodez", "an unknown key is named")

	require.NoError(t, os.WriteFile(f, []byte("nemesis: partition, kill\ntime-limit: 1 minute\n"), 0o644))
	_, err = ParseTestArgs([]string{"-f", f}, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "1 minute")
}

func TestNemesisAllAndNone(t *testing.T) {
	s, err := ParseTestArgs([]string{"--nemesis", "none"}, io.Discard)
	require.NoError(t, err)
	assert.Empty(t, s.Nemesis)
	s, err = ParseTestArgs([]string{"--nemesis", "all"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, List{"all"}, s.Nemesis)
	_, err = ParseTestArgs([]string{"--nemesis", "all,kill"}, io.Discard)
	assert.Error(t, err)
}

func TestNemesisCombinations(t *testing.T) {
	s, err := ParseTestArgs([]string{"--nemesis", "partition+clock,kill"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, List{"partition+clock", "kill"}, s.Nemesis)
	for _, bad := range []string{"partition+nope", "partition+partition", "kill+", "all+kill"} {
		_, err := ParseTestArgs([]string{"--nemesis", bad}, io.Discard)
		assert.Error(t, err, bad)
	}
}

func TestReplayCommandRoundTrips(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "etcd") // an etcd that only says which release it is
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho 'etcd Version: 3.4.23'\n"), 0o755))
	for _, in := range [][]string{
		{"--seed", "77", "--nodes", "3", "--nemesis", "kill", "--unsafe", "stale-read", "--rate", "50"},
		{"--nemesis", "none", "--workload", "set"},
		{"--recovery", "9s", "--check-timeout", "33s", "--op-timeout", "750ms"},
		{"--target", "etcd", "--etcd-version", "v3.6.16", "--etcd-serializable-reads", "--nemesis", "partition,packet"},
		{"--target", "etcd", "--etcd-binary", fake},
		{"--etcd-version", "v3.6.16", "--upgrade-to", "v3.7.3", "--etcd-snapshot-count", "1000"},
		{"--unsafe", "lease-read", "--nemesis", "partition+clock,pause"},
	} {
		s, err := ParseTestArgs(in, io.Discard)
		require.NoError(t, err, "%v", in)
		args := strings.Fields(ReplayCommand(s))
		require.Equal(t, []string{"faultline", "test"}, args[:2])
		again, err := ParseTestArgs(args[2:], io.Discard)
		require.NoError(t, err, "%v: the replay line must parse: %s", in, ReplayCommand(s))
		again.Results, s.Results = "", ""
		assert.Equal(t, s, again, "%v", in)
		// and as a spec file (what faultline shrink writes)
		b, err := SpecFile(s)
		require.NoError(t, err)
		path := filepath.Join(t.TempDir(), "spec.yaml")
		require.NoError(t, os.WriteFile(path, b, 0o644))
		fromFile, err := LoadSpec(path)
		require.NoError(t, err, "%v: the spec file must load:\n%s", in, b)
		fromFile, err = fromFile.Resolve()
		require.NoError(t, err, "%v: the spec file must resolve:\n%s", in, b)
		assert.Equal(t, ReplayCommand(s), ReplayCommand(fromFile), "%v: the same test:\n%s", in, b)
		assert.Equal(t, s.Name, fromFile.Name)
	}
}

// A replay of a target-file run runs the file as the run read it (test.json holds its
// text), also when the file was edited, or broken, since.
func TestReplayRunsTheTargetFileAsRecorded(t *testing.T) {
	onPath(t)
	b, err := os.ReadFile(examples + "raftnode-http.yaml")
	require.NoError(t, err)
	tf := filepath.Join(t.TempDir(), "target.yaml")
	require.NoError(t, os.WriteFile(tf, b, 0o644))
	spec, err := ParseTestArgs([]string{"--target-file", tf, "--seed", "5"}, io.Discard)
	require.NoError(t, err)
	raw, err := json.Marshal(spec)
	require.NoError(t, err)
	run := t.TempDir()
	seed := spec.Seed
	require.NoError(t, results.WriteTestInfo(run, results.TestInfo{Name: spec.Name, Seed: &seed, Runtime: "process", Spec: raw}))

	require.NoError(t, os.WriteFile(tf, []byte("name: edited\nnodes: {command: [nonexistent-program]}\n"), 0o644))
	_, err = ParseTestArgs([]string{"--target-file", tf}, io.Discard)
	require.Error(t, err, "the file as it is now does not even load")

	replay, err := ParseTestArgs([]string{"--replay", run, "--runtime", "memory"}, io.Discard)
	require.NoError(t, err, "the replay runs the text the run recorded")
	assert.Equal(t, string(b), replay.Options().(*file.Options).Text)
	assert.Equal(t, spec.Name, replay.Name)
	var lines []string
	require.NoError(t, replay.Options().Prepare(context.Background(), func(l string) { lines = append(lines, l) }))
	assert.Contains(t, strings.Join(lines, "\n"), "has changed since this spec was recorded", "and says so")
}

// A workload the target's clients lack is a usage error that says where it runs.
func TestAWorkloadSaysWhereItRuns(t *testing.T) {
	for w, want := range map[string][]string{
		"lease": {"lease runs on ", "--target etcd", "a target file whose client protocol is etcd"},
		"txn":   {"txn runs on ", "--target etcd", "or exec with client.transactions"},
	} {
		_, err := ParseTestArgs([]string{"--target", "raftnode", "--workload", w}, io.Discard)
		var ue *UsageError
		require.ErrorAs(t, err, &ue, w)
		for _, s := range want {
			assert.Contains(t, err.Error(), s)
		}
	}
}
