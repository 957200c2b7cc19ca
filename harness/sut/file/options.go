package file

import (
	"context"
	"flag"
	"os"
	"slices"
	"strings"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Name is the target's name: --target file, or a --target-file alone.
const Name = "file"

func init() {
	sut.Register(sut.Factory{Name: Name, Options: func() sut.Options { return &Options{} },
		Doc: "any system, from a target file (docs/target-file.md)"})
}

// Options is the file target's section of a spec: file: {file, vars, text}. Its flags
// are --target-file and --target-var.
type Options struct {
	// File is the target file's path; Vars set its vars, NAME=VALUE.
	File string   `yaml:"file" json:"file,omitempty"`
	Vars sut.List `yaml:"vars" json:"vars,omitempty"`
	// Text is the file's text as a run read it (test.json): a replay runs it rather than
	// the file as it may have been edited since. Empty: the file is read.
	Text string `yaml:"text" json:"text,omitempty"`

	f *File // loaded by Resolve
}

// Flags implements sut.Options.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.File, "target-file", o.File, "a target file: any system as the target (docs/target-file.md)")
	fs.Var(&o.Vars, "target-var", "the target file's vars, NAME=VALUE, comma-separated")
}

// Given implements sut.Options.
func (o *Options) Given() bool { return o.File != "" || len(o.Vars) > 0 || o.Text != "" }

// Resolve implements sut.Options: the file loaded and checked (or its text, as a run
// recorded it), with its vars.
func (o *Options) Resolve(c sut.Common) error {
	if o.File == "" {
		return results.Usagef("target: %s needs --target-file FILE", Name)
	}
	vars := map[string]string{}
	for _, kv := range o.Vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return results.Usagef("target-var: %q is not NAME=VALUE", kv)
		}
		vars[k] = v
	}
	var err error
	if o.Text != "" {
		o.f, err = Parse(o.File, []byte(o.Text), vars)
	} else {
		o.f, err = Load(o.File, vars)
	}
	if err != nil {
		return results.Usagef("%v", err)
	}
	o.Text = o.f.Source
	return nil
}

// Label implements sut.Options: the system's name in the file.
func (o *Options) Label() string {
	if o.f == nil {
		return Name
	}
	return o.f.Name
}

// KnownUnsafe implements sut.Options: a target file sets its system's own unsafe
// settings (with a var, say), which faultline does not know.
func (o *Options) KnownUnsafe() string { return "" }

// Args implements sut.Options.
func (o *Options) Args() []string {
	args := []string{"--target-file", o.File}
	if len(o.Vars) > 0 {
		args = append(args, "--target-var", strings.Join(o.Vars, ","))
	}
	return args
}

// Caps implements sut.Options: what the file's hooks give, and its peers' traffic.
func (o *Options) Caps() nemesis.Caps {
	c := nemesis.Can().
		Lacks(nemesis.CapUpgrade, "a target file has one release").
		Lacks(nemesis.CapMaintain, "a target file has no maintenance operations").
		Lacks(nemesis.CapSnapshots, "a target file does not tell when a member needs a snapshot")
	if o.f == nil {
		return c
	}
	if o.f.Hooks.Clock != nil {
		c = c.Union(nemesis.Can(nemesis.CapClock))
	} else {
		c = c.Lacks(nemesis.CapClock, "target file "+o.f.Path+" has no clock hook (hooks.clock), and the runtime no per-process clocks")
	}
	if o.f.Hooks.RemoveMember != nil {
		c = c.Union(nemesis.Can(nemesis.CapMembers))
	} else {
		c = c.Lacks(nemesis.CapMembers, "target file "+o.f.Path+" has no membership hooks (hooks.remove-member, hooks.add-member)")
	}
	if o.f.Failpoints != nil {
		c = c.Union(nemesis.Can(nemesis.CapFailpoints))
	} else {
		c = c.Lacks(nemesis.CapFailpoints, "target file "+o.f.Path+" declares no gofail endpoint (failpoints.port)")
	}
	for _, k := range nemesis.FileKinds() {
		if len(o.f.DataFiles[string(k)]) > 0 {
			c = c.Union(nemesis.Can(k.Cap()))
		} else {
			c = c.Lacks(k.Cap(), "target file "+o.f.Path+" names no "+string(k)+" files (data-files."+string(k)+")")
		}
	}
	if o.f.Peers.Traffic == "messages" {
		c = c.Union(nemesis.Can(nemesis.CapMessages)).Lacks(nemesis.CapStreams, "its peers send messages (peers.traffic)")
	} else {
		c = c.Union(nemesis.Can(nemesis.CapStreams)).Lacks(nemesis.CapMessages, "its peers keep streams (peers.traffic)")
	}
	return c
}

// Workloads implements sut.Options: those the file declares (workloads), else every one
// its client protocol can run (protocolWorkloads).
func (o *Options) Workloads() []workload.Kind {
	if o.f != nil && len(o.f.Workloads) > 0 {
		return slices.Clone(o.f.Workloads)
	}
	return protocolWorkloads(o.f)
}

// protocolWorkloads are the workloads f's client protocol can run: leases and etcd's
// revisioned keyspace (kubernetes) only through the etcd protocol, whose client has
// them; transactions through it too, and through an exec shim that says it answers
// them (client.transactions); registers, sets and appends through every protocol.
func protocolWorkloads(f *File) []workload.Kind {
	ws := []workload.Kind{workload.Register, workload.Set, workload.Append}
	switch {
	case f == nil:
	case f.Client.Protocol == protoKV:
		ws = append(ws, workload.Lease, workload.Txn, workload.Kubernetes)
	case f.Client.Transactions:
		ws = append(ws, workload.Txn)
	}
	return ws
}

// MayRun implements sut.Maybe.
func (o *Options) MayRun(w workload.Kind) string {
	switch w {
	case workload.Lease, workload.Kubernetes:
		return "a target file whose client protocol is etcd"
	case workload.Txn:
		return "a target file whose client protocol is etcd, or exec with client.transactions"
	}
	return ""
}

// Prepare implements sut.Options: it says when the file on disk is not the text the run
// will use (a replay of a file edited since).
func (o *Options) Prepare(_ context.Context, progress func(string)) error {
	if b, err := os.ReadFile(o.File); err == nil && string(b) != o.Text {
		progress("target file " + o.File + " has changed since this spec was recorded: running the text as recorded")
	}
	progress("target " + o.f.Name + " from the file " + o.File + ": protocol " + o.f.Client.Protocol)
	return nil
}

// New implements sut.Options.
func (o *Options) New(env sut.Env) (sut.Target, error) { return New(o.f, env), nil }
