package checker

import (
	"fmt"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/history"
)

// The list model is a single key's append-only list: append an element, read the whole
// list. Naively its state is the list itself, and porcupine's search is exponential in
// the appends that run concurrently (each order is a distinct state). When a key's
// reads are consistent — every read a prefix of the longest one, no element twice, each
// appended exactly once — the longest read fixes the order of every append it holds,
// and the state shrinks to a length: an append of the i-th element of that order can
// happen only when the list holds the first i; an acknowledged append no read contains
// can happen, after which no read and no ordered append can (every read would have
// shown it). That model admits exactly the linearizations the naive one admits, and its
// states collapse. Keys whose reads are inconsistent (already invalid by the append
// checker) keep the naive model, so that the visualization can still draw them.

// listInit is the initial state of both forms of the model.
type listInit struct{}

// listState is a list as one string: each element preceded by a 0 byte (naive form).
type listState string

func joinList(items []string) listState {
	var b strings.Builder
	for _, s := range items {
		b.WriteByte(0)
		b.WriteString(s)
	}
	return listState(b.String())
}

func (s listState) String() string {
	if s == "" {
		return "[]"
	}
	return "[" + strings.ReplaceAll(string(s[1:]), "\x00", " ") + "]"
}

// listInput is an append (of elem, pre-joined) or a read (naive form).
type listInput struct {
	read bool
	elem listState
}

type listOutput struct {
	unknown bool
	read    listState
}

// orderedList is the compact state: the first n elements of order, and whether an
// append that no read saw has happened since.
type orderedList struct {
	n       int
	tainted bool
	order   *[]string
}

func (s orderedList) String() string {
	out := "[" + strings.Join((*s.order)[:s.n], " ") + "]"
	if s.tainted {
		out += " + appends no read saw"
	}
	return out
}

// orderedInput is an append of the element at pos in the order (-1: in no read), or a
// read of the first n elements.
type orderedInput struct {
	read  bool
	pos   int
	n     int
	elem  string
	order *[]string
}

var listModel = porcupine.Model{
	Init: func() any { return listInit{} },
	Step: func(state, input, output any) (bool, any) {
		if in, ok := input.(*orderedInput); ok {
			return stepOrdered(state, in)
		}
		s, _ := state.(listState)
		in := input.(*listInput)
		if in.read {
			return s == output.(*listOutput).read, s
		}
		return true, s + in.elem
	},
	DescribeOperation: func(input, output any) string {
		if in, ok := input.(*orderedInput); ok {
			if in.read {
				return "read() -> [" + strings.Join((*in.order)[:in.n], " ") + "]"
			}
			return "append(" + in.elem + ")"
		}
		in, out := input.(*listInput), output.(*listOutput)
		switch {
		case in.read:
			return "read() -> " + out.read.String()
		case out.unknown:
			return "append(" + string(in.elem[1:]) + ") -> ?"
		}
		return "append(" + string(in.elem[1:]) + ")"
	},
	DescribeState: func(state any) string {
		if _, ok := state.(listInit); ok {
			return "[]"
		}
		return fmt.Sprint(state)
	},
}

func stepOrdered(state any, in *orderedInput) (bool, any) {
	s, ok := state.(orderedList)
	if !ok {
		s = orderedList{order: in.order}
	}
	switch {
	case in.read:
		return !s.tainted && s.n == in.n, s
	case in.pos < 0:
		s.tainted = true
		return true, s
	case s.tainted || s.n != in.pos:
		return false, state
	}
	s.n++
	return true, s
}

// listOrder returns the order of the appends that the key's reads fix, if the reads
// are consistent. When they are not, although every element was appended once, the
// reads contradict each other (a read that is not a prefix of another, an element
// twice or never appended): no search is needed to know the key is not linearizable.
func listOrder(ops []*op) (order []string, ordered, contradiction bool) {
	var longest []string
	appended := map[string]int{}
	unique := true
	for _, o := range ops {
		switch {
		case o.f == history.OpAppend && o.in.Kind == history.Str:
			appended[o.in.S]++
			unique = unique && appended[o.in.S] == 1
		case o.f == history.OpRead && !o.open() && len(o.out.L) > len(longest):
			longest = o.out.L
		}
	}
	pos := make(map[string]bool, len(longest))
	for _, e := range longest {
		if pos[e] || appended[e] != 1 {
			return nil, false, unique
		}
		pos[e] = true
	}
	for _, o := range ops {
		if o.f == history.OpRead && !o.open() && !isPrefix(o.out.L, longest) {
			return nil, false, unique
		}
	}
	return longest, true, false
}

// listOps converts one key's append and read operations, dropping an info read and an
// info append whose element no read contains (no read can follow it: every later read
// would contain the element). Operations it cannot interpret are noted and counted in
// bad.
func listOps(ops []*op, order []string, ordered bool, bad *ignoredOps) (pops []porcupine.Operation, kept []*op, dropped int, notes []string) {
	pos := make(map[string]int, len(order))
	for i, e := range order {
		pos[e] = i
	}
	pops, kept = make([]porcupine.Operation, 0, len(ops)), make([]*op, 0, len(ops))
	for _, o := range ops {
		var in, out any
		switch {
		case o.f == history.OpRead && o.open():
			dropped++
			continue
		case o.f == history.OpRead && o.out.Kind != history.Str && ordered:
			in = &orderedInput{read: true, n: len(o.out.L), order: &order}
		case o.f == history.OpRead && o.out.Kind != history.Str:
			in, out = &listInput{read: true}, &listOutput{read: joinList(o.out.L)}
		case o.f == history.OpAppend && o.in.Kind == history.Str:
			p, read := pos[o.in.S]
			if o.open() && !read {
				dropped++
				continue
			}
			if !read {
				p = -1
			}
			if ordered {
				in = &orderedInput{pos: p, elem: o.in.S, order: &order}
			} else {
				in, out = &listInput{elem: joinList([]string{o.in.S})}, &listOutput{unknown: o.open()}
			}
		default:
			notes = append(notes, fmt.Sprintf("event %d: %s of %v on key %q is not a list operation; ignored", o.invIdx, o.f, o.in, o.key))
			why := whyForeign
			if o.f == history.OpRead || o.f == history.OpAppend {
				why = whyShape
			}
			if o.guessed == "" { // else counted by the pairing
				bad.add(o.key, why)
			}
			continue
		}
		pops = append(pops, porcupine.Operation{ClientId: o.process, Input: in, Call: o.call, Output: out, Return: o.end()})
		kept = append(kept, o)
	}
	return pops, kept, dropped, notes
}
