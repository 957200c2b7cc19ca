package etcd

import (
	"context"
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestBinaryVersionDebian(t *testing.T) {
	const debian = "/usr/bin/etcd"
	if _, err := os.Stat(debian); err != nil {
		t.Skipf("no %s (Debian's etcd-server): %v", debian, err)
	}
	v, err := BinaryVersion(context.Background(), debian)
	if err != nil {
		t.Fatal(err)
	}
	if v != "v3.4.23" {
		t.Errorf("BinaryVersion(%s) = %q, want v3.4.23", debian, v)
	}
}

func TestBinaryVersionNotEtcd(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "notetcd")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{script, filepath.Join(dir, "missing"), "/bin/false"} {
		if v, err := BinaryVersion(context.Background(), p); err == nil {
			t.Errorf("BinaryVersion(%s) = %q, want an error", p, v)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"v3.7.3", "v3.6.16", "v3.5.35", "v3.6.0-rc.1", "v3.7.0-alpha.0"} {
		if err := checkVersion(v); err != nil {
			t.Errorf("checkVersion(%q) = %v, want nil", v, err)
		}
	}
	for v, want := range map[string]string{
		"3.7": "not a release version", "v3.7": "not a release version", "": "not a release version",
		"v3.7.3.1": "not a release version", "latest": "not a release version", "v03.7.3": "not a release version",
		"v3.4.23": "--etcd-binary", "v9.9.9": "not built", "v3.3.27": "not built",
	} {
		err := checkVersion(v)
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Version != v || !strings.Contains(err.Error(), want) {
			t.Errorf("checkVersion(%q) = %v, want a *VersionError saying %q", v, err, want)
		}
	}
}

// withCache points CacheDir at a fresh directory for the test.
func withCache(t *testing.T) string {
	d := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", d)
	got, err := CacheDir()
	if err != nil || got != filepath.Join(d, "faultline", "etcd") {
		t.Fatalf("CacheDir() = %q, %v", got, err)
	}
	return got
}

// A malformed version is refused before anything else: no go, no network, no files.
func TestBinaryMalformedVersion(t *testing.T) {
	cache := withCache(t)
	t.Setenv("PATH", "")
	t.Setenv("GOPROXY", "off")
	for _, v := range []string{"3.7", "v3.4.23", "v9.9.9"} {
		start := time.Now()
		_, err := Binary(context.Background(), v, func(l string) { t.Errorf("progress %q", l) })
		var ve *VersionError
		if !errors.As(err, &ve) || ve.Version != v {
			t.Errorf("Binary(%q) = %v, want a *VersionError", v, err)
		}
		// Refusing takes microseconds; a `go` run would take seconds. The bound leaves
		// room for a loaded CI machine.
		if d := time.Since(start); d > time.Second {
			t.Errorf("Binary(%q) took %v", v, d)
		}
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the cache dir was created: %v", err)
	}
}

// A version the proxy does not have is a *VersionError naming it, found by `go get`.
func TestBinaryUnknownVersion(t *testing.T) {
	withCache(t)
	const v = "v3.7.999"
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	_, err := Binary(ctx, v, nil)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Version != v || !strings.Contains(err.Error(), v) {
		t.Fatalf("Binary(%q) = %v, want a *VersionError naming it", v, err)
	}
	t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
}

func TestBinaryNoGo(t *testing.T) {
	withCache(t)
	t.Setenv("PATH", "")
	old := goCandidates
	goCandidates = []string{filepath.Join(t.TempDir(), "go")}
	t.Cleanup(func() { goCandidates = old })
	_, err := Binary(context.Background(), "v3.7.3", nil)
	if !errors.Is(err, ErrNoGo) {
		t.Fatalf("Binary without go = %v, want ErrNoGo", err)
	}
}

// A second Binary call waits for the lock held by a first (here, the test), then uses
// what the first put in the cache instead of building again.
func TestBinaryWaitsForAnotherBuild(t *testing.T) {
	cache := withCache(t)
	// Should it try to build, it fails at once instead.
	t.Setenv("PATH", "")
	oldGo := goCandidates
	goCandidates = nil
	t.Cleanup(func() { goCandidates = oldGo })
	oldEvery := progressEvery
	progressEvery = 50 * time.Millisecond
	t.Cleanup(func() { progressEvery = oldEvery })
	const v = "v3.7.3"
	dir := filepath.Join(cache, v)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var lines []string
	type result struct {
		path string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		p, err := Binary(context.Background(), v, func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock() })
		done <- result{p, err}
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case r := <-done:
		t.Fatalf("Binary returned while the lock was held: %v %v", r.path, r.err)
	default:
	}
	// "The other build" finishes: a binary (a stand-in script) appears, the lock goes.
	tmp := filepath.Join(dir, "etcd.tmp")
	if err := os.WriteFile(tmp, []byte("#!/bin/sh\necho 'etcd Version: 3.7.3'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "etcd")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_UN); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.err != nil || r.path != filepath.Join(dir, "etcd") {
			t.Fatalf("Binary = %q, %v; want the cached one", r.path, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Binary did not return after the lock was released")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lines) == 0 || !strings.Contains(lines[0], "waiting for another build of etcd v3.7.3") {
		t.Errorf("progress while waiting = %q", lines)
	}
	for _, l := range lines {
		if strings.Contains(l, "building") {
			t.Errorf("it built: %q", l)
		}
	}
}

// TestBinaryBuildsAndCaches builds etcd v3.7.3 into the real cache (about a minute, the
// first time only), then checks that a second call returns at once from the cache.
func TestBinaryBuildsAndCaches(t *testing.T) {
	if testing.Short() {
		t.Skip("builds etcd from the Go module proxy (about a minute the first time)")
	}
	const v = "v3.7.3"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	var mu sync.Mutex
	var lines []string
	progress := func(l string) { mu.Lock(); lines = append(lines, l); mu.Unlock(); t.Log(l) }
	// Two concurrent calls: one builds (or finds the cache), the other waits for it.
	paths := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			paths[i], errs[i] = Binary(ctx, v, progress)
		}()
	}
	wg.Wait()
	first := time.Since(start)
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("Binary(%s): %v", v, errs[i])
		}
	}
	cache, _ := CacheDir()
	if paths[0] != paths[1] || paths[0] != filepath.Join(cache, v, "etcd") {
		t.Fatalf("Binary paths %q, want both %s", paths, filepath.Join(cache, v, "etcd"))
	}
	t.Logf("first calls: %v", first.Round(time.Millisecond))
	mu.Lock()
	builds := 0
	for _, l := range lines {
		if strings.HasPrefix(l, "building etcd "+v+" from the Go module proxy…") {
			builds++
		}
	}
	mu.Unlock()
	if builds > 1 {
		t.Errorf("built %d times", builds)
	}

	if got, err := BinaryVersion(ctx, paths[0]); err != nil || got != v {
		t.Errorf("BinaryVersion(built) = %q, %v", got, err)
	}
	f, err := elf.Open(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked", paths[0])
		}
	}
	f.Close()
	if m, _ := filepath.Glob(filepath.Join(cache, v, "build-*")); len(m) > 0 {
		t.Errorf("build dirs left behind: %v", m)
	}

	start = time.Now()
	p, err := Binary(ctx, v, func(l string) { t.Errorf("progress from a cached call: %q", l) })
	if err != nil || p != paths[0] {
		t.Fatalf("second Binary = %q, %v", p, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the cached call took %v", d)
	} else {
		t.Logf("cached call: %v", d.Round(time.Millisecond))
	}
}
