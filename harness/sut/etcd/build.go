package etcd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// VersionError is a version Binary cannot provide: malformed, of a release line that is
// not built this way, or unknown to the Go module proxy. It is a usage error (exit 4).
type VersionError struct {
	Version string // as given
	Why     string // one sentence, for the user
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("etcd version %q: %s", e.Version, e.Why)
}

// BuildError is a failed build of a valid version: the go command (or the check of the
// binary it produced) failed for a reason other than the version not existing — no
// network, a compile error, a full disk. It is an infrastructure error (exit 3).
type BuildError struct {
	Version    string
	Failpoints bool     // the build was FailpointBinary's, instrumented with gofail
	Tail       []string // the last lines of the go command's output (about 15)
	Err        error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	with := ""
	if e.Failpoints {
		with = " with failpoints"
	}
	fmt.Fprintf(&b, "build etcd %s%s: %v", e.Version, with, e.Err)
	for _, l := range e.Tail {
		b.WriteString("\n    ")
		b.WriteString(l)
	}
	return b.String()
}

func (e *BuildError) Unwrap() error { return e.Err }

// ErrNoGo is returned (wrapped) by Binary when it has to build and finds no go command.
var ErrNoGo = errors.New("no go command on PATH or at /usr/local/go/bin/go")

// buildableLines are the release lines Binary builds: their server is the module
// go.etcd.io/etcd/server/v3 with the package etcdmain, and they build with this Go.
var buildableLines = []string{"3.5", "3.6", "3.7"}

// versionRE is vX.Y.Z with an optional pre-release (v3.6.0-rc.1).
var versionRE = regexp.MustCompile(`^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`)

// tailLines is how many lines of the go command's output a BuildError keeps.
const tailLines = 15

// progressEvery is how often Binary reports a build in progress.
var progressEvery = 10 * time.Second

// goCandidates is where Binary looks for the go command: PATH first, then this list.
var goCandidates = []string{"/usr/local/go/bin/go"}

// CacheDir is where Binary keeps the etcd servers it built: os.UserCacheDir()/faultline/etcd,
// one directory per version (<CacheDir>/<version>/etcd).
func CacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("etcd cache dir: %w", err)
	}
	return filepath.Join(d, "faultline", "etcd"), nil
}

// checkVersion returns the *VersionError of a version Binary will not try to build, or
// nil. It needs no network.
func checkVersion(version string) error {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return &VersionError{Version: version, Why: "not a release version like v3.6.4 (want vX.Y.Z, optionally -pre)"}
	}
	line := m[1] + "." + m[2]
	for _, l := range buildableLines {
		if line == l {
			return nil
		}
	}
	if line == "3.4" {
		return &VersionError{Version: version, Why: "etcd 3.4 cannot be built from the Go module proxy " +
			"(its server is not the module go.etcd.io/etcd/server/v3); pass --etcd-binary PATH instead, " +
			"e.g. Debian's etcd-server at /usr/bin/etcd"}
	}
	return &VersionError{Version: version, Why: fmt.Sprintf("release line %s is not built by faultline "+
		"(built: %s); pass --etcd-binary PATH to use another etcd", line, strings.Join(buildableLines, ", "))}
}

// Binary returns the path of an etcd server of the given version (like "v3.6.4"), built
// from the Go module proxy on first use and cached in CacheDir()/<version>/etcd.
//
// A version that is malformed, of an unsupported release line (3.4 included: pass a
// binary instead), or that the proxy does not have is a *VersionError; these are found
// before anything is built (the last by asking the proxy). A build that fails otherwise is
// a *BuildError with the tail of the go command's output. A missing go command is ErrNoGo.
//
// A cached binary is used when it exists and its --version is the one asked for; else it
// is (re)built: `go get go.etcd.io/etcd/server/v3@<version>` in a generated module,
// `go mod tidy`, then a static build (CGO_ENABLED=0, -trimpath, -ldflags '-s -w'), with
// GOPROXY, GOFLAGS and the rest of the go environment respected, except that GOWORK=off
// and GOFLAGS gets -mod=mod. The binary is verified, fsynced and renamed into place, so
// the cache never holds a partial file. Concurrent calls for one version, in this process
// or others, are serialized by a lock file (flock) in the version's directory: one builds,
// the others wait and then use its result.
//
// progress, if not nil, is called with a one-line status about every 10 s while Binary
// builds or waits for another build; it is not called after Binary returns. ctx bounds the
// whole call; cancelling it kills the build.
func Binary(ctx context.Context, version string, progress func(line string)) (string, error) {
	return obtain(ctx, version, plainFlavor, progress)
}

// flavor is a kind of etcd build: the plain server (Binary) or one instrumented with gofail
// failpoints (FailpointBinary). Both share obtain and build; a flavor adds steps.
type flavor struct {
	suffix string // of the version's cache directory: CacheDir()/<version><suffix>
	label  string // after "etcd <version>" in messages ("" or " with failpoints")
	// prepare, if not nil, runs in the generated module after `go get` of the server and
	// before `go mod tidy`; its errors are returned as they are (use b.fail).
	prepare func(b *builder) error
	// verify, if not nil, checks a binary that already says the right version: the one
	// just built (an error fails the build) and a cached one (an error rebuilds it).
	verify func(bin string) error
}

// plainFlavor is Binary's: the server as released.
var plainFlavor = flavor{}

// obtain is Binary for any flavor: the cached binary, or a new build (see Binary).
func obtain(ctx context.Context, version string, fl flavor, progress func(line string)) (string, error) {
	if err := checkVersion(version); err != nil {
		return "", err
	}
	if progress == nil {
		progress = func(string) {}
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, version+fl.suffix)
	bin := filepath.Join(dir, "etcd")
	if cachedOK(ctx, bin, version, fl) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("etcd cache: %w", err)
	}
	unlock, err := lockDir(ctx, dir, "etcd "+version+fl.label, progress)
	if err != nil {
		return "", err
	}
	defer unlock()
	// Whoever held the lock before us may have built it.
	if cachedOK(ctx, bin, version, fl) {
		return bin, nil
	}
	goBin, err := findGo()
	if err != nil {
		return "", fmt.Errorf("build etcd %s%s from the Go module proxy: %w; install Go or pass --etcd-binary PATH",
			version, fl.label, err)
	}
	// Temp dirs left by an interrupted build (we hold the lock, so they are nobody's).
	if old, _ := filepath.Glob(filepath.Join(dir, "build-*")); len(old) > 0 {
		for _, o := range old {
			_ = os.RemoveAll(o)
		}
	}
	if err := build(ctx, goBin, dir, version, fl, progress); err != nil {
		return "", err
	}
	return bin, nil
}

// cachedOK reports whether bin exists, says it is version, and passes fl's verify.
func cachedOK(ctx context.Context, bin, version string, fl flavor) bool {
	if _, err := os.Stat(bin); err != nil {
		return false
	}
	v, err := BinaryVersion(ctx, bin)
	if err != nil || v != version {
		return false
	}
	return fl.verify == nil || fl.verify(bin) == nil
}

// lockDir takes the build lock of a version's directory, polling so that ctx can end the
// wait, and reports progress while another process builds what ("etcd v3.6.4").
func lockDir(ctx context.Context, dir, what string, progress func(string)) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("etcd cache lock: %w", err)
	}
	start, last := time.Now(), time.Now()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, fmt.Errorf("etcd cache lock: %w", err)
		}
		if time.Since(last) >= progressEvery {
			last = time.Now()
			progress(fmt.Sprintf("waiting for another build of %s (%s)…", what, time.Since(start).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("wait for another build of %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findGo returns the go command: on PATH, else one of goCandidates.
func findGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, c := range goCandidates {
		if st, err := os.Stat(c); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", ErrNoGo
}

// mainGo is the whole etcd server program.
const mainGo = `package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// versionMissing matches the go command's ways of saying a module version does not exist
// (proxy.golang.org: "unknown revision", "invalid version", 404/410; other proxies: "This
// module version is not available"); networkTrouble, the ways it says it could not ask.
var (
	versionMissing = regexp.MustCompile(`(?i)unknown revision|invalid version|no matching versions|` +
		`module version is not available|404 not found|410 gone`)
	networkTrouble = regexp.MustCompile(`(?i)dial tcp|no such host|connection refused|connection reset|` +
		`i/o timeout|tls handshake|unable to access|could not resolve|network is unreachable|` +
		`lookup disabled|: 5[0-9][0-9] |exit status 128`)
)

// missingVersion returns the go command's line saying that version does not exist, if its
// output (the tail of `go get`) says so and names no network trouble.
func missingVersion(lines []string, version string) (string, bool) {
	all := strings.Join(lines, "\n")
	if !versionMissing.MatchString(all) || networkTrouble.MatchString(all) {
		return "", false
	}
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "@"+version) {
			return strings.TrimSpace(lines[i]), true
		}
	}
	return lastLine(lines), true
}

// builder runs the go command in a build's temp dir, logging to build.log and keeping the
// tail of the output for a BuildError.
type builder struct {
	ctx     context.Context
	goBin   string
	tmp     string // the generated module
	version string
	fl      flavor
	env     []string
	out     io.Writer // build.log and tail
	tail    *tail
}

// run runs `go args...` in tmp/dir (dir "" is tmp itself), with extraEnv added to the
// environment; output goes to the log.
func (b *builder) run(dir string, extraEnv []string, args ...string) error {
	_, err := b.goCmd(dir, extraEnv, false, args...)
	return err
}

// output is run for a command whose stdout the caller needs: it is returned, not logged.
func (b *builder) output(dir string, args ...string) ([]byte, error) {
	return b.goCmd(dir, nil, true, args...)
}

func (b *builder) goCmd(dir string, extraEnv []string, keepStdout bool, args ...string) ([]byte, error) {
	fmt.Fprintf(b.out, "$ go %s\n", strings.Join(args, " "))
	cmd := exec.CommandContext(b.ctx, b.goBin, args...)
	cmd.Dir = filepath.Join(b.tmp, dir)
	cmd.Env = append(append([]string{}, b.env...), extraEnv...)
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = b.out, b.out
	if keepStdout {
		cmd.Stdout = &stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// On cancel, kill the go command's whole process group (compile, link).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if b.ctx.Err() != nil {
			return nil, fmt.Errorf("go %s: %w", args[0], b.ctx.Err())
		}
		return nil, fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// fail is the *BuildError of err, with the tail of the output so far.
func (b *builder) fail(err error) error {
	return &BuildError{Version: b.version, Failpoints: b.fl.label != "", Tail: b.tail.lines(), Err: err}
}

// build builds etcd version of flavor fl into dir/etcd (see Binary); the caller holds
// dir's lock.
func build(ctx context.Context, goBin, dir, version string, fl flavor, progress func(string)) (err error) {
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return fmt.Errorf("etcd build dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	logf, err := os.Create(filepath.Join(dir, "build.log"))
	if err != nil {
		return fmt.Errorf("etcd build log: %w", err)
	}
	defer logf.Close()
	if err := os.WriteFile(filepath.Join(tmp, "main.go"), []byte(mainGo), 0o644); err != nil {
		return fmt.Errorf("etcd build: %w", err)
	}

	stop := startProgress("etcd "+version+fl.label, progress)
	defer stop()

	b := &builder{ctx: ctx, goBin: goBin, tmp: tmp, version: version, fl: fl, tail: newTail(tailLines)}
	b.out = io.MultiWriter(logf, b.tail)
	if b.env, err = buildEnv(ctx, goBin); err != nil {
		return b.fail(err)
	}

	if err := b.run("", nil, "mod", "init", "faultline.local/etcd"); err != nil {
		return b.fail(err)
	}
	if err := b.run("", nil, "get", "go.etcd.io/etcd/server/v3@"+version); err != nil {
		if line, ok := missingVersion(b.tail.lines(), version); ok && ctx.Err() == nil {
			return &VersionError{Version: version, Why: "the Go module proxy has no go.etcd.io/etcd/server/v3@" +
				version + " (" + line + ")"}
		}
		return b.fail(err)
	}
	if fl.prepare != nil {
		if err := fl.prepare(b); err != nil {
			return err
		}
	}
	if err := b.run("", nil, "mod", "tidy"); err != nil {
		return b.fail(err)
	}
	out1 := filepath.Join(tmp, "etcd")
	if err := b.run("", []string{"CGO_ENABLED=0"}, "build", "-trimpath", "-ldflags", "-s -w", "-o", out1, "."); err != nil {
		return b.fail(err)
	}
	got, err := BinaryVersion(ctx, out1)
	if err != nil {
		return b.fail(fmt.Errorf("check the built binary: %w", err))
	}
	if got != version {
		return b.fail(fmt.Errorf("the built binary says it is %s, not %s", got, version))
	}
	if fl.verify != nil {
		if err := fl.verify(out1); err != nil {
			return b.fail(fmt.Errorf("check the built binary: %w", err))
		}
	}
	if err := syncFile(out1); err != nil {
		return b.fail(err)
	}
	if err := os.Rename(out1, filepath.Join(dir, "etcd")); err != nil {
		return b.fail(err)
	}
	if err := syncFile(dir); err != nil {
		return b.fail(err)
	}
	return nil
}

// buildEnv is the go command's environment for the generated module: ours, with GOWORK=off
// and GOFLAGS = the effective GOFLAGS (environment or go env file) with -mod=mod.
func buildEnv(ctx context.Context, goBin string) ([]string, error) {
	cmd := exec.CommandContext(ctx, goBin, "env", "GOFLAGS")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOFLAGS: %w", err)
	}
	flags := []string{}
	for _, f := range strings.Fields(string(outb)) {
		if strings.HasPrefix(f, "-mod=") || strings.HasPrefix(f, "--mod=") {
			continue
		}
		flags = append(flags, f)
	}
	flags = append(flags, "-mod=mod")
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GOFLAGS=") || strings.HasPrefix(kv, "GOWORK=") || strings.HasPrefix(kv, "CGO_ENABLED=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off", "GOFLAGS="+strings.Join(flags, " ")), nil
}

// startProgress reports the build of what ("etcd v3.6.4") every progressEvery until stop
// is called; stop returns after the last report.
func startProgress(what string, progress func(string)) (stop func()) {
	start := time.Now()
	progress(fmt.Sprintf("building %s from the Go module proxy…", what))
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(progressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress(fmt.Sprintf("building %s from the Go module proxy (%s)…", what, time.Since(start).Round(time.Second)))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return nil
}

// etcdVersionRE finds the version line of `etcd --version` ("etcd Version: 3.4.23").
var etcdVersionRE = regexp.MustCompile(`(?m)^etcd Version:\s*(\S+)\s*$`)

// BinaryVersion runs `path --version` and returns the etcd version it prints, with a
// leading v ("etcd Version: 3.4.23" gives "v3.4.23"). It fails if the program does not run,
// exits non-zero, or prints no such line; it gives up after 10 s (or when ctx ends).
func BinaryVersion(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "--version")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s --version: %w (%s)", path, err, strings.TrimSpace(lastLine(strings.Split(out.String(), "\n"))))
	}
	m := etcdVersionRE.FindStringSubmatch(out.String())
	if m == nil {
		return "", fmt.Errorf("%s --version printed no \"etcd Version:\" line: %q", path, firstLine(out.String()))
	}
	v := m[1]
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			return l
		}
	}
	return ""
}

// tail is an io.Writer keeping the last n lines written to it.
type tail struct {
	mu      sync.Mutex
	n       int
	partial []byte
	ls      []string
}

func newTail(n int) *tail { return &tail{n: n} }

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.ls = append(t.ls, strings.TrimRight(string(t.partial[:i]), "\r"))
		t.partial = t.partial[i+1:]
	}
	if len(t.ls) > t.n {
		t.ls = append([]string{}, t.ls[len(t.ls)-t.n:]...)
	}
	if len(t.partial) > 1<<16 { // a runaway line: keep its end
		t.partial = append([]byte{}, t.partial[len(t.partial)-1<<16:]...)
	}
	return len(p), nil
}

// lines returns the kept lines, with an unterminated last line if any.
func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	ls := append([]string{}, t.ls...)
	if len(t.partial) > 0 {
		ls = append(ls, string(t.partial))
	}
	if len(ls) > t.n {
		ls = ls[len(ls)-t.n:]
	}
	return ls
}
