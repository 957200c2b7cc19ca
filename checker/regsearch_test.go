package checker

import (
	"math"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// regHistory builds a register history from bytes, five to an operation: a store whose
// operations take effect in a random order inside their intervals, so that most
// histories are linearizable, with a byte that may corrupt a read or leave a write
// indeterminate — the cases where the two searches could part.
func regHistory(b []byte) []porcupine.Operation {
	type pending struct {
		op  porcupine.Operation
		at  int64 // when it takes effect
		idx int
	}
	var ps []pending
	for i := 0; i+4 < len(b) && len(ps) < 40; i += 5 {
		call := int64(b[i]) + int64(i)
		at := call + int64(b[i+1]%8)
		ret := at + int64(b[i+2]%8)
		in := &regInput{kind: regKind(b[i+3] % 3)}
		v := regState{set: true, v: string('a' + rune(b[i+4]%5))}
		switch in.kind {
		case regWrite:
			in.to = v
		case regCas:
			in.from, in.to = regState{set: true, v: string('a' + rune(b[i+3]>>4%5))}, v
		}
		in.next = in.to
		ps = append(ps, pending{porcupine.Operation{ClientId: len(ps), Input: in, Call: call, Output: &regOutput{}, Return: ret}, at, len(ps)})
	}
	byAt := slices.Clone(ps)
	slices.SortStableFunc(byAt, func(x, y pending) int { return int(x.at - y.at) })
	var s regState
	for _, p := range byAt {
		in, out := p.op.Input.(*regInput), p.op.Output.(*regOutput)
		flip := b[p.idx*5+4]
		switch in.kind {
		case regRead:
			out.read = s
			if flip&0xe0 == 0xe0 { // a read that saw something else
				out.read = regState{set: true, v: "z"}
			}
		case regWrite:
			s = in.to
		default:
			if s != in.from { // a cas that found another value failed: fails are left out
				ps[p.idx].idx = -1
				continue
			}
			s = in.to
		}
		if in.kind != regRead && flip&0xe0 == 0xc0 { // indeterminate
			out.unknown = true
			ps[p.idx].op.Return = math.MaxInt64
		}
	}
	var ops []porcupine.Operation
	for _, p := range ps {
		if p.idx >= 0 {
			p.op.ClientId = len(ops)
			ops = append(ops, p.op)
		}
	}
	return ops
}

// FuzzRegisterSearch holds the register search to Porcupine's answers.
func FuzzRegisterSearch(f *testing.F) {
	f.Add([]byte{0, 1, 1, 1, 0, 0, 2, 2, 0, 1, 5, 1, 1, 2, 2})
	f.Add([]byte{0, 7, 7, 1, 0, 1, 7, 7, 1, 1, 2, 7, 7, 0, 0xe0, 3, 7, 7, 2, 0x12})
	f.Fuzz(func(t *testing.T, b []byte) {
		ops := regHistory(b)
		// Both searches are exponential in the indeterminate writes that overlap: 36
		// operations, most of them such writes (testdata's cbd3310652b1c490), took
		// Porcupine 10 s and the register search 2.6 s, and go test -fuzz took the
		// worker for hung. Such inputs are left out, and a search that still runs past
		// its bound is not compared: the fuzzer is after disagreements, not slow inputs.
		if n := indeterminate(ops); n > maxFuzzIndeterminate {
			t.Skipf("%d indeterminate operations", n)
		}
		want := porcupine.CheckOperationsTimeout(registerModel, ops, fuzzSearchBound)
		got := searchRegister(regOpsOf(ops), time.Now().Add(fuzzSearchBound), new(atomic.Bool))
		if want == porcupine.Unknown || got == porcupine.Unknown {
			t.Skipf("a search ran past %v (Porcupine %v, register search %v)", fuzzSearchBound, want, got)
		}
		if got != want {
			t.Fatalf("register search %v, Porcupine %v", got, want)
		}
	})
}

// maxFuzzIndeterminate and fuzzSearchBound keep FuzzRegisterSearch's inputs to ones both
// searches decide in well under go test -fuzz's hang limit.
const (
	maxFuzzIndeterminate = 10
	fuzzSearchBound      = 2 * time.Second
)

// indeterminate counts the operations with no return (Return at the end of time).
func indeterminate(ops []porcupine.Operation) int {
	n := 0
	for _, o := range ops {
		if o.Return == math.MaxInt64 {
			n++
		}
	}
	return n
}

// TestRegisterSearchAgreesWithPorcupine runs the fuzz target's generator over many
// seeds, both answers being frequent, and counts them so that it cannot pass vacuously.
func TestRegisterSearchAgreesWithPorcupine(t *testing.T) {
	ok, illegal := 0, 0
	x := uint64(1)
	for range 3000 {
		b := make([]byte, 5*(5+int(x%30)))
		for i := range b {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			b[i] = byte(x >> 32)
		}
		ops := regHistory(b)
		want := porcupine.CheckOperations(registerModel, ops)
		got := searchRegister(regOpsOf(ops), time.Time{}, new(atomic.Bool))
		if (got == porcupine.Ok) != want {
			t.Fatalf("bytes %v: register search %v, Porcupine linearizable %v", b, got, want)
		}
		if want {
			ok++
		} else {
			illegal++
		}
	}
	if ok < 300 || illegal < 300 {
		t.Fatalf("the generator made %d linearizable and %d illegal histories: too few of one to compare", ok, illegal)
	}
}

func TestRegisterSearchStops(t *testing.T) {
	ops := regOpsOf(regHistory(make([]byte, 200)))
	var stop atomic.Bool
	stop.Store(true)
	if got := searchRegister(ops, time.Time{}, &stop); got != porcupine.Unknown {
		t.Fatalf("a stopped search answered %v", got)
	}
	if got := searchRegister(ops, time.Unix(1, 0), new(atomic.Bool)); got != porcupine.Unknown {
		t.Fatalf("a search past its deadline answered %v", got)
	}
}

// regOpsOf numbers the values of Porcupine register operations, as registerOps does.
func regOpsOf(pops []porcupine.Operation) []regOp {
	ids := map[regState]int32{{}: 0}
	id := func(s regState) int32 {
		n, ok := ids[s]
		if !ok {
			n = int32(len(ids))
			ids[s] = n
		}
		return n
	}
	out := make([]regOp, len(pops))
	for i, p := range pops {
		in, o := p.Input.(*regInput), p.Output.(*regOutput)
		out[i] = regOp{kind: in.kind, unknown: o.unknown, call: p.Call, ret: p.Return, read: id(o.read), from: id(in.from), to: id(in.to)}
	}
	return out
}
