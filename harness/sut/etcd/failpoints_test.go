package etcd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/internal/gofail"
)

func TestFailpointDirsPerLine(t *testing.T) {
	for _, l := range buildableLines {
		if len(failpointDirs[l]) == 0 {
			t.Errorf("no failpoint directories for buildable line %s", l)
		}
	}
	// Source trees with the layouts of 3.5 (mvcc/, wal/) and 3.6+ (storage/...), each
	// missing one directory of its list.
	layouts := map[string][]string{
		"3.5": {"etcdserver", "etcdserver/api/v3rpc", "lease", "mvcc", "mvcc/backend", "wal", "etcdmain"},
		"3.7": {"etcdserver", "etcdserver/api/v3rpc", "etcdserver/api/membership", "etcdserver/api/rafthttp",
			"lease", "storage/backend", "storage/mvcc", "storage/wal", "etcdmain"},
	}
	roots := map[string]string{}
	for line, dirs := range layouts {
		root := t.TempDir()
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		roots[line] = root
	}
	// A file where a directory is expected does not count.
	if err := os.WriteFile(filepath.Join(roots["3.5"], "mvcc", "backend", "x.go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		version, root string
		want          []string
	}{
		{"v3.5.4", roots["3.5"], []string{"etcdserver", "lease", "mvcc", "mvcc/backend", "wal"}},
		{"v3.5.35", roots["3.5"], []string{"etcdserver", "lease", "mvcc", "mvcc/backend", "wal"}},
		{"v3.7.3", roots["3.7"], []string{"etcdserver", "lease", "storage/backend", "storage/mvcc", "storage/wal",
			"etcdserver/api/v3rpc", "etcdserver/api/membership", "etcdserver/api/rafthttp"}},
		{"v3.6.0-rc.1", roots["3.7"], []string{"etcdserver", "lease", "storage/backend", "storage/mvcc", "storage/wal",
			"etcdserver/api/v3rpc", "etcdserver/api/membership", "etcdserver/api/rafthttp"}},
		// The 3.6+ list finds little in a 3.5 tree: each line has its own list.
		{"v3.6.4", roots["3.5"], []string{"etcdserver", "lease", "etcdserver/api/v3rpc"}},
		{"v3.4.23", roots["3.5"], nil},
		{"3.5", roots["3.5"], nil},
	} {
		if got := serverDirs(c.version, c.root); !reflect.DeepEqual(got, c.want) {
			t.Errorf("serverDirs(%s) = %q, want %q", c.version, got, c.want)
		}
	}
}

// testBuilder is a builder over a fresh temp dir, as build makes one; it skips the test
// without a go command.
func testBuilder(t *testing.T) *builder {
	t.Helper()
	goBin, err := findGo()
	if err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	env, err := buildEnv(ctx, goBin)
	if err != nil {
		t.Fatal(err)
	}
	tl := newTail(tailLines)
	return &builder{ctx: ctx, goBin: goBin, tmp: t.TempDir(), version: "v3.7.3", fl: failpointsFlavor,
		env: env, out: tl, tail: tl}
}

// editModules adds (or raises) the gofail requirement of the server's copy and replaces
// the server in the generated module, without network and whatever toolchain the copy
// names.
func TestFailpointModEdit(t *testing.T) {
	for name, extra := range map[string]string{
		"no gofail":  "",
		"old gofail": "require go.etcd.io/gofail v0.1.0\n",
	} {
		t.Run(name, func(t *testing.T) {
			b := testBuilder(t)
			t.Setenv("GOPROXY", "off")
			b.env = append(b.env, "GOPROXY=off", "GOTOOLCHAIN=auto")
			if err := os.WriteFile(filepath.Join(b.tmp, "go.mod"), []byte("module faultline.local/etcd\n\ngo 1.21\n\n"+
				"require go.etcd.io/etcd/server/v3 v3.7.3\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			srv := filepath.Join(b.tmp, serverModule)
			if err := os.Mkdir(srv, 0o755); err != nil {
				t.Fatal(err)
			}
			// A toolchain this Go is not: an edit run from the copy would try to switch.
			if err := os.WriteFile(filepath.Join(srv, "go.mod"), []byte("module go.etcd.io/etcd/server/v3\n\n"+
				"go 1.21\n\ntoolchain go1.99.1\n\nrequire (\n\tgo.etcd.io/bbolt v1.4.3\n)\n\n"+extra+
				"replace go.etcd.io/etcd/api/v3 => ../api\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := editModules(b); err != nil {
				t.Fatalf("editModules: %v\n%s", err, strings.Join(b.tail.lines(), "\n"))
			}
			sm, _ := os.ReadFile(filepath.Join(srv, "go.mod"))
			if n := strings.Count(string(sm), "go.etcd.io/gofail "); n != 1 || !strings.Contains(string(sm), "go.etcd.io/gofail v0.2.0") {
				t.Errorf("server go.mod does not require gofail v0.2.0 once:\n%s", sm)
			}
			if !strings.Contains(string(sm), "go.etcd.io/bbolt v1.4.3") || !strings.Contains(string(sm), "toolchain go1.99.1") {
				t.Errorf("server go.mod lost its lines:\n%s", sm)
			}
			mm, _ := os.ReadFile(filepath.Join(b.tmp, "go.mod"))
			if !strings.Contains(string(mm), "replace go.etcd.io/etcd/server/v3 => ./server") {
				t.Errorf("generated go.mod does not replace the server:\n%s", mm)
			}
		})
	}
}

func TestFailpointCopyTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	if err := os.MkdirAll(filepath.Join(src, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range map[string]string{"go.mod": "module x\n", "a/x.go": "package a\n", "a/b/y.go": "package b\n"} {
		if err := os.WriteFile(filepath.Join(src, p), []byte(c), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	// Read-only like the module cache.
	for _, d := range []string{"a/b", "a", ""} {
		if err := os.Chmod(filepath.Join(src, d), 0o555); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = exec.Command("chmod", "-R", "u+w", src).Run() })
	dst := filepath.Join(t.TempDir(), "server")
	if err := copyTree(src, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "a", "b", "y.go"))
	if err != nil || string(got) != "package b\n" {
		t.Fatalf("copied y.go = %q, %v", got, err)
	}
	// gofail writes next to the files it rewrites, and rewrites them.
	if err := os.WriteFile(filepath.Join(dst, "a", "x.go.tmp"), nil, 0o600); err != nil {
		t.Errorf("copy not writable: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dst, "a", "x.go"), []byte("package a // rewritten\n"), 0o644); err != nil {
		t.Errorf("copied file not writable: %v", err)
	}
	if err := copyTree(src, dst); err == nil {
		t.Error("copyTree over an existing copy = nil error")
	}
}

func TestFailpointVerify(t *testing.T) {
	dir := t.TempDir()
	with := filepath.Join(dir, "with")
	without := filepath.Join(dir, "without")
	_ = os.WriteFile(with, []byte("\x7fELF...go.etcd.io/gofail/runtime.(*Failpoint).Acquire..."), 0o755)
	_ = os.WriteFile(without, []byte("\x7fELF...go.etcd.io/etcd/server/v3/etcdmain.Main..."), 0o755)
	if err := verifyFailpoints(with); err != nil {
		t.Errorf("verify(with) = %v", err)
	}
	if err := verifyFailpoints(without); err == nil {
		t.Error("verify(without) = nil")
	}
	// The plain build of the cache (if any) has no failpoints.
	if cache, err := CacheDir(); err == nil {
		plain := filepath.Join(cache, testEtcdVersion, "etcd")
		if _, err := os.Stat(plain); err == nil {
			if err := verifyFailpoints(plain); err == nil {
				t.Errorf("verify(%s) = nil: the plain build links gofail", plain)
			}
		}
	}
}

// A malformed version is refused at once, as by Binary.
func TestFailpointBinaryMalformedVersion(t *testing.T) {
	withCache(t)
	t.Setenv("PATH", "")
	for _, v := range []string{"3.7", "v3.4.23"} {
		_, err := FailpointBinary(context.Background(), v, nil)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Version != v {
			t.Errorf("FailpointBinary(%q) = %v, want a *VersionError", v, err)
		}
	}
}

// syncBuffer is an io.Writer safe for a process's stdout and stderr together.
type syncBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// TestFailpointBinaryPanics builds etcd v3.7.3 with failpoints (a few minutes the first
// time; cached after), starts it as a one-member cluster with GOFAIL_HTTP, finds the
// failpoints of etcd issues 14370 and 14685 in its list, arms raftBeforeSave with panic,
// and checks that one put makes the server panic there.
func TestFailpointBinaryPanics(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd with failpoints from the Go module proxy (minutes the first time) and starts it")
	}
	if _, err := findGo(); err != nil {
		t.Skipf("cannot build etcd: %v", err)
	}
	const v = "v3.7.3"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	start := time.Now()
	bin, err := FailpointBinary(ctx, v, func(l string) { t.Log(l) })
	if err != nil {
		t.Fatalf("FailpointBinary(%s): %v", v, err)
	}
	t.Logf("FailpointBinary(%s) = %s (%v)", v, bin, time.Since(start).Round(time.Millisecond))
	cache, _ := CacheDir()
	if want := filepath.Join(cache, v+"-failpoints", "etcd"); bin != want {
		t.Errorf("path %s, want %s", bin, want)
	}
	if got, err := BinaryVersion(ctx, bin); err != nil || got != v {
		t.Fatalf("BinaryVersion = %q, %v", got, err)
	}
	if p2, err := FailpointBinary(ctx, v, func(l string) { t.Errorf("progress from a cached call: %q", l) }); err != nil || p2 != bin {
		t.Fatalf("second FailpointBinary = %q, %v", p2, err)
	}

	ports := testPorts(t, 3)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	gofailAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	dir := t.TempDir()
	m := &member{name: "fp1", endpoint: strings.TrimPrefix(client, "http://"), exited: make(chan struct{})}
	out := &syncBuffer{}
	m.cmd = exec.Command(bin,
		"--name", m.name, "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", m.name+"="+peer)
	m.cmd.Env = append(os.Environ(), "GOFAIL_HTTP="+gofailAddr)
	m.cmd.Stdout, m.cmd.Stderr = out, out
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	go func() { waitErr = m.cmd.Wait(); close(m.exited) }()
	t.Cleanup(func() { m.kill(t) })
	tail := func() string {
		s := out.String()
		if len(s) > 4000 {
			s = "…" + s[len(s)-4000:]
		}
		return s
	}

	rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
	defer rcancel()
	m.waitReady(t, rctx)
	gf := gofail.New(gofailAddr)
	fps, err := gf.List(rctx)
	if err != nil {
		t.Fatalf("List: %v\n%s", err, tail())
	}
	t.Logf("%d failpoints", len(fps))
	for _, name := range []string{"raftBeforeSave", "defragBeforeCopy"} {
		if term, ok := fps[name]; !ok || term != "" {
			t.Errorf("List has %s = %q, %v; want it, inactive", name, term, ok)
		}
	}
	if err := gf.Set(rctx, "raftBeforeSave", "panic"); err != nil {
		t.Fatal(err)
	}
	if fps, err := gf.List(rctx); err != nil || fps["raftBeforeSave"] != "panic" {
		t.Fatalf("after Set, List has raftBeforeSave = %q, %v", fps["raftBeforeSave"], err)
	}
	if n, err := gf.Count(rctx, "raftBeforeSave"); err != nil || n != 0 {
		t.Fatalf("Count before the put = %d, %v", n, err)
	}
	// One put over the gRPC gateway: raft saves its entry, and the failpoint fires.
	pctx, pcancel := context.WithTimeout(rctx, 5*time.Second)
	defer pcancel()
	req, _ := http.NewRequestWithContext(pctx, http.MethodPost, client+"/v3/kv/put",
		strings.NewReader(`{"key":"Zm9v","value":"YmFy"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("put answered %s %s (the panic may come after the answer)", resp.Status, strings.TrimSpace(string(b)))
	} else {
		t.Logf("put: %v", err)
	}
	select {
	case <-m.exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("etcd did not exit after the put\n%s", tail())
	}
	var ee *exec.ExitError
	if e, ok := waitErr.(*exec.ExitError); ok {
		ee = e
	}
	if ee == nil || ee.ExitCode() != 2 {
		t.Errorf("etcd exited with %v, want exit status 2 (a Go panic)", waitErr)
	}
	log := out.String()
	// gofail v0.2.0 says "failpoint panic: {}" for a bare panic on a struct{} failpoint:
	// the name is not in the message, so the stack must show where it fired.
	for _, want := range []string{"panic: failpoint panic", "go.etcd.io/gofail/runtime.(*Failpoint).Acquire",
		"go.etcd.io/etcd/server/v3/etcdserver.(*raftNode).start"} {
		if !strings.Contains(log, want) {
			t.Errorf("etcd's output lacks %q:\n%s", want, tail())
		}
	}
	if _, err := gf.List(ctx); !errors.Is(err, gofail.ErrNoEndpoint) {
		t.Errorf("List after the exit = %v, want ErrNoEndpoint", err)
	}
}
