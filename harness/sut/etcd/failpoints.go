package etcd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// gofailModule at gofailVersion is the gofail that FailpointBinary instruments etcd with:
// the version etcd's own tools/mod pins for its failpoint builds (3.5 through 3.7).
const (
	gofailModule  = "go.etcd.io/gofail"
	gofailVersion = "v0.2.0"
)

// gofailRuntime is the package every instrumented binary links; its name is in the
// binary's function table even when stripped (-s -w).
const gofailRuntime = gofailModule + "/runtime"

// failpointDirs are, per release line, the packages etcd's own failpoint builds instrument
// (`gofail enable`), as directories of the server module (go.etcd.io/etcd/server/v3):
// 3.5, the list of the last 3.5 build.sh (v3.5.4 had only etcdserver and mvcc/backend;
// later ones added the rest); 3.6 and 3.7, the list of the Makefile's gofail-enable.
// FailpointBinary enables those that exist in the version it builds.
var failpointDirs = map[string][]string{
	"3.5": {"etcdserver", "lease", "lease/leasehttp", "mvcc", "mvcc/backend", "wal"},
	"3.6": {"etcdserver", "lease", "lease/leasehttp", "storage/backend", "storage/mvcc", "storage/wal",
		"etcdserver/api/v3rpc", "etcdserver/api/membership", "etcdserver/api/rafthttp"},
	"3.7": {"etcdserver", "lease", "lease/leasehttp", "storage/backend", "storage/mvcc", "storage/wal",
		"etcdserver/api/v3rpc", "etcdserver/api/membership", "etcdserver/api/rafthttp"},
}

// failpointsFlavor is FailpointBinary's build.
var failpointsFlavor = flavor{
	suffix:  "-failpoints",
	label:   " with failpoints",
	prepare: instrument,
	verify:  verifyFailpoints,
}

// FailpointBinary is Binary for an etcd server instrumented with gofail failpoints
// (go.etcd.io/gofail v0.2.0), cached in CacheDir()/<version>-failpoints/etcd, with
// Binary's guarantees: the same version check and errors (*VersionError, *BuildError with
// Failpoints set, ErrNoGo), one build at a time per version (flock), a verified binary
// that says its version (--version), fsynced and renamed into place, progress and ctx as
// for Binary.
//
// The server's source is that of the module proxy: its module is copied out of the module
// cache, `gofail enable` (run from the proxy) rewrites the failpoint comments in the
// packages etcd's own failpoint build instruments for that release line (failpointDirs),
// the copy requires gofail, and the generated module replaces the server with the copy.
// The binary must link gofail's runtime.
//
// The binary serves its failpoints over HTTP when started with GOFAIL_HTTP=host:port (see
// package internal/gofail) and sets them at start from GOFAIL_FAILPOINTS="a=term;b=term";
// without either it behaves like the plain server. Which failpoints it has depends on the
// version (raftBeforeSave and defragBeforeCopy are in every one built here).
func FailpointBinary(ctx context.Context, version string, progress func(line string)) (string, error) {
	return obtain(ctx, version, failpointsFlavor, progress)
}

// serverDirs returns the directories of failpointDirs for version's release line that
// exist under root (the server module's copy), as paths relative to root. It returns nil
// for a line it has no list for.
func serverDirs(version, root string) []string {
	m := versionRE.FindStringSubmatch(version)
	if m == nil {
		return nil
	}
	var dirs []string
	for _, d := range failpointDirs[m[1]+"."+m[2]] {
		if st, err := os.Stat(filepath.Join(root, filepath.FromSlash(d))); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// serverModule is where the copy of the server's module goes in the generated module.
const serverModule = "server"

// instrument is failpointsFlavor's prepare: copy the server's source into tmp/server,
// gofail-enable it, require gofail there, and replace the server with it.
func instrument(b *builder) error {
	src, err := moduleDir(b, "go.etcd.io/etcd/server/v3@"+b.version)
	if err != nil {
		return b.fail(err)
	}
	dst := filepath.Join(b.tmp, serverModule)
	fmt.Fprintf(b.out, "# copy %s to %s\n", src, dst)
	if err := copyTree(src, dst); err != nil {
		return b.fail(fmt.Errorf("copy the server's source: %w", err))
	}
	dirs := serverDirs(b.version, dst)
	if len(dirs) == 0 {
		return b.fail(fmt.Errorf("none of the failpoint packages %v is in the server's source", failpointDirs))
	}
	// Run from the generated module (whose go line is this Go's), not from the copy, whose
	// go.mod may name a newer toolchain; `go run pkg@version` ignores the current module.
	args := []string{"run", gofailModule + "@" + gofailVersion, "enable"}
	for _, d := range dirs {
		args = append(args, serverModule+"/"+d)
	}
	if err := b.run("", nil, args...); err != nil {
		return b.fail(err)
	}
	n, err := countFailFiles(dst, dirs)
	if err != nil {
		return b.fail(err)
	}
	if n == 0 {
		return b.fail(fmt.Errorf("gofail enable %s found no failpoints", strings.Join(dirs, " ")))
	}
	fmt.Fprintf(b.out, "# gofail enabled %d files in %s\n", n, strings.Join(dirs, " "))
	if err := editModules(b); err != nil {
		return b.fail(err)
	}
	if err := b.run("", nil, "get", gofailModule+"@"+gofailVersion); err != nil {
		return b.fail(err)
	}
	return nil
}

// editModules makes the server's copy (tmp/server) require gofail and the generated module
// (tmp) replace the server with that copy. The go.mod files are edited with `go mod edit`
// run in tmp: no network, and no toolchain switch for the copy's toolchain line.
func editModules(b *builder) error {
	if err := b.run("", nil, "mod", "edit", "-require="+gofailModule+"@"+gofailVersion,
		filepath.Join(serverModule, "go.mod")); err != nil {
		return err
	}
	return b.run("", nil, "mod", "edit", "-replace=go.etcd.io/etcd/server/v3=./"+serverModule, "go.mod")
}

// moduleDir returns the directory of module@version in the module cache (downloading it
// if need be), from `go mod download -json`.
func moduleDir(b *builder, modVersion string) (string, error) {
	out, err := b.output("", "mod", "download", "-json", modVersion)
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download %s: %s", modVersion, info.Error)
	}
	if err != nil {
		return "", err
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download -json %s gave no Dir: %q", modVersion, firstLine(string(out)))
	}
	return info.Dir, nil
}

// copyTree copies the regular files and directories under src to dst (which must not
// exist), writable by us whatever their mode in the read-only module cache.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		default:
			return nil // module zips hold no symlinks or devices
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// countFailFiles counts the *.fail.go files (gofail's bindings) in dirs under root.
func countFailFiles(root string, dirs []string) (int, error) {
	n := 0
	for _, d := range dirs {
		m, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(d), "*.fail.go"))
		if err != nil {
			return 0, err
		}
		n += len(m)
	}
	return n, nil
}

// verifyFailpoints is failpointsFlavor's verify: the binary links gofail's runtime.
func verifyFailpoints(bin string) error {
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if !bytes.Contains(data, []byte(gofailRuntime+".")) {
		return fmt.Errorf("%s does not link %s: it has no failpoints", bin, gofailRuntime)
	}
	return nil
}
