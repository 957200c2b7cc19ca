package nemesis

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Kind is a fault kind, as --nemesis names it.
type Kind string

// The fault kinds, each defined (its Def) in a file of its own and listed in registry.
const (
	Partition        Kind = "partition"
	Kill             Kind = "kill"
	Stop             Kind = "stop"
	Pause            Kind = "pause"
	Clock            Kind = "clock"
	Packet           Kind = "packet"
	Member           Kind = "member"
	RollingReplace   Kind = "rolling-replace"
	RollingUpgrade   Kind = "rolling-upgrade"
	RollingDowngrade Kind = "rolling-downgrade"
	Maintenance      Kind = "maintenance"
	PowerLoss        Kind = "power-loss"
	Corrupt          Kind = "corrupt"
	FailpointKind    Kind = "failpoint"
)

// Def defines a fault kind: one row of the registry. Everything that knows a kind —
// the choice of faults for a run, the schedule, the history's events, the report's
// lanes and colours — reads it from here.
type Def struct {
	Kind Kind
	Doc  string
	// Needs are the capabilities every variant needs; MinNodes the smallest cluster.
	Needs    []Capability
	MinNodes int
	// Uses are capabilities the kind uses where the cluster has them, and does without
	// elsewhere (corrupt replaces a member that refuses its damaged data where the
	// membership can change): their Powers are given when present.
	Uses []Capability
	// Variants are the kind's named variants (kill:all), in the order the docs list
	// them. Named, a variant is the only one injected; unnamed, each injection draws one
	// of those the cluster can take, by Weight.
	Variants []Variant
	// Start and End name the history events of the fault's injection and its heal
	// (a variant may name its own start).
	Start, End string
	// Verb says what the fault did to a node and Healed what its end did, on the
	// report's lanes ("killed", "restarted").
	Verb, Healed string
	// Family groups kinds that share a colour on the plots; Color is the family's.
	Family, Color string
	// Timeout bounds one injection on a cluster of nodes (nil: HealTimeout).
	Timeout func(nodes int) time.Duration
	// HealLimit bounds its heal (0: HealTimeout): longer for a heal that may replace
	// members and wait for them to catch up.
	HealLimit time.Duration
	// Inject applies one variant. On an error nothing is left applied.
	Inject func(ctx context.Context, env Env, v Variant) (Injection, error)
}

// Variant is one way a kind is injected: on which nodes (kill:leader), with which shape
// (partition:majorities-ring), or how (clock:slow).
type Variant struct {
	Name, Doc string
	// Weight is the variant's share of the draw when no variant is named (0: only when
	// named).
	Weight int
	// Start names the history event of its injection, when not the kind's.
	Start string
	// Needs and MinNodes are what the variant needs beyond its kind's.
	Needs    []Capability
	MinNodes int
	// Timeout bounds its injection, when longer than the kind's.
	Timeout func(nodes int) time.Duration
}

// Variant returns the kind's variant named name.
func (d *Def) Variant(name string) (Variant, bool) {
	i := slices.IndexFunc(d.Variants, func(v Variant) bool { return v.Name == name })
	if i < 0 {
		return Variant{}, false
	}
	return d.Variants[i], true
}

// VariantNames lists the kind's variants, in order.
func (d *Def) VariantNames() []string {
	out := make([]string, len(d.Variants))
	for i, v := range d.Variants {
		out[i] = v.Name
	}
	return out
}

// registry holds every kind, in the order "all" takes them.
var registry = []*Def{partitionDef, killDef, stopDef, pauseDef, clockDef, packetDef, memberDef,
	rollingReplaceDef, rollingUpgradeDef, rollingDowngradeDef, maintenanceDef, powerLossDef, corruptDef, failpointDef}

// Kinds returns the definitions of every fault kind, in the order "all" takes them.
func Kinds() []*Def { return slices.Clone(registry) }

// KindNames lists every kind's name.
func KindNames() []string {
	out := make([]string, len(registry))
	for i, d := range registry {
		out[i] = string(d.Kind)
	}
	return out
}

// Lookup returns the definition of kind k.
func Lookup(k Kind) (*Def, bool) {
	i := slices.IndexFunc(registry, func(d *Def) bool { return d.Kind == k })
	if i < 0 {
		return nil, false
	}
	return registry[i], true
}

// ByEvent returns the kind whose injection or heal the nemesis records as event f, and
// whether f is its injection; ok is false for any other event (a combination's, a
// note, a Jepsen nemesis's).
func ByEvent(f string) (d *Def, start bool, ok bool) {
	for _, d := range registry {
		if f == d.Start || slices.ContainsFunc(d.Variants, func(v Variant) bool { return v.Start == f }) {
			return d, true, true
		}
		if f == d.End {
			return d, false, true
		}
	}
	return nil, false, false
}

// Fault is one entry of a run's nemesis, resolved for its cluster: a kind, or kinds
// held together (a combination), each with the variants it may take there.
type Fault struct {
	// Name is the entry as --nemesis gave it: "kill", "kill:all", "partition:leader+clock:slow".
	Name  string
	Parts []Part
}

// Part is one kind of a Fault, with the variants it may take.
type Part struct {
	Def      *Def
	Variants []Variant
}

// Kinds lists the fault's kinds, in order.
func (f *Fault) Kinds() []Kind {
	out := make([]Kind, len(f.Parts))
	for i, p := range f.Parts {
		out[i] = p.Def.Kind
	}
	return out
}

// Has reports whether the fault injects kind k, alone or with others.
func (f *Fault) Has(k Kind) bool { return slices.Contains(f.Kinds(), k) }

// Needs returns every capability some variant of the fault may need.
func (f *Fault) Needs() []Capability {
	var out []Capability
	for _, p := range f.Parts {
		out = append(out, p.Def.Needs...)
		for _, v := range p.Variants {
			out = append(out, v.Needs...)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Uses are the capabilities f's kinds use where the cluster has them (Def.Uses).
func (f *Fault) Uses() []Capability {
	var out []Capability
	for _, p := range f.Parts {
		out = append(out, p.Def.Uses...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Inject draws one turn of f from r and injects it, outside any schedule (no event is
// recorded): for tests and tools that watch a fault take effect.
func (f *Fault) Inject(ctx context.Context, env Env, r *rand.Rand) (Injection, error) {
	return f.draw(r).inject(ctx, env)
}

// turn is one injection of a fault: the variant each part takes, and the seed of each
// part's own random stream, all drawn before anything is injected.
type turn struct {
	fault    *Fault
	variants []Variant
	seeds    []uint64
}

// draw chooses a turn of f from r alone: however the cluster answers, the same draws.
func (f *Fault) draw(r *rand.Rand) turn {
	t := turn{fault: f}
	for _, p := range f.Parts {
		t.variants = append(t.variants, weighted(r, p.Variants))
		t.seeds = append(t.seeds, r.Uint64())
	}
	return t
}

// weighted draws one of vs by weight (the first if none has any); it always draws one
// number, so that the draws after it do not depend on how many variants there are.
func weighted(r *rand.Rand, vs []Variant) Variant {
	total := 0
	for _, v := range vs {
		total += v.Weight
	}
	x := r.IntN(max(total, 1))
	for _, v := range vs {
		if x < v.Weight {
			return v
		}
		x -= v.Weight
	}
	return vs[0]
}

// events names the turn's injection and heal in the history: the kind's (or its
// variant's), or for a combination its name and "heal-" with its name.
func (t turn) events() (start, end string) {
	if len(t.fault.Parts) > 1 {
		return t.fault.Name, "heal-" + t.fault.Name
	}
	d := t.fault.Parts[0].Def
	return cmpOr(t.variants[0].Start, d.Start), d.End
}

// value is the turn's variants, as its invoke records them ("all", "leader+slow").
func (t turn) value() string {
	names := make([]string, len(t.variants))
	for i, v := range t.variants {
		names[i] = v.Name
	}
	return strings.Join(names, ComboSep)
}

// healTimeout bounds the turn's heal: the sum of its parts' bounds.
func (t turn) healTimeout() time.Duration {
	var sum time.Duration
	for _, p := range t.fault.Parts {
		sum += cmp.Or(p.Def.HealLimit, HealTimeout)
	}
	return sum
}

// timeout bounds the turn's injection: the sum of its parts' bounds.
func (t turn) timeout(nodes int) time.Duration {
	var sum time.Duration
	for i, p := range t.fault.Parts {
		switch v := t.variants[i]; {
		case v.Timeout != nil:
			sum += v.Timeout(nodes)
		case p.Def.Timeout != nil:
			sum += p.Def.Timeout(nodes)
		default:
			sum += HealTimeout
		}
	}
	return sum
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// ComboSep joins the kinds of a combined fault: "partition+clock".
const ComboSep = "+"

// VariantSep separates a kind from its variant: "kill:all".
const VariantSep = ":"

// Choice is one part of an entry as the user wrote it: a kind and, optionally, the
// variant asked for.
type Choice struct {
	Kind    Kind
	Variant string
}

func (c Choice) String() string {
	if c.Variant == "" {
		return string(c.Kind)
	}
	return string(c.Kind) + VariantSep + c.Variant
}

// Parse reads one --nemesis entry: a kind ("kill"), a kind's variant ("kill:all"), or
// kinds held together ("partition:leader+clock:slow", each kind once). An unknown kind
// or variant is an error naming the valid ones.
func Parse(entry string) ([]Choice, error) {
	parts := strings.Split(entry, ComboSep)
	var out []Choice
	for _, p := range parts {
		name, variant, _ := strings.Cut(strings.TrimSpace(p), VariantSep)
		if name == "" {
			return nil, fmt.Errorf("%q: an empty kind (kinds are %s)", entry, strings.Join(KindNames(), ", "))
		}
		d, ok := Lookup(Kind(name))
		if !ok {
			return nil, fmt.Errorf("%q is not a fault kind: one of none, all, %s (kind:variant picks a variant; kinds joined by + are injected together)",
				name, strings.Join(KindNames(), ", "))
		}
		if variant != "" {
			if _, ok := d.Variant(variant); !ok {
				return nil, fmt.Errorf("%s has no variant %q: its variants are %s", name, variant, strings.Join(d.VariantNames(), ", "))
			}
		}
		if slices.ContainsFunc(out, func(c Choice) bool { return c.Kind == d.Kind }) {
			return nil, fmt.Errorf("%q: each kind once in a combination", entry)
		}
		out = append(out, Choice{Kind: d.Kind, Variant: variant})
	}
	return out, nil
}

// Unavailable is an entry that a cluster cannot take: which part of it, and why.
type Unavailable struct {
	Entry, Part, Why string
}

func (u *Unavailable) Error() string {
	if u.Part == u.Entry {
		return u.Entry + " is unavailable: " + u.Why
	}
	return u.Entry + " is unavailable: " + u.Part + ": " + u.Why
}

// Choose resolves the --nemesis entries ("none" and "all" aside: see ChooseAll) for a
// cluster of nodes nodes that can do caps. A variant the cluster cannot take is left out
// of an entry that named none (noted in skipped, with the reason); an entry that cannot
// be injected at all, or whose named variant cannot, is an *Unavailable; a malformed
// entry is an error of Parse.
func Choose(entries []string, nodes int, caps Caps) (faults []*Fault, skipped map[string]string, err error) {
	skipped = map[string]string{}
	for _, e := range entries {
		choices, err := Parse(e)
		if err != nil {
			return nil, nil, err
		}
		f := &Fault{Name: e}
		for _, c := range choices {
			d, _ := Lookup(c.Kind)
			if why := lacks(d.Needs, d.MinNodes, nodes, caps); why != "" {
				return nil, nil, &Unavailable{Entry: e, Part: string(d.Kind), Why: why}
			}
			p := Part{Def: d}
			for _, v := range d.Variants {
				if c.Variant != "" && v.Name != c.Variant || c.Variant == "" && v.Weight == 0 {
					continue
				}
				if why := lacks(v.Needs, v.MinNodes, nodes, caps); why != "" {
					if c.Variant != "" {
						return nil, nil, &Unavailable{Entry: e, Part: c.String(), Why: why}
					}
					skipped[string(d.Kind)+VariantSep+v.Name] = why
					continue
				}
				p.Variants = append(p.Variants, v)
			}
			if len(p.Variants) == 0 {
				return nil, nil, &Unavailable{Entry: e, Part: string(d.Kind), Why: "none of its variants can be injected here"}
			}
			f.Parts = append(f.Parts, p)
		}
		if !slices.ContainsFunc(faults, func(g *Fault) bool { return g.Name == f.Name }) {
			faults = append(faults, f)
		}
	}
	return faults, skipped, nil
}

// ChooseAll resolves "all": every kind the cluster can take, each alone; the others
// are in skipped with the reason.
func ChooseAll(nodes int, caps Caps) (faults []*Fault, skipped map[string]string) {
	skipped = map[string]string{}
	for _, d := range registry {
		fs, sk, err := Choose([]string{string(d.Kind)}, nodes, caps)
		if u, ok := err.(*Unavailable); ok {
			skipped[string(d.Kind)] = u.Why
			continue
		}
		faults = append(faults, fs...)
		for k, v := range sk {
			skipped[k] = v
		}
	}
	return faults, skipped
}

// lacks says why a cluster of nodes nodes with caps cannot take what needs and min ask
// ("" when it can).
func lacks(needs []Capability, min, nodes int, caps Caps) string {
	if nodes < min {
		return fmt.Sprintf("needs at least %d nodes", min)
	}
	for _, x := range needs {
		if ok, why := caps.Has(x); !ok {
			return why
		}
	}
	return ""
}
