package history

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// jepsenOp is one Jepsen operation as read, before its value is interpreted.
type jepsenOp struct {
	line    int
	process int
	typ     Type
	f       string
	value   ednValue
	hasKey  bool
	key     string
	time    int64
	hasTime bool
	node    string
	err     string
}

// ReadJepsenEDN reads a Jepsen history.edn: operation maps one after another (one a
// line, as Jepsen writes them), or one vector of them. :process is an integer or
// :nemesis; :type is :invoke, :ok, :fail or :info; values that are all [k v] tuples
// are Jepsen's independent keys and become Key and Value. Times come from :time, or
// from the order of the operations when any lacks one; indices are the order read.
// A map cut short at the end of the input is taken as torn and dropped (info.Torn);
// any other malformed input is an error wrapping ErrBadHistory that names its line.
func ReadJepsenEDN(r io.Reader) ([]Event, ReadInfo, error) {
	var info ReadInfo
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, info, fmt.Errorf("read history: %w", err)
	}
	rd := newEDNReader(string(b))
	var maps []ednValue
	for rd.more() {
		start := rd.pos
		v, err := rd.read(0)
		if errors.Is(err, errEDNEOF) && len(maps) > 0 && maps[0].kind == ednMap &&
			!strings.Contains(strings.TrimSpace(rd.s[start:]), "\n") { // cut short on the last line
			info.Torn = true
			break
		}
		if err != nil {
			return nil, info, fmt.Errorf("%w: %v", ErrBadHistory, err)
		}
		switch {
		case v.kind == ednNil && v.text == "#_":
		case (v.kind == ednVector || v.kind == ednList) && len(maps) == 0 && !rd.more():
			maps = v.items // the whole history as one collection
		default:
			maps = append(maps, v)
		}
	}
	ops := make([]jepsenOp, 0, len(maps))
	for _, m := range maps {
		o, err := jepsenMap(m)
		if err != nil {
			return nil, info, fmt.Errorf("%w: line %d: %v", ErrBadHistory, m.line, err)
		}
		ops = append(ops, o)
	}
	events, err := jepsenEvents(ops)
	info.Lines = len(events)
	return events, info, err
}

// jepsenMap reads one operation map.
func jepsenMap(m ednValue) (jepsenOp, error) {
	o := jepsenOp{line: m.line, process: -2}
	if m.kind != ednMap {
		return o, fmt.Errorf("%s is not an operation map", clip(m.String()))
	}
	for i := 0; i+1 < len(m.items); i += 2 {
		k, v := m.items[i], m.items[i+1]
		if k.kind != ednKeyword {
			continue
		}
		var err error
		switch k.text {
		case "process":
			o.process, err = jepsenProcess(v)
		case "type":
			o.typ, err = jepsenType(v)
		case "f":
			o.f = v.text
			if !v.scalar() || v.kind == ednNil {
				err = fmt.Errorf(":f %s is not a name", clip(v.String()))
			}
		case "value":
			o.value = v
		case "key":
			o.hasKey, o.key = true, scalarText(v)
		case "time":
			o.time, err = strconv.ParseInt(v.text, 10, 64)
			o.hasTime = err == nil
			if err != nil {
				err = fmt.Errorf(":time %s is not an integer", clip(v.String()))
			}
		case "node":
			o.node = scalarText(v)
		case "error":
			o.err = scalarText(v)
		}
		if err != nil {
			return o, err
		}
	}
	switch {
	case o.process == -2:
		return o, errors.New("no :process")
	case o.typ == "":
		return o, errors.New("no :type")
	}
	return o, nil
}

func jepsenProcess(v ednValue) (int, error) {
	if v.kind == ednKeyword && v.text == "nemesis" {
		return NemesisProcess, nil
	}
	if v.kind == ednNumber {
		if p, err := strconv.Atoi(v.text); err == nil && p >= 0 {
			return p, nil
		}
	}
	return 0, fmt.Errorf(":process %s is neither :nemesis nor a non-negative integer", clip(v.String()))
}

func jepsenType(v ednValue) (Type, error) {
	if v.kind == ednKeyword {
		switch t := Type(v.text); t {
		case Invoke, OK, Fail, Info:
			return t, nil
		}
	}
	return "", fmt.Errorf(":type %s is not :invoke, :ok, :fail or :info", clip(v.String()))
}

// scalarText is a scalar's text, or a collection's EDN text.
func scalarText(v ednValue) string {
	switch {
	case v.kind == ednNil:
		return ""
	case v.scalar():
		return v.text
	}
	return v.String()
}

func clip(s string) string {
	if len(s) > 60 {
		return s[:57] + "..."
	}
	return s
}

// jepsenEvents interprets the operations' values and numbers the events. A history
// whose client invokes all carry [k v] tuples uses Jepsen's independent keys; a
// completion without a tuple takes the key of its process's invoke.
func jepsenEvents(ops []jepsenOp) ([]Event, error) {
	independent, clients, timed := true, 0, true
	for _, o := range ops {
		timed = timed && o.hasTime
		if o.process == NemesisProcess || o.hasKey || o.typ != Invoke {
			continue
		}
		clients++
		if !isTuple(o) {
			independent = false
		}
	}
	independent = independent && clients > 0
	events := make([]Event, 0, len(ops))
	keys := map[int]string{} // process -> key of its last invoke
	for i, o := range ops {
		e := Event{Index: int64(i), Time: int64(i), Process: o.process, Type: o.typ, F: o.f, Key: o.key, Node: o.node, Error: o.err}
		if timed {
			e.Time = o.time
		}
		val := o.value
		switch {
		case o.process == NemesisProcess:
			if val.kind != ednNil {
				e.Value = S1(val.String())
			}
			events = append(events, e)
			continue
		case independent && !o.hasKey && isTuple(o):
			e.Key, val = scalarText(val.items[0]), val.items[1]
			keys[o.process] = e.Key
		case independent && !o.hasKey: // a completion that dropped its tuple
			e.Key = keys[o.process]
		}
		v, err := jepsenValue(val)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadHistory, o.line, err)
		}
		e.Value = v
		events = append(events, e)
	}
	return events, nil
}

// isTuple reports whether the operation's value is an independent [k v] tuple (for a
// cas, [k [from to]]).
func isTuple(o jepsenOp) bool {
	v := o.value
	return v.kind == ednVector && len(v.items) == 2 && (o.f != OpCAS || v.items[1].kind == ednVector) && !isTxn(v)
}

// isTxn reports whether v is a transaction: a collection of [f key value] micro-operations,
// f a keyword (Elle's histories: [[:append 1 2] [:r 2 [1 2]]]).
func isTxn(v ednValue) bool {
	if v.scalar() || v.kind == ednMap || len(v.items) == 0 {
		return false
	}
	for _, m := range v.items {
		if m.scalar() || m.kind == ednMap || len(m.items) != 3 || m.items[0].kind != ednKeyword || !m.items[1].scalar() {
			return false
		}
	}
	return true
}

// jepsenValue converts a client value: nil, a scalar, a collection of scalars, or a
// transaction.
func jepsenValue(v ednValue) (Value, error) {
	switch {
	case v.kind == ednNil:
		return Value{}, nil
	case v.scalar():
		return S1(v.text), nil
	case v.kind == ednMap:
		return Value{}, fmt.Errorf("value %s is a map, not a register or list value", clip(v.String()))
	case isTxn(v):
		mops := make([]Mop, len(v.items))
		for i, m := range v.items {
			mv, err := jepsenValue(m.items[2])
			if err != nil {
				return Value{}, fmt.Errorf("micro-operation %s: %w", clip(m.String()), err)
			}
			mops[i] = Mop{F: m.items[0].text, Key: m.items[1].text, V: mv}
		}
		return T(mops...), nil
	}
	items := make([]string, len(v.items))
	for i, it := range v.items {
		if !it.scalar() {
			return Value{}, fmt.Errorf("value %s nests collections", clip(v.String()))
		}
		items[i] = it.text
	}
	return L(items...), nil
}

// ReadJepsenLog reads the operation lines a Jepsen test logs through jepsen.util
// ("INFO  jepsen.util - 3	:invoke	:cas	[3 0]"), for the register workload. Other
// lines are skipped. A completion that carries an error keyword in place of its value
// (":info :write :timed-out") gets its invoke's value and that error; a :fail that
// timed out is taken as :info, since a timeout says nothing about whether the operation
// happened. Times are the order of the lines. A malformed operation line is an error
// wrapping ErrBadHistory that names its line.
func ReadJepsenLog(r io.Reader) ([]Event, ReadInfo, error) {
	var info ReadInfo
	var ops []jepsenOp
	invokes := map[int]ednValue{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for lineNo := 1; sc.Scan(); lineNo++ {
		line := sc.Text()
		i := strings.Index(line, "jepsen.util - ")
		if i < 0 {
			continue
		}
		o, err := jepsenLogLine(line[i+len("jepsen.util - "):], lineNo)
		if err != nil {
			return nil, info, fmt.Errorf("%w: line %d: %v", ErrBadHistory, lineNo, err)
		}
		if o.typ == Invoke {
			invokes[o.process] = o.value
		} else if o.value.kind == ednKeyword && (o.typ == Info || o.typ == Fail) {
			o.err, o.value = o.value.text, invokes[o.process]
			if o.typ == Fail && strings.Contains(o.err, "timed-out") {
				o.typ = Info
			}
		}
		ops = append(ops, o)
	}
	if err := sc.Err(); err != nil {
		return nil, info, fmt.Errorf("read history: %w", err)
	}
	if len(ops) == 0 {
		return nil, info, fmt.Errorf("%w: no jepsen.util operation lines", ErrBadHistory)
	}
	events, err := jepsenEvents(ops)
	info.Lines = len(events)
	return events, info, err
}

// jepsenLogLine reads "process type f value [error]".
func jepsenLogLine(s string, lineNo int) (jepsenOp, error) {
	o := jepsenOp{line: lineNo}
	rd := newEDNReader(s)
	var fields []ednValue
	for len(fields) < 5 && rd.more() {
		v, err := rd.read(0)
		if err != nil {
			return o, fmt.Errorf("%v in %q", err, clip(s))
		}
		fields = append(fields, v)
	}
	if len(fields) < 3 {
		return o, fmt.Errorf("%q is not \"process type f value\"", clip(s))
	}
	var err error
	if o.process, err = jepsenProcess(fields[0]); err != nil {
		return o, err
	}
	if o.typ, err = jepsenType(fields[1]); err != nil {
		return o, err
	}
	if !fields[2].scalar() || fields[2].kind == ednNil {
		return o, fmt.Errorf("f %s is not a name", clip(fields[2].String()))
	}
	o.f = fields[2].text
	if len(fields) > 3 {
		o.value = fields[3]
	}
	if len(fields) > 4 {
		o.err = scalarText(fields[4])
	}
	return o, nil
}
