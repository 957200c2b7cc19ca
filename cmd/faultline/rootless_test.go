package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A user without root (nobody, here) runs a test with partitions on local processes:
// faultline re-executes itself in a user namespace of its own, where it is root over the
// nodes' namespaces, so the partitions are real; nothing is left on the host.
func TestRootlessRunPartitionsInAUserNamespace(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("a whole run: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run faultline as another, unprivileged user")
	}
	const nobody = 65534
	probe := exec.Command("unshare", "--user", "--map-root-user", "--net", "true")
	probe.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("no unprivileged user namespaces here (%v: %s): faultline then runs on loopback", err, out)
	}
	dir, err := os.MkdirTemp("", "faultline-rootless")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o777))
	bin := filepath.Join(dir, "faultline")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "%s", out)

	cmd := exec.Command(bin, "test", "--runtime", "process", "--nodes", "3", "--time-limit", "8s",
		"--nemesis", "partition", "--nemesis-interval", "2s", "--recovery", "1s", "--seed", "3",
		"--results", filepath.Join(dir, "results"))
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir} // no sbin: faultline finds ip and nft
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	var outb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &outb, &outb
	err = cmd.Run()
	require.NoError(t, err, "faultline test as nobody:\n%s", outb.String())
	assert.Contains(t, outb.String(), "verdict: VALID")
	assert.Contains(t, outb.String(), "start-partition")

	logs, err := filepath.Glob(filepath.Join(dir, "results", "*", "*", "faultline.log"))
	require.NoError(t, err)
	require.Len(t, logs, 1)
	log, err := os.ReadFile(logs[0])
	require.NoError(t, err)
	assert.Contains(t, string(log), "unprivileged user namespace")
	st, err := os.Stat(logs[0])
	require.NoError(t, err)
	assert.Equal(t, uint32(nobody), st.Sys().(*syscall.Stat_t).Uid, "the results are the user's")
	tj, err := os.ReadFile(filepath.Join(filepath.Dir(logs[0]), "test.json"))
	require.NoError(t, err)
	var run struct {
		ID string `json:"run_id"`
	}
	require.NoError(t, json.Unmarshal(tj, &run))
	require.NotEmpty(t, run.ID)
	ns, _ := exec.Command("ip", "netns", "list").Output()
	assert.NotContains(t, string(ns), run.ID, "the run's namespaces lived in its own mount namespace and died with it")
	links, _ := exec.Command("ip", "-o", "link").Output()
	assert.NotContains(t, string(links), "fl-"+run.ID)
}
