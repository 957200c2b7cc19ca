package harness

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/sut/file"
	"github.com/faultline/faultline/harness/sut/raftnode"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
)

// Whole runs of targets from files (harness/sut/file): the shipped examples give the
// verdicts their systems deserve, and bad target files and shims end runs with the
// right exit code and a line that names the problem.

const examples = "../examples/"

// pathDir is a directory that TestMain puts first in $PATH for the whole test binary;
// onPath puts the programs the examples start in it, each once. A test that changed
// $PATH itself (t.Setenv) could not run in parallel with others.
var pathDir string

// pathProgs guards the programs of pathDir: each is made once, by the first test that
// needs it; a failed make is tried again by the next.
var pathProgs = struct {
	sync.Mutex
	made map[string]bool
}{made: map[string]bool{}}

// onPath makes sure pathDir, in $PATH, holds the programs the examples start: raftnode
// (this test binary under that name) and those progs names: "etcd" (the cached release),
// "hashiraft" (built from examples/hashiraft), "nats" (the newest nats-server release the
// example names and its shim, built by examples/nats/build.sh into the user cache).
func onPath(t *testing.T, progs ...string) {
	t.Helper()
	if len(progs) > 0 && testing.Short() {
		t.Skip("whole runs of the examples: skipped in -short mode")
	}
	require.NotEmpty(t, pathDir, "TestMain sets up the programs' directory")
	if slices.Contains(progs, "etcd") {
		if _, err := exec.LookPath("python3"); err != nil {
			t.Skip("the etcd-exec example's shim needs python3")
		}
	}
	pathProgs.Lock()
	defer pathProgs.Unlock()
	for _, p := range append([]string{"raftnode"}, progs...) {
		if pathProgs.made[p] {
			continue
		}
		switch p {
		case "raftnode":
			_, err := raftnode.Bin(pathDir)
			require.NoError(t, err)
		case "etcd":
			bin, _ := etcdBinary(t)
			require.NoError(t, relink(bin, filepath.Join(pathDir, "etcd")))
		case "hashiraft":
			cmd := exec.Command("go", "build", "-o", filepath.Join(pathDir, "hashiraft"), ".")
			cmd.Dir, cmd.Env = filepath.Join(examples, "hashiraft"), append(os.Environ(), "CGO_ENABLED=0")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "build examples/hashiraft: %s", out)
		case "nats":
			cache, err := os.UserCacheDir()
			require.NoError(t, err)
			cache = filepath.Join(cache, "faultline", "nats")
			cmd := exec.Command(filepath.Join(examples, "nats", "build.sh"))
			cmd.Env = append(os.Environ(), "NATS_BIN="+cache)
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "examples/nats/build.sh: %s", out)
			for _, prog := range []string{"nats-server-v2.15.3", "nats-kv-shim"} {
				require.NoError(t, relink(filepath.Join(cache, prog), filepath.Join(pathDir, prog)))
			}
		default:
			t.Fatalf("onPath: no program %q", p)
		}
		pathProgs.made[p] = true
	}
}

// relink makes link a symbolic link to target, in place of whatever was there.
func relink(target, link string) error {
	_ = os.Remove(link)
	return os.Symlink(target, link)
}

// progsOf names the programs a target file needs, for onPath.
func progsOf(t *testing.T, file string) []string {
	b, err := os.ReadFile(file)
	require.NoError(t, err)
	var progs []string
	for _, p := range []string{"etcd", "hashiraft", "nats"} {
		if bytes.Contains(b, []byte(p)) {
			progs = append(progs, p)
		}
	}
	return progs
}

// runFile runs a target file's example and returns the outcome and what it recorded.
func runFile(t *testing.T, runtime, file string, args ...string) (Outcome, []history.Event) {
	t.Helper()
	spec := e2eSpec(t, runtime, append([]string{"--target-file", examples + file}, args...)...)
	o, _ := runE2E(t, context.Background(), spec)
	assert.Empty(t, leftovers(t, o.Dir), "nothing of the run is left: nodes, shims, namespaces")
	return o, readEvents(t, o.Dir)
}

// validUnderFaults runs file under partitions, kills and pauses: valid, every kind injected.
// Seed 28 takes them in the order partition (halves), pause (the leader), kill (all),
// each within the first round of the schedule (by about 7 s): the two that heal at once
// come first, so that a slow restart of killed containers (up to 10 s on a busy machine,
// more in CI) cannot push another kind out of the run.
func validUnderFaults(t *testing.T, runtime, file string) {
	t.Helper()
	o, events := runFile(t, runtime, file, "--nemesis", "partition,kill,pause", "--seed", "28")
	t.Logf("%s on %s, partition,kill,pause, seed 28: %s (exit %d)", file, runtime, o.Verdict, o.ExitCode())
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	fs := nemesisFs(events)
	assert.True(t, fs["start-partition"] && fs["kill"] && fs["pause"], "every kind was injected: %v", fs)
}

// caught runs file with its broken setting under partitions, seed after seed: invalid.
func caught(t *testing.T, file, brokenVar string) {
	t.Helper()
	var o Outcome
	for _, seed := range []string{"11", "12", "13"} {
		if o, _ = runFile(t, "process", file, "--target-var", brokenVar, "--nemesis", "partition", "--seed", seed,
			"--time-limit", "20s"); o.ExitCode() == results.ExitInvalid {
			t.Logf("%s with %s, partition, seed %s: %s (exit %d)", file, brokenVar, seed, o.Verdict, o.ExitCode())
			break
		}
		t.Logf("%s with %s, partition, seed %s: %s (exit %d): not caught this time", file, brokenVar, seed, o.Verdict, o.ExitCode())
	}
	require.Equal(t, results.ExitInvalid, o.ExitCode(), "%s with %s under partitions was not caught in 3 runs", file, brokenVar)
	assert.FileExists(t, filepath.Join(o.Dir, "linearizability.html"))
}

// raftnode through the http protocol: the verdicts of --target raftnode
// (TestRunCorrectNodeIsValid, TestRunCatchesStaleReads), and the hooks work for real.
func TestRunFileRaftnodeHTTP(t *testing.T) {
	t.Parallel()
	needNetns(t)
	onPath(t)
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		validUnderFaults(t, "process", "raftnode-http.yaml")
	})
	t.Run("stale-read caught", func(t *testing.T) {
		t.Parallel()
		caught(t, "raftnode-http.yaml", "unsafe=stale-read")
	})
	t.Run("member and clock hooks", func(t *testing.T) {
		t.Parallel()
		o, events := runFile(t, "process", "raftnode-http.yaml", "--nemesis", "member,clock", "--seed", "4",
			"--nemesis-interval", "2s")
		require.NoError(t, o.Err)
		assert.Equal(t, checker.Valid, o.Verdict)
		fs := nemesisFs(events)
		assert.True(t, fs["member-remove"] && fs["member-add"], "a member was replaced: %v", fs)
		assert.True(t, fs["clock-bump"] || fs["clock-skew"] || fs["clock-strobe"], "a clock was changed: %v", fs)
	})
}

// etcd through the exec protocol, with the Python shim: the verdicts of --target etcd
// (TestRunEtcdIsValidUnderFaults, TestRunEtcdSerializableReadsAreCaught); and through
// the etcd protocol.
func TestRunFileEtcd(t *testing.T) {
	t.Parallel()
	needNetns(t)
	onPath(t, "etcd")
	t.Run("exec valid", func(t *testing.T) {
		t.Parallel()
		validUnderFaults(t, "process", "etcd-exec.yaml")
	})
	t.Run("exec serializable reads caught", func(t *testing.T) {
		t.Parallel()
		caught(t, "etcd-exec.yaml", "reads=serializable")
	})
	t.Run("etcd protocol valid", func(t *testing.T) {
		t.Parallel()
		validUnderFaults(t, "process", "etcd.yaml")
	})
	t.Run("exec transactions valid", func(t *testing.T) {
		t.Parallel()
		o, events := runFile(t, "process", "etcd-exec.yaml", "--workload", "txn", "--nemesis", "partition,kill", "--seed", "3")
		require.NoError(t, o.Err)
		assert.Equal(t, checker.Valid, o.Verdict)
		long := 0
		for _, e := range events {
			if e.Type == history.OK && e.F == history.OpTxn && len(e.Value.T) > 1 {
				long++
			}
		}
		assert.Positive(t, long, "transactions of several micro-operations committed through the shim")
	})
}

// hashicorp/raft, whose consensus code is not ours: faults take effect on it, and its
// unsafe local reads are caught.
func TestRunFileHashiraft(t *testing.T) {
	t.Parallel()
	needNetns(t)
	onPath(t, "hashiraft")
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		validUnderFaults(t, "process", "hashiraft.yaml")
	})
	t.Run("local reads caught", func(t *testing.T) {
		t.Parallel()
		caught(t, "hashiraft.yaml", "reads=local")
	})
}

// NATS JetStream's key-value store, built from the module proxy: valid on its newest
// release under faults (its bug of v2.10.22 is in the regression catalogue:
// examples/campaigns/regressions/nats-6888.yaml).
func TestRunFileNATS(t *testing.T) {
	t.Parallel()
	needNetns(t)
	onPath(t, "nats")
	validUnderFaults(t, "process", "nats.yaml")
}

func TestRunFileExamplesOnDocker(t *testing.T) {
	t.Parallel()
	if ok, why := docker.Available(context.Background()); !ok {
		t.Skip("needs a docker daemon: " + why)
	}
	onPath(t, "etcd", "hashiraft", "nats")
	for _, f := range []string{"raftnode-http.yaml", "etcd-exec.yaml", "hashiraft.yaml", "nats.yaml"} {
		t.Run(f, func(t *testing.T) {
			t.Parallel()
			validUnderFaults(t, "docker", f)
		})
	}
}

// A bad target file is exit 4 with one line naming the problem, before anything runs;
// a node that never gets ready, or a shim that answers garbage or dies, is exit 3, the
// run stopped, the line naming the node or the shim.
func TestRunFileBadTargets(t *testing.T) {
	t.Parallel()
	const good = `ports: {client: 8001, peer: 7001}
peers: {port: peer, traffic: messages}
nodes:
  command: [raftnode, '--id={{.ID}}', '--peers={{.Cluster.IDURL}}', '--listen-peer={{.Bind.peer}}',
    '--listen-client={{.Bind.client}}', '--data-dir={{.DataDir}}']
ready:
  http: {port: client, path: /status}
  timeout: 3s
client:
  protocol: http
  port: client
`
	// A shim that starts, takes the harness's readiness write and fails a workload's first
	// operation (a fail is always the truth), then misbehaves.
	shim := func(then string) string {
		return strings.Replace(good, "  protocol: http\n  port: client\n", `  protocol: exec
  command: [sh, -c, 'read l; echo "{\"id\":0,\"type\":\"ok\"}"; read l; t=fail; case "$l" in *faultline-ready*) t=ok;; esac;
    echo "{\"id\":1,\"type\":\"$t\"}"; read l; `+then+`']
`, 1)
	}
	for _, c := range []struct {
		name, file string
		exit       results.ExitCode
		want       string
		run        bool // a whole run (cluster started)
	}{
		{"unknown field", strings.Replace(good, "nodes:\n  command:", "nodes:\n  commnd:", 1), results.ExitUsage, `line 4: unknown field "commnd"`, false},
		{"template does not render", strings.Replace(good, "{{.ID}}", "{{.Id}}", 1), results.ExitUsage, `template "--id={{.Id}}" does not render`, false},
		{"command not found", strings.Replace(good, "[raftnode,", "[raftnoed,", 1), results.ExitUsage, `program "raftnoed" not found in $PATH`, false},
		{"node never ready", strings.Replace(good, "[raftnode,", "[sh, -c, 'exec sleep 600',", 1), results.ExitError, "the cluster was not ready within 3s (ready.timeout): n1 is not ready", true},
		{"shim answers garbage", shim("echo garbage; sleep 10"), results.ExitError, `answered "garbage" to {"id":2`, true},
		{"shim dies", shim("exit 7"), results.ExitError, "exited (exit status 7) with an operation outstanding", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			onPath(t)
			p := filepath.Join(t.TempDir(), "target.yaml")
			require.NoError(t, os.WriteFile(p, []byte(c.file), 0o644))
			args := []string{"--target-file", p, "--runtime", "process", "--nodes", "3", "--nemesis", "none",
				"--time-limit", "10s", "--results", t.TempDir()}
			spec, err := ParseTestArgs(args, &bytes.Buffer{})
			if !c.run {
				var ue *UsageError
				require.ErrorAs(t, err, &ue, "found before anything runs")
				assert.Contains(t, err.Error(), c.want)
				assert.NotContains(t, err.Error(), "\n", "one line")
				// A file edited after the spec was read does not change the run: the spec
				// carries the text it read (and test.json records it, for a replay).
				require.NoError(t, os.WriteFile(p, []byte(good), 0o644))
				spec, err = ParseTestArgs(args, &bytes.Buffer{})
				require.NoError(t, err)
				require.NoError(t, os.WriteFile(p, []byte(c.file), 0o644))
				plan, err := NewPlan(context.Background(), spec)
				require.NoError(t, err, "the plan runs the text as it was read")
				assert.Equal(t, good, plan.Spec.Options().(*file.Options).Text)
				return
			}
			require.NoError(t, err)
			needNetns(t)
			if testing.Short() {
				t.Skip("starts a cluster: skipped in -short mode")
			}
			o, _ := runE2E(t, context.Background(), spec)
			assert.Equal(t, c.exit, o.ExitCode())
			require.Error(t, o.Err)
			t.Logf("exit %d: %v", o.ExitCode(), o.Err)
			assert.Contains(t, o.Err.Error(), c.want)
			assert.Empty(t, leftovers(t, o.Dir))
			if strings.HasPrefix(c.name, "shim") {
				assert.NotContains(t, o.Err.Error(), "\n", "one line")
				assert.Contains(t, o.Err.Error(), "exec shim")
				var infos int
				for _, e := range readEvents(t, o.Dir) {
					if e.Type == history.Info && strings.Contains(e.Error, "exec shim") {
						infos++
					}
				}
				assert.Positive(t, infos, "the shim's operation in flight is indeterminate")
			}
		})
	}
}

func TestParseTargetFile(t *testing.T) {
	onPath(t)
	ex := examples + "raftnode-http.yaml"
	s, err := ParseTestArgs([]string{"--target-file", ex, "--target-var", "unsafe=stale-read"}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "file", s.Target, "--target-file implies the file target")
	assert.Equal(t, "raftnode-http-register", s.Name, "named after the file's system")
	replay := ReplayCommand(s)
	assert.Contains(t, replay, "--target file")
	assert.Contains(t, replay, "--target-file "+ex)
	assert.Contains(t, replay, "--target-var unsafe=stale-read")

	spec := filepath.Join(t.TempDir(), "spec.yaml")
	require.NoError(t, os.WriteFile(spec, []byte("target-file: "+ex+"\ntarget-var: [unsafe=lease-read]\n"), 0o644))
	s, err = ParseTestArgs([]string{"-f", spec}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, List{"unsafe=lease-read"}, s.Options().(*file.Options).Vars, "the flags as YAML keys")
	require.NoError(t, os.WriteFile(spec, []byte("file: {file: "+ex+", vars: [unsafe=lease-read]}\n"), 0o644))
	s, err = ParseTestArgs([]string{"-f", spec}, &bytes.Buffer{})
	require.NoError(t, err)
	assert.Equal(t, "file", s.Target)
	assert.Equal(t, List{"unsafe=lease-read"}, s.Options().(*file.Options).Vars, "the target's section")

	for want, args := range map[string][]string{
		"give one of them":                           {"--target", "etcd", "--target-file", ex},
		"options of several targets are given":       {"--target-file", ex, "--etcd-version", "v3.7.3"},
		"several targets are given (file, raftnode)": {"--target-file", ex, "--unsafe", "stale-read"},
		"file needs --target-file":                   {"--target", "file"},
		"file needs --target-file FILE":              {"--target-var", "a=b"},
		"is not NAME=VALUE":                          {"--target-file", ex, "--target-var", "unsafe"},
		"declares no such var":                       {"--target-file", ex, "--target-var", "mood=x"},
		"and the target is raftnode: give":           {"--target", "raftnode", "--target-file", ex},
		"no such file or directory":                  {"--target-file", "nope.yaml"},
		"target: \"zk\" is not one ":                 {"--target", "zk"},
	} {
		_, err := ParseTestArgs(args, &bytes.Buffer{})
		var ue *UsageError
		require.ErrorAs(t, err, &ue, "%v", args)
		assert.Contains(t, err.Error(), want)
	}
}
