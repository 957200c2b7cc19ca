package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// ComboSep joins the kinds of a combined fault: "partition+clock".
const ComboSep = "+"

// SplitCombo returns the kinds of a combined kind ("partition+clock" gives partition and
// clock), or nil when k is a single kind.
func SplitCombo(k string) []string {
	if !strings.Contains(k, ComboSep) {
		return nil
	}
	return strings.Split(k, ComboSep)
}

// Combo is several faults in force at once: each turn it injects one fault of each part,
// in order, holds them together and heals them in the reverse order. Some bugs need two
// faults at the same time: a leader whose lease outlives its leadership serves stale
// reads only while it is cut off from the new leader (a partition) and believes its
// lease too long (a clock slowed or set back); either fault alone lets it hear of the new
// term at once.
//
// A combination is one fault in the history: its start event is named Kind (the parts'
// start events are not recorded), its end "heal-"+Kind, its value lists every part's
// value after its start event's name, and its nodes are every node a part touched.
type Combo struct {
	Kind string
	// Parts holds, for each kind of the combination, the faults it may give (clock: a
	// bump, a skew or a strobe; one of them, at random, each turn).
	Parts [][]Fault
}

func (c Combo) Name() string             { return c.Kind }
func (c Combo) Events() (string, string) { return c.Kind, "heal-" + c.Kind }

// Available says whether every part can be injected.
func (c Combo) Available(cl Cluster) (bool, string) {
	for _, p := range c.Parts {
		for _, f := range p {
			if ok, why := f.Available(cl); !ok {
				return false, why
			}
		}
	}
	return true, ""
}

// Inject injects a fault of each part in turn. Every random number a part needs is drawn
// before the first part is injected (each part's variant and the seed of its own
// stream), so what the cluster answers one part changes nothing the others draw. If a
// part fails, the parts injected before it are healed and nothing is left applied.
func (c Combo) Inject(ctx context.Context, env Env) (Injection, error) {
	type draw struct {
		f    Fault
		seed uint64
	}
	draws := make([]draw, len(c.Parts))
	for i, p := range c.Parts {
		if len(p) == 0 {
			return Injection{}, fmt.Errorf("%s: part %d has no fault", c.Kind, i+1)
		}
		draws[i] = draw{f: p[env.Rand.IntN(len(p))], seed: env.Rand.Uint64()}
	}
	var (
		done  []Injection
		nodes []string
		value []string
	)
	healAll := func(ctx context.Context) error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			if done[i].Heal == nil {
				continue
			}
			if err := done[i].Heal(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for _, d := range draws {
		penv := env
		penv.Rand = rand.New(rand.NewPCG(d.seed, faultStream))
		inj, err := d.f.Inject(ctx, penv)
		if err != nil {
			if herr := healAll(context.WithoutCancel(ctx)); herr != nil {
				err = errors.Join(err, fmt.Errorf("undo the parts before it: %w", herr))
			}
			return Injection{}, fmt.Errorf("%s: %w", d.f.Name(), err)
		}
		done = append(done, inj)
		start, _ := d.f.Events()
		value = append(value, start)
		switch inj.Value.Kind {
		case history.Str:
			value = append(value, inj.Value.S)
		case history.List:
			value = append(value, inj.Value.L...)
		}
		for _, n := range inj.Nodes {
			if !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	return Injection{Nodes: sorted(nodes), Value: history.L(value...), Heal: healAll}, nil
}

// NewCombo returns the combination of the given kinds, each part's faults from faults
// (ByName, or a cluster's own choice of variants). A combination needs two or more
// distinct kinds, none of them a combination itself.
func NewCombo(kinds []string, faults func(kind string) ([]Fault, error)) (Combo, error) {
	kind := strings.Join(kinds, ComboSep)
	if len(kinds) < 2 {
		return Combo{}, fmt.Errorf("combined fault %q needs two kinds or more", kind)
	}
	c := Combo{Kind: kind}
	for i, k := range kinds {
		if k == "" || slices.Contains(kinds[:i], k) {
			return Combo{}, fmt.Errorf("combined fault %q: each kind once, none empty", kind)
		}
		fs, err := faults(k)
		if err != nil {
			return Combo{}, fmt.Errorf("combined fault %q: %w", kind, err)
		}
		c.Parts = append(c.Parts, fs)
	}
	return c, nil
}

// InjectTimeout bounds the injection of a combination by the sum of its parts' bounds
// (the longest variant of each part).
func (c Combo) InjectTimeout(nodes int) time.Duration {
	var sum time.Duration
	for _, p := range c.Parts {
		var most time.Duration
		for _, f := range p {
			most = max(most, injectTimeout(f, nodes))
		}
		sum += most
	}
	return sum
}
