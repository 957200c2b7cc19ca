package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/faultline/faultline/history"
)

// inject applies the turn: its one kind, or every kind of a combination, in order, held
// together and healed in the reverse order. Some bugs need two faults at once: a leader
// whose lease outlives its leadership serves stale reads only while it is cut off from
// the new leader (a partition) and believes its lease too long (its clock slowed).
//
// The first part of a combination chooses the nodes; every later part acts on them (its
// Focus): partition:leader+clock:slow slows the clock of the leader it isolated, not of
// a node of its own drawing. Each part draws from a stream of its own, seeded by the
// turn, so what the cluster answers one part changes nothing the others draw.
//
// A combination is one fault in the history: its start event is named after it (the
// parts' start events are not recorded), its end "heal-" and its name, its value lists
// every part's start event and value, and its nodes are every node a part touched. If a
// part fails, the parts injected before it are healed and nothing is left applied.
func (t turn) inject(ctx context.Context, env Env) (Injection, error) {
	var (
		done  []Injection
		nodes []string
		value []string
	)
	healAll := func(ctx context.Context) error {
		var errs []error
		for i := len(done) - 1; i >= 0; i-- {
			if err := done[i].Heal(ctx); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	for i, p := range t.fault.Parts {
		penv := env
		penv.Rand = rand.New(rand.NewPCG(t.seeds[i], faultStream))
		if i > 0 {
			penv.Focus = done[0].focus()
		}
		v := t.variants[i]
		var inj Injection
		err := guard("inject "+string(p.Def.Kind), func() (err error) { // a panic undoes the parts before it too
			inj, err = p.Def.Inject(ctx, penv, v)
			return err
		})
		if err == nil && inj.Heal == nil {
			inj.Heal = healed
		}
		if err != nil {
			if herr := healAll(context.WithoutCancel(ctx)); herr != nil {
				err = errors.Join(err, fmt.Errorf("undo the parts before it: %w", herr))
			}
			if len(t.fault.Parts) > 1 {
				err = fmt.Errorf("%s:%s: %w", p.Def.Kind, v.Name, err)
			}
			return Injection{}, err
		}
		if len(t.fault.Parts) == 1 {
			return inj, nil
		}
		done = append(done, inj)
		value = append(value, cmpOr(v.Start, p.Def.Start))
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
	return Injection{Nodes: sorted(nodes), Value: history.L(value...), Focus: done[0].focus(), Heal: healAll}, nil
}
