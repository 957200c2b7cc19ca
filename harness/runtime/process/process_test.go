package process

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/internal/procstat"
)

// TestMain lets the test binary act as a tiny node ("serve ADDR NAME") and as a probe run
// inside a namespace ("dial ADDR"), so runtime tests need no other program.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 {
		switch os.Args[1] {
		case "serve":
			name := os.Args[3]
			err := http.ListenAndServe(os.Args[2], http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				fmt.Fprint(w, name)
			}))
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		case "dial":
			hc := &http.Client{Timeout: time.Second}
			resp, err := hc.Get("http://" + os.Args[2])
			if err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			b, _ := io.ReadAll(resp.Body)
			fmt.Print(string(b))
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces (root): skipped in -short mode")
	}
	if ok, why := netns.Available(); !ok {
		t.Skip("needs network namespaces (root, ip, nsenter): " + why)
	}
}

func get(addr string) (string, error) {
	hc := &http.Client{Timeout: 700 * time.Millisecond}
	resp, err := hc.Get("http://" + addr)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func startServers(t *testing.T, names []string) *ProcessRuntime {
	t.Helper()
	ctx := context.Background()
	rt := NewProcessRuntime(fmt.Sprintf("t%05d", os.Getpid()%100000), t.TempDir())
	t.Cleanup(func() { assert.NoError(t, rt.Close(ctx)) })
	require.NoError(t, rt.Prepare(ctx, names, []int{8001}))
	for _, n := range names {
		require.NoError(t, rt.Launch(ctx, n, serveCmd(rt, n)))
	}
	for _, n := range names {
		require.Eventually(t, func() bool { s, err := get(rt.HostPort(n, 8001)); return err == nil && s == n },
			10*time.Second, 50*time.Millisecond, "%s answers", n)
	}
	return rt
}

func serveCmd(rt *ProcessRuntime, n string) runtime.NodeCmd {
	return runtime.NodeCmd{Program: os.Args[0], Args: []string{"serve", rt.Env(n).Bind(8001), n}}
}

func stateOf(t *testing.T, rt *ProcessRuntime, node string) string {
	st, err := rt.State(node)
	require.NoError(t, err)
	return string(st)
}

func TestProcessRuntimePauseKillRestart(t *testing.T) {
	needNetns(t)
	rt := startServers(t, []string{"n1", "n2"})
	ctx := context.Background()

	require.NoError(t, rt.Pause(ctx, "n2"))
	assert.Equal(t, "T", stateOf(t, rt, "n2"), "a paused node is stopped")
	p, err := rt.running("n2")
	require.NoError(t, err)
	all, err := procstat.Stopped(p.cmd.Process.Pid)
	require.NoError(t, err)
	assert.True(t, all, "every thread of a paused node is stopped")
	_, err = get(rt.HostPort("n2", 8001))
	assert.Error(t, err, "a paused node answers nothing")
	require.NoError(t, rt.Resume(ctx, "n2"))
	s, err := get(rt.HostPort("n2", 8001))
	require.NoError(t, err)
	assert.Equal(t, "n2", s)

	old, err := rt.running("n2")
	require.NoError(t, err)
	require.NoError(t, rt.Kill(ctx, "n2"))
	assert.False(t, rt.Running("n2"), "a killed node is gone")
	_, err = get(rt.HostPort("n2", 8001))
	var opErr *net.OpError
	assert.ErrorAs(t, err, &opErr)
	require.NoError(t, rt.Launch(ctx, "n2", serveCmd(rt, "n2")))
	require.Eventually(t, func() bool { s, err := get(rt.HostPort("n2", 8001)); return err == nil && s == "n2" },
		10*time.Second, 50*time.Millisecond, "a restarted node comes back")
	now, err := rt.running("n2")
	require.NoError(t, err)
	assert.NotEqual(t, old.cmd.Process.Pid, now.cmd.Process.Pid)
	assert.Error(t, rt.Launch(ctx, "n2", serveCmd(rt, "n2")), "a running node is not launched twice")
}

func TestProcessRuntimeCloseLeavesNothing(t *testing.T) {
	needNetns(t)
	ctx := context.Background()
	id := fmt.Sprintf("tc%05d", os.Getpid()%100000)
	rt := NewProcessRuntime(id, t.TempDir())
	require.NoError(t, rt.Prepare(ctx, []string{"n1", "n2"}, []int{8001}))
	for _, n := range []string{"n1", "n2"} {
		require.NoError(t, rt.Launch(ctx, n, serveCmd(rt, n)))
	}
	ns, _ := exec.Command("ip", "netns", "list").Output()
	require.Contains(t, string(ns), id, "the run has namespaces")
	require.NoError(t, rt.Pause(ctx, "n1"), "a paused node must not block Close")
	require.NoError(t, rt.Close(ctx))
	require.NoError(t, rt.Close(ctx), "Close is idempotent")
	ns, _ = exec.Command("ip", "netns", "list").Output()
	links, _ := exec.Command("ip", "-o", "link").Output()
	assert.NotContains(t, string(ns), id, "no namespace of the run is left (other runs may come and go)")
	assert.NotContains(t, string(links), "fl-"+id)
	assert.False(t, rt.Running("n1"))
}

func TestCleanFindsOnlyOrphanedNodes(t *testing.T) {
	harness := exec.Command("sleep", "60") // a live "harness"
	require.NoError(t, harness.Start())
	defer harness.Process.Kill()
	start := func(h int) *exec.Cmd {
		c := exec.Command("sleep", "60")
		c.Env = append(os.Environ(), runtime.RunEnv+"=tclean", fmt.Sprintf("%s=%d", runtime.HarnessEnv, h))
		require.NoError(t, c.Start())
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}
	ofLive, orphan := start(harness.Process.Pid), start(1<<22) // a pid above pid_max: gone
	pids, err := Orphans()
	require.NoError(t, err)
	assert.Contains(t, pids, orphan.Process.Pid, "a node whose harness is gone is left behind")
	assert.NotContains(t, pids, ofLive.Process.Pid, "a live run's node is not ours to clean")
}
