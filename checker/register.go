package checker

import (
	"errors"
	"fmt"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/history"
)

// regState is a register's value; the zero regState is a missing key.
type regState struct {
	set bool
	v   string
}

func (s regState) String() string {
	if !s.set {
		return "nil"
	}
	return fmt.Sprintf("%q", s.v)
}

type regKind uint8

const (
	regRead regKind = iota
	regWrite
	regCas
)

// regInput is a register operation's argument. next is the state it writes, boxed once
// here so that porcupine's search does not allocate on every step.
type regInput struct {
	kind regKind
	from regState // cas: the value expected
	to   regState // write and cas: the value written
	next any      // to, boxed
}

// regOutput is a register operation's result: what a read saw, or nothing; unknown for
// an indeterminate write or cas, which may or may not have taken effect.
type regOutput struct {
	unknown bool
	read    regState
}

// registerModel is a single key's register (porcupine partitions are per key).
var registerModel = porcupine.Model{
	Init: func() any { return regState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(regState), input.(*regInput), output.(*regOutput)
		switch in.kind {
		case regRead:
			return out.unknown || s == out.read, state
		case regWrite:
			return true, in.next
		}
		if s == in.from {
			return true, in.next
		}
		return out.unknown, state // an indeterminate cas that did not match changed nothing
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(*regInput), output.(*regOutput)
		res := ""
		if out.unknown {
			res = " -> ?"
		}
		switch in.kind {
		case regRead:
			return "read() -> " + out.read.String()
		case regWrite:
			return "write(" + in.to.String() + ")" + res
		}
		return "cas(" + in.from.String() + ", " + in.to.String() + ")" + res
	},
	DescribeState: func(state any) string { return state.(regState).String() },
}

// regValue reads a register value: None is a missing key.
func regValue(v history.Value) (regState, error) {
	switch v.Kind {
	case history.None:
		return regState{}, nil
	case history.Str:
		return regState{set: true, v: v.S}, nil
	}
	return regState{}, fmt.Errorf("a list %v where a register value belongs", v)
}

// registerOps interprets one key's operations for the register search (values
// numbered, see regOp), dropping the indeterminate ones that cannot matter: an info
// read (it changes nothing), and an info write or cas whose value no read and no cas
// ever saw. Such a write, wherever it is ordered, is followed only by operations that
// do not look at the register before the next write (any that did would have seen its
// value), and open-ended operations can always be ordered last; so the history is
// linearizable with it iff without it. kept are the operations searched, in order.
//
// Operations it cannot interpret are noted and counted in bad. What it returns is in
// buf's memory (nil: fresh), good until buf's next use.
func registerOps(ops []*op, bad *ignoredOps, buf *regBuf) (reg []regOp, kept []*op, dropped int, notes []string) {
	if buf == nil {
		buf = &regBuf{}
	}
	seen := observedValues(ops)
	reg, kept = buf.reg[:0], buf.kept[:0]
	defer func() { buf.reg, buf.kept = reg, kept }()
	if buf.ids == nil {
		buf.ids = make(map[string]int32, len(ops))
	}
	ids := buf.ids
	clear(ids)
	id := func(s regState) int32 {
		if !s.set {
			return 0
		}
		n, ok := ids[s.v]
		if !ok {
			n = int32(len(ids) + 1)
			ids[s.v] = n
		}
		return n
	}
	for i := range ops {
		o := ops[i]
		in, out, err := registerOp(o)
		if err != nil {
			notes = append(notes, fmt.Sprintf("event %d: %s on key %q: %v; ignored", o.invIdx, o.f, o.key, err))
			why := whyShape
			if err == errNotRegister {
				why = whyForeign
			}
			if o.guessed == "" { // else counted by the pairing
				bad.add(o.key, why)
			}
			continue
		}
		if o.open() && (in.kind == regRead || !seen[in.to.v]) {
			dropped++
			continue
		}
		r := regOp{kind: in.kind, unknown: out.unknown, call: o.call, ret: o.end()}
		switch in.kind {
		case regRead:
			r.read = id(out.read)
		case regWrite:
			r.to = id(in.to)
		default:
			r.from, r.to = id(in.from), id(in.to)
		}
		reg = append(reg, r)
		kept = append(kept, o)
	}
	return reg, kept, dropped, notes
}

// regBuf is registerOps's memory, kept from one key to the next by a worker.
type regBuf struct {
	reg  []regOp
	kept []*op
	ids  map[string]int32
}

// registerPops makes Porcupine's operations of the operations registerOps kept.
func registerPops(kept []*op) []porcupine.Operation {
	ins, outs := make([]regInput, len(kept)), make([]regOutput, len(kept)) // one allocation each
	pops := make([]porcupine.Operation, len(kept))
	for i, o := range kept {
		ins[i], outs[i], _ = registerOp(o) // kept: interpreted once already
		ins[i].next = ins[i].to
		pops[i] = porcupine.Operation{ClientId: o.process, Input: &ins[i], Call: o.call, Output: &outs[i], Return: o.end()}
	}
	return pops
}

func registerOp(o *op) (regInput, regOutput, error) {
	out := regOutput{unknown: o.open()}
	switch o.f {
	case history.OpRead:
		if !o.open() {
			s, err := regValue(o.out)
			if err != nil {
				return regInput{}, out, err
			}
			out.read = s
		}
		return regInput{kind: regRead}, out, nil
	case history.OpWrite:
		if o.in.Kind != history.Str {
			return regInput{}, out, fmt.Errorf("write of %v, not a string", o.in)
		}
		to := regState{set: true, v: o.in.S}
		return regInput{kind: regWrite, to: to}, out, nil
	case history.OpCAS:
		if o.in.Kind != history.List || len(o.in.L) != 2 {
			return regInput{}, out, fmt.Errorf("cas of %v, not [from to]", o.in)
		}
		from, to := regState{set: true, v: o.in.L[0]}, regState{set: true, v: o.in.L[1]}
		return regInput{kind: regCas, from: from, to: to}, out, nil
	}
	return regInput{}, out, errNotRegister
}

var errNotRegister = errors.New("not a register operation")

// observedValues returns which of the values that indeterminate writes and cas wrote
// some read saw or some cas expected. Most keys have few such writes, so it looks only
// for them.
func observedValues(ops []*op) map[string]bool {
	var seen map[string]bool
	for _, o := range ops {
		if o.open() && (o.f == history.OpWrite && o.in.Kind == history.Str || o.f == history.OpCAS && len(o.in.L) == 2) {
			if seen == nil {
				seen = map[string]bool{}
			}
			if o.f == history.OpWrite {
				seen[o.in.S] = false
			} else {
				seen[o.in.L[1]] = false
			}
		}
	}
	if seen == nil {
		return nil
	}
	for _, o := range ops {
		var v string
		switch {
		case o.f == history.OpRead && !o.open() && o.out.Kind == history.Str:
			v = o.out.S
		case o.f == history.OpCAS && o.in.Kind == history.List && len(o.in.L) == 2:
			v = o.in.L[0]
		default:
			continue
		}
		if _, ok := seen[v]; ok {
			seen[v] = true
		}
	}
	return seen
}
