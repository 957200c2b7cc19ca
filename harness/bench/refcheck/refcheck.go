// Package refcheck is the reference checker of `make bench`: Porcupine called directly,
// as a user of it would, on the same operations faultline check judges — its own plain
// reader (encoding/json line by line, or the Jepsen log's words), a register model
// partitioned by key, no explanations, no report. It imports Porcupine and the standard
// library only, so that its program (harness/bench/ref/porcheck) starts as a small
// program does: the ratios of the checker rows include no start-up of faultline's on
// the reference's side.
package refcheck

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

type regIn struct {
	f        byte // 'r', 'w', 'c'
	a, b     string
	unknown  bool // indeterminate: the outcome was never seen
	mismatch bool // a cas that definitely found another value
}

type regOut struct {
	v     string
	found bool
}

var rawModel = porcupine.Model{
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(string), input.(regIn)
		switch in.f {
		case 'r':
			if in.unknown {
				return true, s
			}
			o := output.(regOut)
			return (o.found && o.v == s) || (!o.found && s == ""), s
		case 'w':
			return true, in.a
		default: // cas
			switch {
			case in.mismatch:
				return s != in.a, s
			case s == in.a:
				return true, in.b
			default:
				return in.unknown, s // an indeterminate cas that found another value did nothing
			}
		}
	},
	Equal: func(a, b any) bool { return a == b },
}

// Check checks the history file path (faultline JSONL, or a Jepsen etcd log, .log)
// with Porcupine directly and returns "ok", "illegal" or "unknown" (out of time).
func Check(path string, timeout time.Duration) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var ops []porcupine.Operation
	if strings.HasSuffix(path, ".log") {
		ops, err = readJepsenLog(f)
	} else {
		ops, err = readJSONL(f)
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	m := rawModel
	m.Partition = func(h []porcupine.Operation) [][]porcupine.Operation {
		at := map[string]int{}
		var parts [][]porcupine.Operation
		for _, o := range h {
			k := o.Metadata.(string)
			i, ok := at[k]
			if !ok {
				i = len(parts)
				at[k] = i
				parts = append(parts, nil)
			}
			parts[i] = append(parts[i], o)
		}
		return parts
	}
	switch porcupine.CheckOperationsTimeout(m, ops, timeout) {
	case porcupine.Ok:
		return "ok", nil
	case porcupine.Illegal:
		return "illegal", nil
	}
	return "unknown", nil
}

// pending pairs invokes with completions by process.
type pending map[string]int

func readJSONL(r io.Reader) ([]porcupine.Operation, error) {
	var ops []porcupine.Operation
	open := pending{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e struct {
			Time    int64           `json:"time"`
			Process json.RawMessage `json:"process"`
			Type    string          `json:"type"`
			F       string          `json:"f"`
			Key     string          `json:"key"`
			Value   json.RawMessage `json:"value"`
			Error   string          `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, err
		}
		p := string(e.Process)
		if strings.HasPrefix(p, `"`) {
			continue // the nemesis
		}
		if e.Type == "invoke" {
			in := regIn{f: e.F[0]}
			switch e.F {
			case "write":
				_ = json.Unmarshal(e.Value, &in.a)
			case "cas":
				var ft []string
				_ = json.Unmarshal(e.Value, &ft)
				if len(ft) == 2 {
					in.a, in.b = ft[0], ft[1]
				}
			}
			open[p] = len(ops)
			ops = append(ops, porcupine.Operation{Input: in, Call: e.Time, Return: math.MaxInt64, Metadata: e.Key})
			continue
		}
		i, ok := open[p]
		if !ok {
			continue
		}
		delete(open, p)
		o := &ops[i]
		in := o.Input.(regIn)
		switch {
		case e.Type == "ok":
			o.Return = e.Time
			if in.f == 'r' {
				var v *string
				_ = json.Unmarshal(e.Value, &v)
				if v != nil {
					o.Output = regOut{v: *v, found: true}
				} else {
					o.Output = regOut{}
				}
			}
		case e.Type == "fail" && in.f == 'c' && e.Error == "mismatch":
			in.mismatch, o.Return = true, e.Time
		case e.Type == "fail":
			in.f = 0 // did not happen: dropped below
		default: // info
			in.unknown = true
		}
		o.Input = in
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return finish(ops, open), nil
}

// finish makes the operations never completed indeterminate and drops those that did
// not happen (definite failures of reads and writes).
func finish(ops []porcupine.Operation, open pending) []porcupine.Operation {
	for _, i := range open {
		in := ops[i].Input.(regIn)
		in.unknown = true
		ops[i].Input = in
	}
	out := ops[:0]
	for i, o := range ops {
		if o.Input.(regIn).f != 0 {
			o.ClientId = i // every operation its own client: processes are retired after info
			out = append(out, o)
		}
	}
	return out
}

// readJepsenLog reads Jepsen's etcd test log (the single-register histories that ship
// with Porcupine): "INFO  jepsen.util - PROC :TYPE :F VALUE".
func readJepsenLog(r io.Reader) ([]porcupine.Operation, error) {
	var ops []porcupine.Operation
	open := pending{}
	sc := bufio.NewScanner(r)
	t := int64(0)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) < 6 || w[1] != "jepsen.util" {
			continue
		}
		t++
		p, typ, f, val := w[3], w[4], strings.TrimPrefix(w[5], ":"), strings.Join(w[6:], " ")
		if typ == ":invoke" {
			in := regIn{f: f[0]}
			switch f {
			case "write":
				in.a = val
			case "cas":
				ab := strings.Fields(strings.Trim(val, "[]"))
				if len(ab) == 2 {
					in.a, in.b = ab[0], ab[1]
				}
			}
			open[p] = len(ops)
			ops = append(ops, porcupine.Operation{Input: in, Call: t, Return: math.MaxInt64, Metadata: ""})
			continue
		}
		i, ok := open[p]
		if !ok {
			continue
		}
		delete(open, p)
		o := &ops[i]
		in := o.Input.(regIn)
		switch {
		case typ == ":ok":
			o.Return = t
			if in.f == 'r' {
				o.Output = regOut{v: val, found: val != "nil"}
			}
		case typ == ":fail" && in.f == 'c':
			in.mismatch, o.Return = true, t
		case typ == ":fail" && val != ":timed-out":
			in.f = 0
		default:
			in.unknown = true
		}
		o.Input = in
	}
	return finish(ops, open), sc.Err()
}
