package harness

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/internal/powerfs"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/workload"

	// The targets faultline ships.
	_ "github.com/faultline/faultline/harness/sut/builtin"
)

// Plan is a run resolved whole before anything of it exists: the spec, the runtime
// (auto resolved) and what it can do, the target's section and what it declares it can
// do, and the faults the schedule will draw from, each with the variants this cluster
// can take. Every usage error of a run is found in making it: no directory, build or
// process exists yet.
type Plan struct {
	Spec Spec
	// Runtime is the runtime's registration, Why why it was chosen.
	Runtime runtime.Kind
	Why     string
	// Caps is what the cluster can do: its runtime's and its target's.
	Caps nemesis.Caps
	// Faults are the --nemesis entries, resolved; Skipped the kinds and variants left
	// out of them (of "all", or of a kind named without a variant), with the reasons.
	Faults  []*nemesis.Fault
	Skipped map[string]string
}

// NewPlan resolves spec for this host. A bad spec, or a fault the cluster cannot take,
// is a *UsageError; a runtime asked for that cannot run here is an error (exit 3: the
// machine's, not the user's).
func NewPlan(ctx context.Context, spec Spec) (*Plan, error) {
	spec, err := spec.Resolve()
	if err != nil {
		return nil, err
	}
	name, why, err := runtime.Resolve(ctx, spec.Runtime)
	if err != nil {
		return nil, fmt.Errorf("runtime: %w", err)
	}
	kind, _ := runtime.Lookup(name)
	if spec.Runtime != "auto" {
		if ok, pwhy := kind.Probe(ctx); !ok {
			return nil, fmt.Errorf("runtime %s: %s", name, pwhy)
		}
	}
	spec.Runtime = name // resolved: the replay line and test.json name the runtime that ran
	p := &Plan{Spec: spec, Runtime: kind, Why: why}
	abilities := kind.Abilities(ctx)
	p.Caps = clockCaps(spec.Clock, runtimeCaps(abilities), spec.Options().Caps())
	if wantsDisks(spec.Nemesis) {
		p.Caps = p.Caps.Union(diskCaps(abilities))
	}
	if len(spec.Nemesis) == 1 && spec.Nemesis[0] == "all" {
		p.Faults, p.Skipped = nemesis.ChooseAll(spec.Nodes, p.Caps)
		return p, nil
	}
	p.Faults, p.Skipped, err = nemesis.Choose(spec.Nemesis, spec.Nodes, p.Caps)
	if u, ok := err.(*nemesis.Unavailable); ok {
		return nil, usagef("nemesis: %v (target %s, runtime %s)", u, spec.Options().Label(), name)
	}
	if err != nil {
		return nil, usagef("nemesis: %v", err)
	}
	return p, nil
}

// runtimeCaps are the capabilities a runtime's abilities give: every runtime kills and
// pauses; the rest is the network's.
func runtimeCaps(a runtime.Abilities) nemesis.Caps {
	c := nemesis.Can(nemesis.CapKill, nemesis.CapPause)
	why := a.Why
	if why == "" {
		why = "the runtime cannot"
	}
	add := func(ok bool, x nemesis.Capability) {
		if ok {
			c = c.Union(nemesis.Can(x))
		} else {
			c = c.Lacks(x, why)
		}
	}
	add(a.Partition, nemesis.CapPartition)
	add(a.Isolate || a.Partition, nemesis.CapIsolate)
	add(a.Links, nemesis.CapLinks)
	if a.Clock {
		c = c.Union(nemesis.Can(nemesis.CapClock))
	} else {
		c = c.Lacks(nemesis.CapClock, cmp.Or(a.ClockWhy, "the runtime cannot give a node's processes clocks of their own"))
	}
	if a.DataDirs {
		c = c.Union(nemesis.Can(nemesis.CapDataDirs))
	} else {
		c = c.Lacks(nemesis.CapDataDirs, cmp.Or(a.DisksWhy, "the runtime's nodes keep no data on this host"))
	}
	return c
}

// clockCaps is the runtime's and the target's capabilities together, the clock taken
// from the one clockVia names ("" : either, the target's hook first).
func clockCaps(clockVia string, rt, target nemesis.Caps) nemesis.Caps {
	switch clockVia {
	case ClockHook:
		_, why := target.Has(nemesis.CapClock)
		rt = rt.Lacks(nemesis.CapClock, cmp.Or(why, "the target has no clock hook"))
	case ClockProcess:
		_, why := rt.Has(nemesis.CapClock)
		target = target.Lacks(nemesis.CapClock, cmp.Or(why, "the runtime has no per-process clocks"))
		c := target.Union(rt)
		if ok, _ := rt.Has(nemesis.CapClock); !ok {
			c = c.Lacks(nemesis.CapClock, cmp.Or(why, "the runtime has no per-process clocks")+" (--clock process)")
		}
		return c
	}
	return rt.Union(target)
}

// diskCaps is CapDisks when the runtime's nodes keep their data in host directories and
// this host can mount the disks that lose power over them (a mount is tried), or why not.
func diskCaps(a runtime.Abilities) nemesis.Caps {
	if !a.Disks {
		return nemesis.Caps{}.Lacks(nemesis.CapDisks, cmp.Or(a.DisksWhy, "the runtime's nodes keep no data on this host"))
	}
	if ok, why := powerfs.Probe(); !ok {
		return nemesis.Caps{}.Lacks(nemesis.CapDisks, why)
	}
	return nemesis.Can(nemesis.CapDisks)
}

// wantsDisks reports whether --nemesis may ask for a fault that needs disks: "all", or
// an entry with such a kind (a malformed entry is Choose's to report).
func wantsDisks(entries []string) bool {
	for _, e := range entries {
		if e == "all" {
			return true
		}
		cs, _ := nemesis.Parse(e)
		for _, c := range cs {
			if d, ok := nemesis.Lookup(c.Kind); ok && slices.Contains(d.Needs, nemesis.CapDisks) {
				return true
			}
		}
	}
	return false
}

// needs are the capabilities the plan's faults may use: those they need, and those
// they use where the cluster has them.
func (p *Plan) needs() nemesis.Caps {
	var all []nemesis.Capability
	for _, f := range p.Faults {
		all = append(all, f.Needs()...)
		for _, x := range f.Uses() {
			if ok, _ := p.Caps.Has(x); ok {
				all = append(all, x)
			}
		}
	}
	return nemesis.Can(all...)
}

// has reports whether a planned fault injects kind k.
func (p *Plan) has(k nemesis.Kind) bool {
	return slices.ContainsFunc(p.Faults, func(f *nemesis.Fault) bool { return f.Has(k) })
}

// FaultNames lists the planned faults as --nemesis names them.
func (p *Plan) FaultNames() []string {
	out := make([]string, len(p.Faults))
	for i, f := range p.Faults {
		out[i] = f.Name
	}
	return out
}

// Print writes the plan for a person: what would run, where, with which faults.
func (p *Plan) Print(w io.Writer) {
	s := p.Spec
	o := s.Options()
	wl, _ := workload.Lookup(s.Workload)
	fmt.Fprintf(w, "plan %s: seed %d (--seed %d runs this plan's schedule)\n", s.Name, s.Seed, s.Seed)
	fmt.Fprintf(w, "  target:   %s %s\n", s.Target, strings.Join(o.Args(), " "))
	fmt.Fprintf(w, "  runtime:  %s (%s)\n", p.Runtime.Name, p.Why)
	fmt.Fprintf(w, "  cluster:  %d nodes; can: %s\n", s.Nodes, capNames(p.Caps))
	fmt.Fprintf(w, "  workload: %s (checked as %s), %d clients, %d keys, %v, op timeout %v\n",
		s.Workload, wl.Model, s.Concurrency, s.Keys, s.TimeLimit, s.OpTimeout)
	if len(p.Faults) == 0 {
		fmt.Fprintf(w, "  faults:   none\n")
	}
	for i, f := range p.Faults {
		label := "            "
		if i == 0 {
			label = "  faults:   "
		}
		var parts []string
		for _, part := range f.Parts {
			var vs []string
			for _, v := range part.Variants {
				vs = append(vs, v.Name)
			}
			if len(f.Parts) == 1 {
				parts = append(parts, strings.Join(vs, ", "))
			} else {
				parts = append(parts, string(part.Def.Kind)+" ("+strings.Join(vs, ", ")+")")
			}
		}
		fmt.Fprintf(w, "%s%s: %s\n", label, f.Name, strings.Join(parts, " + "))
	}
	for _, k := range slices.Sorted(maps.Keys(p.Skipped)) {
		fmt.Fprintf(w, "  left out: %s: %s\n", k, p.Skipped[k])
	}
	if slices.ContainsFunc(p.Faults, func(f *nemesis.Fault) bool { return f.Has(nemesis.Clock) }) {
		hooked, _ := s.Options().Caps().Has(nemesis.CapClock)
		how := "per-process clocks (the node's processes' vDSO clock functions patched through ptrace)"
		if s.Clock == ClockHook || s.Clock == "" && hooked {
			how = "the target's clock hook"
		}
		fmt.Fprintf(w, "  clock:    %s\n", how)
	}
	if len(p.Faults) > 0 {
		fmt.Fprintf(w, "  schedule: a fault every %v on average, each held 50-90%% of it\n", s.NemesisInterval)
	}
	fmt.Fprintf(w, "  results:  %s/%s/<timestamp>\n", s.Results, s.Name)
}

func capNames(c nemesis.Caps) string {
	var out []string
	for _, x := range c.List() {
		out = append(out, string(x))
	}
	return strings.Join(out, ", ")
}
