package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/harness/sut/etcd"
	"github.com/faultline/faultline/harness/sut/file"
	"github.com/faultline/faultline/harness/sut/raftnode"
)

// newTarget makes the spec's target for env's nodes. Whatever it needs first (a binary
// to build) it gets here, before any node runs, printing progress to w; a bad target
// option (a version that does not exist, a binary that is not etcd) is a *UsageError,
// a failed build an error.
func newTarget(ctx context.Context, spec Spec, env sut.Env, w io.Writer) (sut.Target, error) {
	switch spec.Target {
	case "raftnode":
		bin, err := raftnode.Bin(filepath.Join(env.Dir, "bin"))
		if err != nil {
			return nil, err
		}
		return raftnode.New(bin, spec.Unsafe, env), nil
	case "etcd":
		cfg, err := etcdConfig(ctx, spec, w)
		if err != nil {
			return nil, err
		}
		env.Logf("target etcd %s: %s", cfg.Version, cfg.Binary)
		return etcd.New(cfg, env), nil
	case "file":
		vars, err := targetVars(spec.TargetVars)
		if err != nil {
			return nil, err
		}
		f, err := file.Load(spec.TargetFile, vars)
		if err != nil {
			return nil, usagef("%v", err)
		}
		env.Logf("target %s from the file %s: protocol %s", f.Name, f.Path, f.Client.Protocol)
		return file.New(f, env, file.Options{OpTimeout: spec.OpTimeout.D(),
			LogTail: func(n string) string { return logTail(filepath.Join(env.Dir, "nodes", n), 5) }}), nil
	}
	return nil, usagef("target: %q is not one of %v", spec.Target, Targets)
}

// etcdConfig finds the spec's etcd binary (building the release when no binary is given)
// and its version.
func etcdConfig(ctx context.Context, spec Spec, w io.Writer) (etcd.Config, error) {
	bin := spec.EtcdBinary
	if bin == "" {
		progress := func(line string) { fmt.Fprintln(w, line) }
		var err error
		bin, err = etcd.Binary(ctx, spec.EtcdVersion, progress)
		var ve *etcd.VersionError
		if errors.As(err, &ve) {
			return etcd.Config{}, usagef("etcd-version: %v", err)
		}
		if err != nil {
			return etcd.Config{}, fmt.Errorf("etcd %s: %w", spec.EtcdVersion, err)
		}
	}
	version, err := etcd.BinaryVersion(ctx, bin)
	if err != nil {
		return etcd.Config{}, usagef("etcd-binary: %v", err)
	}
	if spec.EtcdVersion != "" && version != spec.EtcdVersion {
		return etcd.Config{}, fmt.Errorf("etcd %s: the binary %s says it is %s", spec.EtcdVersion, bin, version)
	}
	cfg := etcd.Config{Binary: bin, Version: version, SerializableReads: spec.EtcdSerializableReads,
		SnapshotCount: spec.EtcdSnapshotCount}
	if n := spec.EtcdSnapshotCount; n > 0 {
		// With a small snapshot interval, keep as few entries after a snapshot, so that
		// a member cut off for a while really gets a snapshot (the partition variant).
		cfg.SnapshotCatchUpEntries = max(50, n/2)
	}
	if len(spec.UpgradeTo) == 0 {
		return cfg, nil
	}
	// The upgrade path: the release the cluster starts on, then each of UpgradeTo, newer
	// each time; every release's binary is built (once, cached) before anything starts.
	cfg.Versions, cfg.Binaries = []string{version}, map[string]string{version: bin}
	for _, v := range spec.UpgradeTo {
		if !newerRelease(v, cfg.Versions[len(cfg.Versions)-1]) {
			return etcd.Config{}, usagef("upgrade-to: %s is not newer than %s (give the path oldest first)", v, cfg.Versions[len(cfg.Versions)-1])
		}
		b, err := etcd.Binary(ctx, v, func(line string) { fmt.Fprintln(w, line) })
		var ve *etcd.VersionError
		if errors.As(err, &ve) {
			return etcd.Config{}, usagef("upgrade-to: %v", err)
		}
		if err != nil {
			return etcd.Config{}, fmt.Errorf("etcd %s: %w", v, err)
		}
		cfg.Versions = append(cfg.Versions, v)
		cfg.Binaries[v] = b
	}
	return cfg, nil
}

// newerRelease reports whether release a (vX.Y.Z) is newer than b.
func newerRelease(a, b string) bool {
	pa, pb := releaseParts(a), releaseParts(b)
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] > pb[i]
		}
	}
	return false
}

func releaseParts(v string) [3]int {
	var p [3]int
	core, _, _ := strings.Cut(strings.TrimPrefix(v, "v"), "-")
	for i, s := range strings.SplitN(core, ".", 3) {
		p[i], _ = strconv.Atoi(s)
	}
	return p
}

// failer is a target that can fail for good while the run goes on (harness/sut/file:
// a client shim that died or answered garbage): Failed is closed then, and Failure
// says why.
type failer interface {
	Failed() <-chan struct{}
	Failure() error
}

// stopOnFailure returns ctx, cancelled once t fails, and stop, which ends the watch and
// returns err, or t's failure in its place (what made the run stop) if t failed. A
// target that cannot fail gets ctx itself.
func stopOnFailure(ctx context.Context, t sut.Target) (context.Context, func(err error) error) {
	f, ok := t.(failer)
	if !ok {
		return ctx, func(err error) error { return err }
	}
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		select {
		case <-f.Failed():
			cancel(f.Failure())
		case <-done:
		}
	}()
	return ctx, func(err error) error {
		close(done)
		cancel(nil)
		if ferr := f.Failure(); ferr != nil {
			return ferr
		}
		return err
	}
}
