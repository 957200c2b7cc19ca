package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
	"github.com/stretchr/testify/assert"
)

// TestMain lets the test binary run as a node program (raftnode), as faultline does when
// the harness links it under that name, so tests can drive whole runs in-process.
func TestMain(m *testing.M) {
	if prog, ok := sut.Program(filepath.Base(os.Args[0])); ok {
		os.Exit(prog(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// Every bad input and every environment failure is one line naming the problem and the
// right exit code: never a panic, never silence.
func TestErrorsAreOneLineAndTheRightExitCode(t *testing.T) {
	spec := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(spec, []byte("nodes: 3\nflood: yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// An etcd that only says which release it is: enough for a plan, which runs nothing.
	fakeEtcd := filepath.Join(t.TempDir(), "etcd")
	if err := os.WriteFile(fakeEtcd, []byte("#!/bin/sh\necho 'etcd Version: 3.4.23'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code results.ExitCode
		says string
		// run: the case plans a run (its runtime's abilities): needs root, or faultline
		// would re-execute itself in a user namespace (where the plan is made).
		run  bool
		need string // a file the case needs
		env  []string
	}{
		{name: "no command", args: nil, code: 4, says: "usage"},
		{name: "unknown command", args: []string{"frobnicate"}, code: 4, says: `unknown command "frobnicate"`},
		{name: "bad flag value", args: []string{"test", "--nodes", "0"}, code: 4, says: "nodes: 0 is outside"},
		{name: "unknown flag", args: []string{"test", "--frobnicate"}, code: 4, says: "frobnicate"},
		{name: "spec file missing", args: []string{"test", "-f", "/nonexistent/spec.yaml"}, code: 4, says: "/nonexistent/spec.yaml"},
		{name: "spec file unknown key", args: []string{"test", "-f", spec}, code: 4, says: "flood"},
		{name: "unsafe mode on etcd", args: []string{"test", "--target", "etcd", "--unsafe", "stale-read"}, code: 4, says: "--unsafe is an option of target raftnode, and the target is etcd"},
		{name: "etcd flag on raftnode", args: []string{"test", "--target", "raftnode", "--etcd-version", "v3.7.3"}, code: 4, says: "--etcd-version is an option of target etcd"},
		{name: "a fault the target cannot take", args: []string{"test", "--nemesis", "maintenance", "--runtime", "process"}, code: 4,
			says: "maintenance is unavailable: raftnode has no maintenance operations (target raftnode, runtime process)", run: true},
		{name: "an unknown variant", args: []string{"test", "--nemesis", "kill:bogus"}, code: 4, says: "its variants are one, leader, minority, majority, all"},
		{name: "a variant the target cannot take", args: []string{"test", "--target", "etcd", "--etcd-binary", fakeEtcd, "--nemesis", "packet:duplicate", "--runtime", "process"},
			code: 4, says: "packet:duplicate", run: true},
		{name: "a combination with a part unavailable", args: []string{"test", "--nemesis", "partition:leader+maintenance", "--runtime", "process"},
			code: 4, says: "raftnode has no maintenance operations", run: true},
		{name: "an unknown workload", args: []string{"test", "--workload", "queue"}, code: 4, says: `workload: "queue" is not one of register, set, append`},
		{name: "an unknown runtime", args: []string{"test", "--runtime", "vm"}, code: 4, says: `runtime: "vm" is not one of auto,`},
		{name: "an upgrade path not newer", args: []string{"test", "--target", "etcd", "--etcd-version", "v3.6.16", "--upgrade-to", "v3.5.35"}, code: 4, says: "not newer than v3.6.16"},
		{name: "a target file missing", args: []string{"test", "--target-file", "/nonexistent/t.yaml"}, code: 4, says: "/nonexistent/t.yaml"},
		{name: "a target var undeclared", args: []string{"test", "--target-file", "../../examples/raftnode-http.yaml", "--target-var", "nope=1"}, code: 4, says: "declares no such var"},
		{name: "campaign without a file", args: []string{"campaign"}, code: 4, says: "-f FILE"},
		{name: "campaign file missing", args: []string{"campaign", "-f", "/nonexistent/c.yaml"}, code: 4, says: "/nonexistent/c.yaml"},
		{name: "campaign file with unknown keys", args: []string{"campaign", "-f", spec}, code: 4, says: "flood"},
		{name: "zoo bad shard", args: []string{"zoo", "--shard", "3/2"}, code: 4, says: `shard "3/2"`},
		{name: "merge nothing", args: []string{"campaign", "merge"}, code: 4, says: "which shard directories"},
		{name: "merge a non-campaign", args: []string{"campaign", "merge", "/nonexistent/shard"}, code: 4, says: "/nonexistent/shard"},
		{name: "replay a non-run", args: []string{"test", "--replay", "/nonexistent/run"}, code: 4, says: "not a run directory"},
		{name: "replay and a spec file", args: []string{"test", "--replay", "/x", "-f", spec}, code: 4, says: "give one of them"},
		{name: "count negative", args: []string{"test", "--count", "-1"}, code: 4, says: "count: -1"},
		{name: "clean takes no arguments", args: []string{"clean", "everything"}, code: 4, says: "everything"},
		{name: "check without a file", args: []string{"check"}, code: 4, says: "check"},
		{name: "check a missing file", args: []string{"check", "/nonexistent/history.jsonl"}, code: 4, says: "/nonexistent/history.jsonl"},
		{name: "results not writable", args: []string{"test", "--results", "/proc/forbidden", "--time-limit", "5s"},
			code: 4, says: "/proc/forbidden", run: true},
		{name: "no docker daemon", args: []string{"test", "--runtime", "docker", "--time-limit", "5s"},
			code: 3, says: "no docker daemon answers", run: true, env: []string{"DOCKER_HOST=unix:///nonexistent/docker.sock"}},
		{name: "etcd binary missing", args: []string{"test", "--target", "etcd", "--etcd-binary", "/nonexistent/etcd"}, code: 4, says: "/nonexistent/etcd"},
		{name: "etcd binary that is not etcd", args: []string{"test", "--target", "etcd", "--etcd-binary", "/bin/true"}, code: 4, says: "etcd-binary"},
		{name: "etcd release line unknown", args: []string{"test", "--target", "etcd", "--etcd-version", "v3.9.1"}, code: 4, says: "v3.9.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.run && os.Geteuid() != 0 {
				t.Skip("starts a run: as another user than root, faultline re-executes itself in a user namespace")
			}
			if tc.need != "" {
				if _, err := os.Stat(tc.need); err != nil {
					t.Skip("needs " + tc.need + " (CI installs Debian's etcd-server)")
				}
			}
			for _, kv := range tc.env {
				k, v, _ := strings.Cut(kv, "=")
				t.Setenv(k, v)
			}
			args := tc.args
			if tc.run && !containsArg(args, "--results") {
				args = append(args, "--results", t.TempDir())
			}
			resultsDir := t.TempDir()
			isTest := len(args) > 0 && args[0] == "test"
			if !containsArg(args, "--results") && isTest {
				args = append(args, "--results", resultsDir)
			}
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			code := run(ctx, args, &stdout, &stderr)
			all := stdout.String() + stderr.String()
			assert.Equal(t, tc.code, code, "exit code; output:\n%s", all)
			assert.Contains(t, all, tc.says, "the message names the problem")
			assert.NotContains(t, all, "goroutine ", "no panic")
			if tc.code == 4 && isTest {
				assert.Equal(t, 1, strings.Count(strings.TrimSpace(all), "\n")+1, "a usage error is one line: %q", all)
				assert.NotContains(t, all, "verdict", "a usage error prints no verdict")
				made, _ := os.ReadDir(resultsDir)
				assert.Empty(t, made, "a usage error writes nothing")
			}
		})
	}
}

func containsArg(args []string, a string) bool {
	for _, x := range args {
		if x == a {
			return true
		}
	}
	return false
}

// A disk that fills up while the history is written ends the run in an error that says
// so (exit 3), never in a verdict drawn from a history that is not on disk.
func TestAFullDiskIsAnError(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a whole run: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to mount a small tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "faultline-full", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	code := run(ctx, []string{"test", "--runtime", "process", "--nodes", "3", "--nemesis", "none", "--time-limit", "10s",
		"--recovery", "0s", "--results", dir}, &stdout, &stderr)
	all := stdout.String() + stderr.String()
	assert.Equal(t, results.ExitError, code, "output:\n%s", all)
	assert.Contains(t, all, "no space left on device")
	assert.NotContains(t, all, "verdict: VALID")
}

// A port in use is one line naming it, exit 3: faultline serve on a taken address.
func TestAPortInUseIsOneLine(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	code := run(ctx, []string{"serve", "--results", t.TempDir(), "--addr", l.Addr().String()}, &stdout, &stderr)
	assert.Equal(t, results.ExitError, code)
	assert.Contains(t, stderr.String(), l.Addr().String())
	assert.Contains(t, stderr.String(), "address already in use")
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(stderr.String()), "\n")+1, "one line: %q", stderr.String())
}
