package raftnode

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/node"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Name is the target's name, and the name the faultline binary answers to as the node
// program.
const Name = "raftnode"

func init() {
	sut.Register(sut.Factory{Name: Name, Default: true, Options: func() sut.Options { return &Options{} },
		Doc: "faultline's own Raft key-value node (package node), with deliberate bugs to prove they are caught (--unsafe)"})
	sut.RegisterProgram(Name, func(args []string) int {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return node.Main(ctx, args, os.Stderr)
	})
}

// Options is raftnode's section of a spec: raftnode: {unsafe: stale-read}.
type Options struct {
	// Unsafe is the node's deliberate bug ("" for the correct node).
	Unsafe string `yaml:"unsafe" json:"unsafe,omitempty"`
}

func unsafeNames() []string {
	names := make([]string, len(node.UnsafeModes))
	for i, m := range node.UnsafeModes {
		names[i] = string(m)
	}
	return names
}

// Flags implements sut.Options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.Unsafe, "unsafe", o.Unsafe, "raftnode's deliberate bug: "+strings.Join(unsafeNames(), "|"))
}

// Given implements sut.Options.
func (o *Options) Given() bool { return o.Unsafe != "" }

// Resolve implements sut.Options.
func (o *Options) Resolve(sut.Common) error {
	if _, err := node.ParseUnsafe(o.Unsafe); err != nil {
		return results.Usagef("unsafe: %q is not one of %s", o.Unsafe, strings.Join(unsafeNames(), ", "))
	}
	if o.Unsafe == "none" {
		o.Unsafe = ""
	}
	return nil
}

// Label implements sut.Options.
func (o *Options) Label() string { return Name }

// KnownUnsafe implements sut.Options.
func (o *Options) KnownUnsafe() string { return o.Unsafe }

// Args implements sut.Options.
func (o *Options) Args() []string {
	if o.Unsafe == "" {
		return nil
	}
	return []string{"--unsafe", o.Unsafe}
}

// Caps implements sut.Options: raftnode has a clock hook and membership changes, its
// peers send one-way messages, and it names its log and snapshot files.
func (o *Options) Caps() nemesis.Caps {
	return nemesis.Can(nemesis.CapClock, nemesis.CapMembers, nemesis.CapMessages,
		nemesis.LogFiles.Cap(), nemesis.SnapshotFiles.Cap()).
		Lacks(nemesis.StateFiles.Cap(), "raftnode keeps its state machine in memory, rebuilt from its log and snapshot").
		Lacks(nemesis.CapStreams, "raftnode's peers send one-way messages, not streams").
		Lacks(nemesis.CapFailpoints, "raftnode has no gofail failpoints").
		Lacks(nemesis.CapUpgrade, "raftnode has one release").
		Lacks(nemesis.CapMaintain, "raftnode has no maintenance operations").
		Lacks(nemesis.CapSnapshots, "raftnode does not count the snapshots it sends")
}

// Workloads implements sut.Options.
func (o *Options) Workloads() []workload.Kind {
	return []workload.Kind{workload.Register, workload.Set, workload.Append}
}

// Prepare implements sut.Options: the node is this very binary.
func (o *Options) Prepare(context.Context, func(string)) error { return nil }

// New implements sut.Options.
func (o *Options) New(env sut.Env) (sut.Target, error) {
	bin, err := Bin(filepath.Join(env.Dir, "bin"))
	if err != nil {
		return nil, err
	}
	return New(bin, o.Unsafe, env), nil
}

var (
	_ nemesis.Clocker = (*Target)(nil)
	_ nemesis.Members = (*Target)(nil)
)
