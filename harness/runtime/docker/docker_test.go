package docker

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/docker/engine"
	"github.com/faultline/faultline/internal/netfilter"
)

func TestStampWriter(t *testing.T) {
	var buf bytes.Buffer
	l := &nodeLog{}
	w := &stampWriter{log: l, out: bufio.NewWriter(&buf)}
	_, _ = w.Write([]byte("2026-11-23T19:00:00.000000001Z hello\n2026-11-23T19:00:00.5Z wor"))
	_, _ = w.Write([]byte("ld\n"))
	assert.Equal(t, "hello\nworld\n", buf.String())
	assert.Equal(t, time.Date(2026, 11, 23, 19, 0, 0, 5e8, time.UTC), l.last)
}

func TestCheckNodeBinary(t *testing.T) {
	self, err := os.Executable()
	require.NoError(t, err)
	assert.NoError(t, CheckBinary(self), "static or not, a program of this host can be imaged")
	assert.Error(t, CheckBinary("/etc/hostname"))
}

func TestNodeImageFilesOfADynamicBinary(t *testing.T) {
	bin := buildTestNode(t, true)
	files, libPath, err := nodeImageFiles(bin, "/testnode")
	require.NoError(t, err)
	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	interp, err := interpreter(f)
	require.NoError(t, err)
	if interp == "" {
		t.Skip("go build with cgo made a static binary here (no C compiler?)")
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.path)
	}
	assert.Equal(t, "/testnode", paths[0])
	assert.Contains(t, paths, interp, "the loader, at the path the binary names")
	assert.True(t, slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(p, "libc.so") }), "%v", paths)
	assert.NotEmpty(t, libPath)
	b1, err := buildContext(files, libPath, "/testnode")
	require.NoError(t, err)
	b2, err := buildContext(files, libPath, "/testnode")
	require.NoError(t, err)
	assert.Equal(t, b1, b2, "the build context is deterministic (it keys the image cache)")
}

func TestDockerCanOnlyIsolateWhenRemote(t *testing.T) {
	assert.Contains(t, namespacesWhy("tcp://10.0.0.1:2376"), "remote")
	r := &DockerRuntime{nsWhy: namespacesWhy("ssh://ci@builder")}
	a := r.Abilities()
	assert.False(t, a.Partition)
	assert.False(t, a.Links)
	assert.True(t, a.Isolate)
	assert.Contains(t, a.Why, "remote")
}

// dockerOrSkip skips the test when no daemon answers (it runs for real in CI).
func dockerOrSkip(t *testing.T) *engine.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("docker integration test: skipped in -short mode")
	}
	if ok, why := Available(context.Background()); !ok {
		t.Skip("docker integration test needs a docker daemon: " + why)
	}
	cli, err := dockerClient()
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })
	return cli
}

// testNodeSrc is a stand-in for a node: it records each boot in its data dir, serves
// the record over HTTP, and logs a line.
const testNodeSrc = `package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

func main() {
	listen := flag.String("listen", "", "")
	data := flag.String("data-dir", "", "")
	exitAfter := flag.Duration("exit-after", 0, "")
	flag.Parse()
	if *exitAfter > 0 {
		go func() {
			time.Sleep(*exitAfter)
			fmt.Println("testnode on", *listen, "exits after", *exitAfter)
			os.Exit(3)
		}()
	}
	boots := filepath.Join(*data, "boots")
	f, err := os.OpenFile(boots, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	fmt.Fprintf(f, "boot\n")
	f.Sync()
	f.Close()
	fmt.Println("testnode listening on", *listen)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b, _ := os.ReadFile(boots)
		w.Write(b)
	})
	fmt.Fprintln(os.Stderr, http.ListenAndServe(*listen, nil))
	os.Exit(1)
}
`

// buildTestNode compiles testNodeSrc into a binary named testnode: static, or with cgo
// (dynamically linked where a C compiler is). The build is reproducible (-trimpath), so
// its image is the same from one test run to the next.
func buildTestNode(t *testing.T, cgo bool) string {
	t.Helper()
	src := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(src, "go.mod"), []byte("module testnode\n\ngo 1.22\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "main.go"), []byte(testNodeSrc), 0o644))
	bin := filepath.Join(t.TempDir(), "testnode")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod", "GOWORK=off")
	if cgo {
		if _, err := exec.LookPath("gcc"); err != nil {
			t.Skip("no C compiler: cannot build a dynamically linked test node")
		}
		cmd.Env = append(cmd.Env, "CGO_ENABLED=1")
	}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "build the test node: %s", out)
	return bin
}

func httpGet(addr string, timeout time.Duration) (string, error) {
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func waitAnswer(t *testing.T, addr string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := httpGet(addr, time.Second)
		if err == nil {
			return body
		}
		require.True(t, time.Now().Before(deadline), "%s never answered: %v", addr, err)
		time.Sleep(20 * time.Millisecond)
	}
}

// connects reports whether from's namespace can open a TCP connection to addr (run with
// the host's bash inside the namespace: the image has no tools).
func connects(t *testing.T, r *DockerRuntime, from, addr string) bool {
	t.Helper()
	ns, err := r.NetNS(from)
	require.NoError(t, err)
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("nsenter", "--net="+ns, "timeout", "2", "bash", "-c", fmt.Sprintf("exec 3<>/dev/tcp/%s/%s", host, port))
	return cmd.Run() == nil
}

func TestDockerRuntime(t *testing.T) {
	cli := dockerOrSkip(t)
	ctx := context.Background()
	bin := buildTestNode(t, false)

	// Image: cold build (after removing a cached one), then a warm, cached one.
	ref, err := EnsureImage(ctx, cli, bin, bin)
	require.NoError(t, err)
	err = cli.ImageRemove(ctx, ref, engine.ImageRemoveOptions{Force: true})
	require.NoError(t, err)
	t0 := time.Now()
	ref, err = EnsureImage(ctx, cli, bin, bin)
	require.NoError(t, err)
	cold := time.Since(t0)
	img1, err := cli.ImageInspect(ctx, ref)
	require.NoError(t, err)
	t0 = time.Now()
	ref2, err := EnsureImage(ctx, cli, bin, bin)
	require.NoError(t, err)
	warm := time.Since(t0)
	img2, err := cli.ImageInspect(ctx, ref2)
	require.NoError(t, err)
	assert.Equal(t, ref, ref2)
	assert.Equal(t, img1.ID, img2.ID, "a second EnsureImage must not rebuild")
	assert.Equal(t, "1", img1.Config.Labels[LabelOurs])
	t.Logf("image %s: cold build %v, warm %v", ref, cold.Round(time.Millisecond), warm.Round(time.Millisecond))

	runID := fmt.Sprintf("t%d", time.Now().UnixNano()%1e9)
	dir := t.TempDir()
	r, err := New(runID, dir, "")
	require.NoError(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			_ = r.Close(ctx)
		}
	})
	nodes := []string{"n1", "n2", "n3"}
	cmd := func(n string) runtime.NodeCmd {
		env := r.Env(n)
		return runtime.NodeCmd{Program: bin, Args: []string{"--listen", env.Bind(8001), "--data-dir", env.DataDir}}
	}
	t0 = time.Now()
	require.NoError(t, r.Prepare(ctx, nodes, []int{8001}))
	for _, n := range nodes {
		require.NoError(t, r.Launch(ctx, n, cmd(n)))
	}
	for _, n := range nodes {
		assert.Equal(t, "boot\n", waitAnswer(t, r.HostPort(n, 8001)), "%s reachable from the host", n)
	}
	t.Logf("Prepare to 3 containers answering: %v", time.Since(t0).Round(time.Millisecond))
	assert.Equal(t, ref, r.Image(bin))

	t.Run("no privileges, no capabilities, nothing published", func(t *testing.T) {
		for _, n := range nodes {
			res, err := cli.ContainerInspect(ctx, r.node(n).id)
			require.NoError(t, err)
			hc := res.HostConfig
			require.NotNil(t, hc)
			assert.False(t, hc.Privileged, "%s is not privileged", n)
			assert.Empty(t, hc.CapAdd, "%s gets no capability beyond docker's default", n)
			assert.Empty(t, hc.PortBindings, "%s publishes no port: it is reached on the run's network only", n)
			assert.False(t, hc.PublishAllPorts)
			assert.NotEqual(t, "host", string(hc.NetworkMode), "%s is not on the host's network", n)
			require.NotNil(t, res.Config)
			assert.Equal(t, fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()), res.Config.User, "%s runs as the harness's user", n)
		}
	})

	t.Run("pause", func(t *testing.T) {
		require.NoError(t, r.Pause(ctx, "n1"))
		_, err := httpGet(r.HostPort("n1", 8001), 500*time.Millisecond)
		assert.Error(t, err, "a paused node must not answer")
		assert.True(t, r.Running("n1"), "paused counts as running")
		require.NoError(t, r.Resume(ctx, "n1"))
		_, err = httpGet(r.HostPort("n1", 8001), 2*time.Second)
		assert.NoError(t, err)
	})

	t.Run("kill and restart keep the data", func(t *testing.T) {
		ns1, err := r.NetNS("n2")
		require.NoError(t, err)
		require.NoError(t, r.Kill(ctx, "n2"))
		assert.False(t, r.Running("n2"))
		_, err = httpGet(r.HostPort("n2", 8001), 500*time.Millisecond)
		assert.Error(t, err)
		require.NoError(t, r.Launch(ctx, "n2", cmd("n2")))
		assert.Equal(t, "boot\nboot\n", waitAnswer(t, r.HostPort("n2", 8001)))
		ns2, err := r.NetNS("n2")
		require.NoError(t, err)
		assert.NotEqual(t, ns1, ns2, "a restarted container has a new pid")
	})

	t.Run("kill while paused", func(t *testing.T) {
		require.NoError(t, r.Pause(ctx, "n3"))
		require.NoError(t, r.Kill(ctx, "n3"))
		assert.False(t, r.Running("n3"))
		require.NoError(t, r.Launch(ctx, "n3", cmd("n3")))
		waitAnswer(t, r.HostPort("n3", 8001))
	})

	t.Run("a new command makes a new container with the same data", func(t *testing.T) {
		require.NoError(t, r.Kill(ctx, "n3"))
		old := r.node("n3").id
		c := cmd("n3")
		c.Args = []string{c.Args[2], c.Args[3], c.Args[0], c.Args[1]} // same flags, other order
		require.NoError(t, r.Launch(ctx, "n3", c))
		assert.Equal(t, "boot\nboot\nboot\n", waitAnswer(t, r.HostPort("n3", 8001)))
		assert.NotEqual(t, old, r.node("n3").id)
		assert.Error(t, r.Launch(ctx, "n3", c), "already running")
	})

	t.Run("packets filtered in the namespace of each incarnation", func(t *testing.T) {
		if r.nsWhy != "" {
			t.Skip("the containers' namespaces are out of reach: " + r.nsWhy)
		}
		a2, a3 := r.HostPort("n2", 8001), r.HostPort("n3", 8001)
		require.True(t, connects(t, r, "n1", a2), "n1 → n2 before the filter")
		ns, err := r.NetNS("n1")
		require.NoError(t, err)
		require.NoError(t, netfilter.Partition(ctx, ns, []netip.Addr{r.Addr("n2")}, false))
		assert.False(t, connects(t, r, "n1", a2), "n1 → n2 filtered")
		assert.True(t, connects(t, r, "n1", a3), "n1 → n3 not")
		// A restarted container is a new namespace: the filter went with the old one
		// (the harness gives a partition in force to the new one).
		require.NoError(t, r.Kill(ctx, "n1"))
		require.NoError(t, r.Launch(ctx, "n1", cmd("n1")))
		waitAnswer(t, r.HostPort("n1", 8001))
		ns2, err := r.NetNS("n1")
		require.NoError(t, err)
		assert.NotEqual(t, ns, ns2)
		assert.True(t, connects(t, r, "n1", a2), "n1 → n2 in the new namespace")
	})

	t.Run("isolate", func(t *testing.T) {
		require.NoError(t, r.Isolate(ctx, []string{"n3"}))
		_, err := httpGet(r.HostPort("n3", 8001), 500*time.Millisecond)
		assert.Error(t, err, "a disconnected node is cut off")
		_, err = httpGet(r.HostPort("n1", 8001), time.Second)
		assert.NoError(t, err)
		require.NoError(t, r.Kill(ctx, "n3"))
		require.NoError(t, r.Launch(ctx, "n3", r.node("n3").cmd))
		_, err = httpGet(r.HostPort("n3", 8001), 500*time.Millisecond)
		assert.Error(t, err, "a disconnected node stays cut off across a restart")
		require.NoError(t, r.Isolate(ctx, nil))
		waitAnswer(t, r.HostPort("n3", 8001))
	})

	t.Run("logs survive restarts", func(t *testing.T) {
		require.NoError(t, r.Stop(ctx, "n2"))
		b, err := os.ReadFile(filepath.Join(dir, "nodes", "n2", "testnode.log"))
		require.NoError(t, err)
		assert.Equal(t, 2, strings.Count(string(b), "testnode listening on"), "%s", b)
		assert.Equal(t, 2, strings.Count(string(b), "Z starting "+bin), "%s", b)
		assert.Equal(t, 1, strings.Count(string(b), "exited with code 137"), "%s", b)
	})

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	require.NoError(t, r.Close(cancelled), "Close works on a cancelled context")
	closed = true
	require.NoError(t, r.Close(ctx), "Close is idempotent")
	f := engine.Filters{"label": {LabelRun + "=" + runID}}
	ctrs, err := cli.ContainerList(ctx, true, f)
	require.NoError(t, err)
	assert.Empty(t, ctrs)
	nets, err := cli.NetworkList(ctx, f)
	require.NoError(t, err)
	assert.Empty(t, nets)
}

// TestDockerCleanTouchesOnlyOurs: an object with a faultline.run label but without
// faultline=1 is not ours, and survives; so do the objects of a run whose harness lives.
func TestDockerCleanTouchesOnlyOurs(t *testing.T) {
	cli := dockerOrSkip(t)
	ctx := context.Background()
	run := fmt.Sprintf("c%d", time.Now().UnixNano()%1e9)
	notOurs, err := cli.NetworkCreate(ctx, engine.NetworkSpec{Name: "faultline-notours-" + run, Labels: map[string]string{LabelRun: run}})
	require.NoError(t, err)
	defer cli.NetworkRemove(ctx, notOurs)
	_, err = cli.NetworkCreate(ctx, engine.NetworkSpec{Name: "faultline-ours-" + run, Labels: map[string]string{LabelRun: run, LabelOurs: "1"}})
	require.NoError(t, err)
	sleeper := exec.Command("sleep", "60") // a live "harness"
	require.NoError(t, sleeper.Start())
	defer sleeper.Process.Kill()
	liveRun, err := cli.NetworkCreate(ctx, engine.NetworkSpec{Name: "faultline-live-" + run,
		Labels: map[string]string{LabelRun: run, LabelOurs: "1", LabelHarness: harnessID(sleeper.Process.Pid)}})
	require.NoError(t, err)
	defer cli.NetworkRemove(ctx, liveRun)
	_, err = cli.NetworkCreate(ctx, engine.NetworkSpec{Name: "faultline-dead-" + run,
		Labels: map[string]string{LabelRun: run, LabelOurs: "1", LabelHarness: harnessID(1 << 22)}}) // above pid_max
	require.NoError(t, err)
	removed, err := removeLabelled(ctx, cli, LabelRun+"="+run, false)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"network faultline-ours-" + run, "network faultline-dead-" + run}, removed,
		"left behind: no harness, or a dead one")
	_, err = cli.NetworkInspect(ctx, notOurs)
	assert.NoError(t, err, "an unlabelled network must survive")
	_, err = cli.NetworkInspect(ctx, liveRun)
	assert.NoError(t, err, "a live harness's network must survive a clean")
	removed, err = removeLabelled(ctx, cli, LabelRun+"="+run, true)
	require.NoError(t, err)
	assert.Equal(t, []string{"network faultline-live-" + run}, removed, "a run removes its own")
	if os.Getenv("FAULTLINE_TEST_CLEAN_ALL") == "1" { // removes every run's objects on this host
		_, err := CleanAll(ctx)
		assert.NoError(t, err)
	}
}

func TestDockerRunsADynamicBinary(t *testing.T) {
	cli := dockerOrSkip(t)
	ctx := context.Background()
	bin := buildTestNode(t, true)
	ref, err := EnsureImage(ctx, cli, bin, bin)
	require.NoError(t, err)
	r, err := New(fmt.Sprintf("d%d", time.Now().UnixNano()%1e9), t.TempDir(), ref)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close(ctx)) })
	require.NoError(t, r.Prepare(ctx, []string{"n1"}, []int{8001}))
	env := r.Env("n1")
	require.NoError(t, r.Launch(ctx, "n1", runtime.NodeCmd{Program: bin, Args: []string{"--listen", env.Bind(8001), "--data-dir", env.DataDir}}))
	assert.Equal(t, "boot\n", waitAnswer(t, r.HostPort("n1", 8001)), "the loader and libraries came along")
}

// Once Running says a node has stopped, its log holds all the node wrote, to its last
// line: that line says why a node exited (a node refusing its damaged data, say), and
// the log's copy lags the container (a corrupt fault once quoted an election line from
// before, instead of the refusal).
func TestDockerLogIsWholeOnceStopped(t *testing.T) {
	dockerOrSkip(t)
	ctx := context.Background()
	bin := buildTestNode(t, false)
	dir := t.TempDir()
	r, err := New(fmt.Sprintf("l%d", time.Now().UnixNano()%1e9), dir, "")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close(ctx)) })
	require.NoError(t, r.Prepare(ctx, []string{"n1"}, []int{8001}))
	env := r.Env("n1")
	for i := range 5 {
		listen := fmt.Sprintf("0.0.0.0:800%d", i) // a command of its own: a container of its own
		require.NoError(t, r.Launch(ctx, "n1", runtime.NodeCmd{Program: bin,
			Args: []string{"--listen", listen, "--data-dir", env.DataDir, "--exit-after", "300ms"}}))
		require.Eventually(t, func() bool { return !r.Running("n1") }, 30*time.Second, time.Millisecond)
		b, err := os.ReadFile(filepath.Join(dir, "nodes", "n1", "testnode.log"))
		require.NoError(t, err)
		assert.Contains(t, string(b), "testnode on "+listen+" exits after 300ms", "life %d's last line", i)
	}
}
