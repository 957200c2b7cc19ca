package etcd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Name is the target's name.
const Name = "etcd"

// DefaultVersion is the etcd release built when no version or binary is given: the
// newest 3.7 at the time of writing.
const DefaultVersion = "v3.7.3"

func init() {
	sut.Register(sut.Factory{Name: Name, Options: func() sut.Options { return &Options{} },
		Doc: "the real etcd server, 3.4-3.7: a given binary, or a release built from the Go module proxy"})
}

// Options is etcd's section of a spec: etcd: {version, binary, serializable-reads,
// snapshot-count, upgrade-to}. Its flags are --etcd-version, --etcd-binary,
// --etcd-serializable-reads, --etcd-snapshot-count and --upgrade-to.
type Options struct {
	// Version is the release to build and run; Binary a given etcd server instead (e.g.
	// Debian's /usr/bin/etcd).
	Version string `yaml:"version" json:"version,omitempty"`
	Binary  string `yaml:"binary" json:"binary,omitempty"`
	// SerializableReads makes the workload's reads serializable: known unsafe.
	SerializableReads bool `yaml:"serializable-reads" json:"serializable_reads,omitempty"`
	// SnapshotCount is etcd's --snapshot-count (0: etcd's default): small, it makes a
	// member cut off for a while catch up from a snapshot.
	SnapshotCount int `yaml:"snapshot-count" json:"snapshot_count,omitempty"`
	// UpgradeTo is the rest of the upgrade path after the release the cluster starts on
	// (rolling-upgrade and rolling-downgrade move along it), oldest first.
	UpgradeTo sut.List `yaml:"upgrade-to" json:"upgrade_to,omitempty"`
	// Failpoints builds the releases with gofail failpoints and names the points the
	// failpoint fault uses: "all" (those of defaultFailpoints the binary has) or names,
	// comma-separated.
	Failpoints string `yaml:"failpoints" json:"failpoints,omitempty"`
	// FailpointTerms are failpoints armed in every member from its start, gofail's
	// GOFAIL_FAILPOINTS ("raftBeforeLeaderSend=sleep(100);b=term"): a step slowed so that
	// a race window opens, as etcd's robustness tests do (needs Failpoints).
	FailpointTerms string `yaml:"failpoint-terms" json:"failpoint_terms,omitempty"`

	cfg Config // what Resolve and Prepare found
}

// Flags implements sut.Options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Version, "etcd-version", o.Version, "etcd release to build from the Go module proxy and run (target etcd; default "+DefaultVersion+")")
	fs.StringVar(&o.Binary, "etcd-binary", o.Binary, "an etcd server binary to run instead of building one (e.g. /usr/bin/etcd)")
	fs.BoolVar(&o.SerializableReads, "etcd-serializable-reads", o.SerializableReads, "serializable reads (known unsafe: stale reads), to prove they are caught")
	fs.IntVar(&o.SnapshotCount, "etcd-snapshot-count", o.SnapshotCount, "etcd's --snapshot-count (0: its default)")
	fs.Var((*failpointsValue)(&o.Failpoints), "etcd-failpoints", "build etcd with gofail failpoints for the failpoint fault; =a,b names the points to use (default: those a run reaches)")
	fs.StringVar(&o.FailpointTerms, "etcd-failpoint-terms", o.FailpointTerms, "failpoints armed in every member from its start, as gofail's GOFAIL_FAILPOINTS: 'a=sleep(100);b=term' (with --etcd-failpoints)")
	fs.Var(&o.UpgradeTo, "upgrade-to", "releases to upgrade to, in order, comma-separated (rolling-upgrade; target etcd)")
}

// Given implements sut.Options.
func (o *Options) Given() bool {
	return o.Version != "" || o.Binary != "" || o.SerializableReads || o.SnapshotCount != 0 || len(o.UpgradeTo) > 0 || o.Failpoints != "" || o.FailpointTerms != ""
}

// Resolve implements sut.Options: the release (or the binary, whose version it asks),
// and the upgrade path, newer each step; nothing is built yet.
func (o *Options) Resolve(sut.Common) error {
	switch {
	case o.FailpointTerms != "" && o.Failpoints == "":
		return results.Usagef("etcd-failpoint-terms: needs --etcd-failpoints (a build with failpoints)")
	case o.SnapshotCount < 0:
		return results.Usagef("etcd-snapshot-count: %d must not be negative", o.SnapshotCount)
	case o.Version != "" && o.Binary != "":
		return results.Usagef("etcd-version %s and etcd-binary %s: give one of them", o.Version, o.Binary)
	case o.Binary == "" && o.Version == "":
		o.Version = DefaultVersion
	}
	o.cfg = Config{Binary: o.Binary, Version: o.Version, SerializableReads: o.SerializableReads, SnapshotCount: o.SnapshotCount}
	if o.Binary != "" {
		v, err := BinaryVersion(context.Background(), o.Binary)
		if err != nil {
			return results.Usagef("etcd-binary: %v", err)
		}
		o.cfg.Version = v
	} else if err := checkVersion(o.Version); err != nil {
		return results.Usagef("etcd-version: %v", err)
	}
	if n := o.SnapshotCount; n > 0 {
		// With a small snapshot interval, keep as few entries after a snapshot, so that
		// a member cut off for a while really gets a snapshot (the partition variant).
		o.cfg.SnapshotCatchUpEntries = max(50, n/2)
	}
	if len(o.UpgradeTo) > 0 {
		o.cfg.Versions = []string{o.cfg.Version}
		for _, v := range o.UpgradeTo {
			if err := checkVersion(v); err != nil {
				return results.Usagef("upgrade-to: %v", err)
			}
			if last := o.cfg.Versions[len(o.cfg.Versions)-1]; !newerRelease(v, last) {
				return results.Usagef("upgrade-to: %s is not newer than %s (give the path oldest first)", v, last)
			}
			o.cfg.Versions = append(o.cfg.Versions, v)
		}
	}
	return nil
}

// Label implements sut.Options.
func (o *Options) Label() string { return Name }

// KnownUnsafe implements sut.Options.
func (o *Options) KnownUnsafe() string {
	if o.SerializableReads {
		return "serializable-reads"
	}
	return ""
}

// Args implements sut.Options.
func (o *Options) Args() []string {
	var args []string
	if o.Version != "" {
		args = append(args, "--etcd-version", o.Version)
	}
	if o.Binary != "" {
		args = append(args, "--etcd-binary", o.Binary)
	}
	if o.SerializableReads {
		args = append(args, "--etcd-serializable-reads")
	}
	if len(o.UpgradeTo) > 0 {
		args = append(args, "--upgrade-to", strings.Join(o.UpgradeTo, ","))
	}
	if o.FailpointTerms != "" {
		args = append(args, "--etcd-failpoint-terms", o.FailpointTerms)
	}
	switch o.Failpoints {
	case "":
	case "all":
		args = append(args, "--etcd-failpoints")
	default:
		args = append(args, "--etcd-failpoints="+o.Failpoints)
	}
	if o.SnapshotCount > 0 {
		args = append(args, "--etcd-snapshot-count", strconv.Itoa(o.SnapshotCount))
	}
	return args
}

// Caps implements sut.Options: membership changes, maintenance, streams between peers;
// its WAL, snap and bbolt files; releases to move along when an upgrade path is given; snapshot sends to count when a
// member can fall a snapshot interval behind. No clock hook: the runtime's per-process
// clocks (vclock) give it clock faults.
func (o *Options) Caps() nemesis.Caps {
	c := nemesis.Can(nemesis.CapMembers, nemesis.CapMaintain, nemesis.CapStreams, nemesis.CapUpgrade, nemesis.CapSnapshots,
		nemesis.LogFiles.Cap(), nemesis.SnapshotFiles.Cap(), nemesis.StateFiles.Cap()).
		Lacks(nemesis.CapClock, "etcd has no clock hook (the runtime's per-process clocks stand in where it has them)").
		Lacks(nemesis.CapMessages, "etcd's peers keep long-lived streams, not one-way messages")
	if len(o.cfg.Versions) < 2 {
		c = c.Lacks(nemesis.CapUpgrade, "no release to upgrade to (give --upgrade-to)")
	}
	if why := snapshotUnable(o.cfg, o.cfg.Version); why != "" {
		c = c.Lacks(nemesis.CapSnapshots, why)
	}
	if o.Failpoints != "" {
		c = c.Union(nemesis.Can(nemesis.CapFailpoints))
	} else {
		c = c.Lacks(nemesis.CapFailpoints, "etcd runs without failpoints: give --etcd-failpoints to build it with them")
	}
	return c
}

// Workloads implements sut.Options.
func (o *Options) Workloads() []workload.Kind {
	return []workload.Kind{workload.Register, workload.Set, workload.Append, workload.Lease, workload.Txn, workload.Kubernetes}
}

// Prepare implements sut.Options: every release of the run is built (once, cached)
// before anything starts.
func (o *Options) Prepare(ctx context.Context, progress func(string)) error {
	obtain := Binary
	if o.Failpoints != "" {
		obtain = FailpointBinary
	}
	build := func(key, v string) (string, error) {
		bin, err := obtain(ctx, v, progress)
		var ve *VersionError
		if errors.As(err, &ve) {
			return "", results.Usagef("%s: %v", key, err)
		}
		if err != nil {
			return "", fmt.Errorf("etcd %s: %w", v, err)
		}
		got, err := BinaryVersion(ctx, bin)
		if err != nil {
			return "", err
		}
		if got != v {
			return "", fmt.Errorf("etcd %s: the binary %s says it is %s", v, bin, got)
		}
		return bin, nil
	}
	if o.cfg.Binary == "" {
		bin, err := build("etcd-version", o.cfg.Version)
		if err != nil {
			return err
		}
		o.cfg.Binary = bin
	}
	if len(o.cfg.Versions) > 0 {
		o.cfg.Binaries = map[string]string{o.cfg.Version: o.cfg.Binary}
		for _, v := range o.cfg.Versions[1:] {
			bin, err := build("upgrade-to", v)
			if err != nil {
				return err
			}
			o.cfg.Binaries[v] = bin
		}
	}
	if o.Failpoints != "" {
		if err := o.prepareFailpoints(ctx); err != nil {
			return err
		}
	}
	progress(fmt.Sprintf("target etcd %s: %s", o.cfg.Version, o.cfg.Binary))
	return nil
}

// prepareFailpoints resolves the run's failpoints against those every release's binary
// has. A given binary without failpoints is a usage error naming the flag that builds one.
func (o *Options) prepareFailpoints(ctx context.Context) error {
	bins := []string{o.cfg.Binary}
	for _, v := range o.cfg.Versions {
		if b := o.cfg.Binaries[v]; b != "" && b != o.cfg.Binary {
			bins = append(bins, b)
		}
	}
	var have []string
	for i, b := range bins {
		names, err := FailpointNames(ctx, b)
		if err != nil && o.Binary != "" && i == 0 {
			return results.Usagef("etcd-failpoints: etcd-binary %s: %v (let faultline build one: --etcd-version with --etcd-failpoints)", b, err)
		}
		if err != nil {
			return fmt.Errorf("etcd failpoints: %w", err)
		}
		if i == 0 {
			have = names
		} else {
			have = slices.DeleteFunc(have, func(n string) bool { return !slices.Contains(names, n) })
		}
	}
	fps, err := resolveFailpoints(o.Failpoints, o.cfg.Version, have)
	if err != nil {
		return err
	}
	o.cfg.Failpoints = fps
	for _, t := range strings.Split(o.FailpointTerms, ";") {
		name, term, ok := strings.Cut(strings.TrimSpace(t), "=")
		if t == "" {
			continue
		}
		if !ok || term == "" {
			return results.Usagef("etcd-failpoint-terms: %q is not name=term", t)
		}
		if !slices.Contains(have, name) {
			return results.Usagef("etcd-failpoint-terms: %q is no failpoint of etcd %s; it has: %s", name, o.cfg.Version, strings.Join(have, ", "))
		}
	}
	o.cfg.FailpointTerms = o.FailpointTerms
	return nil
}

// New implements sut.Options.
func (o *Options) New(env sut.Env) (sut.Target, error) {
	if o.cfg.Binary == "" {
		return nil, errors.New("etcd: New before Prepare")
	}
	return New(o.cfg, env), nil
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

var (
	_ nemesis.Members     = (*Target)(nil)
	_ nemesis.Upgrader    = (*Target)(nil)
	_ nemesis.Maintainer  = (*Target)(nil)
	_ nemesis.Snapshotter = (*Target)(nil)
	_ sut.Consistency     = (*Target)(nil)
)
