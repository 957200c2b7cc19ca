package history

import (
	"strconv"
	"unicode/utf8"
)

// decodeFast decodes one JSONL line of the shape Writer writes — an object of the
// known keys, in any order, whose strings need no unescaping — without reflection.
// It reports false for anything else (an escape, an unknown or differently cased key, a
// null where a string goes, a value that would not pass Event.UnmarshalJSON's checks,
// invalid UTF-8, ...): the caller then decodes the line with encoding/json, which gives
// the same event or the error. A line it accepts decodes to exactly what
// encoding/json makes of it (FuzzFastDecodeAgrees holds it to that).
//
// Reading the history was most of what `faultline check` spent on a 1M-operation run:
// encoding/json parses each line several times over (the event, its raw process, its
// value, each of the value's strings).
func decodeFast(b []byte, e *Event, d *decoder) bool {
	p := parser{b: b, d: d}
	in := d.names
	p.ws()
	if !p.eat('{') {
		return false
	}
	var out Event
	var seenProcess, seenType bool
	p.ws()
	if p.eat('}') {
		return false // no process, no type: encoding/json's path says why
	}
	for {
		p.ws()
		key, ok := p.str()
		if !ok {
			return false
		}
		p.ws()
		if !p.eat(':') {
			return false
		}
		p.ws()
		switch string(key) {
		case "index":
			if out.Index, ok = p.int(); !ok {
				return false
			}
		case "time":
			if out.Time, ok = p.int(); !ok {
				return false
			}
		case "rev":
			if out.Rev, ok = p.int(); !ok || out.Rev < 0 {
				return false
			}
		case "process":
			if p.peek() == '"' {
				s, ok := p.str()
				if !ok || string(s) != "nemesis" {
					return false
				}
				out.Process = NemesisProcess
			} else {
				n, ok := p.int()
				if !ok || n < 0 || n > int64(^uint(0)>>1) {
					return false
				}
				out.Process = int(n)
			}
			seenProcess = true
		case "type":
			s, ok := p.str()
			if !ok {
				return false
			}
			switch t := Type(s); t {
			case Invoke, OK, Fail, Info:
				out.Type = t
			default:
				return false
			}
			seenType = true
		case "f", "key", "node", "error":
			s, ok := p.str()
			if !ok {
				return false
			}
			switch string(key) {
			case "f":
				out.F = in.get(s)
			case "key":
				out.Key = in.get(s)
			case "node":
				out.Node = in.get(s)
			default:
				out.Error = in.get(s)
			}
		case "value":
			if out.Value, ok = p.value(); !ok {
				return false
			}
		default:
			return false
		}
		p.ws()
		if p.eat('}') {
			break
		}
		if !p.eat(',') {
			return false
		}
	}
	p.ws()
	if p.i != len(p.b) || !seenProcess || !seenType {
		return false
	}
	*e = out
	return true
}

// interner shares one copy of each name a history repeats (functions, keys, nodes,
// errors): a 1M-operation history holds a few thousand of them, not millions. A nil
// interner copies every time.
type interner map[string]string

// maxInterned bounds an interner: past it, new names are copied, not kept.
const maxInterned = 1 << 16

func (in interner) get(b []byte) string {
	if s, ok := in[string(b)]; ok {
		return s
	}
	s := string(b)
	if in != nil && len(in) < maxInterned {
		in[s] = s
	}
	return s
}

// decoder is what decodeFast keeps from one line of a history to the next, so that a
// history held whole in memory costs little more than what it says:
//   - names: one copy of each name (functions, keys, nodes, errors, a transaction's
//     micro-operations' functions and keys);
//   - lists: per first element, the longest list read so far. A list-append history's
//     reads of a key are prefixes of one another, so a list that is a prefix of the one
//     kept, or extends it, shares its storage instead of repeating every element: most
//     of a million-transaction history's memory was its reads' copies of the same lists;
//   - blocks from which lists and micro-operations are cut, one allocation per thousands
//     of them (appending them one by one was a third of the decoder's time).
//
// Lists cut from shared storage have their capacity capped at their length (an append
// to one copies): what decodeFast returns must not be changed in place. The zero
// decoder works; newDecoder's shares more.
type decoder struct {
	names interner
	lists map[string][]string
	strs  []string // block the next fresh lists are cut from
	mops  []Mop    // block the transactions' micro-operations are read into
	tail  []string // scratch: the elements of the list being read past a shared prefix
}

func newDecoder() *decoder {
	return &decoder{names: interner{}, lists: map[string][]string{}}
}

// blockLen is how many lists' elements or micro-operations a decoder block holds.
const blockLen = 4096

// cut returns n elements cut from *block (a new block when it has too few left), with
// capacity n.
func cut[T any](block *[]T, n int) []T {
	if cap(*block)-len(*block) < n {
		*block = make([]T, 0, max(blockLen, n))
	}
	l := len(*block)
	*block = (*block)[:l+n]
	return (*block)[l : l+n : l+n]
}

type parser struct {
	b     []byte
	i     int
	d     *decoder
	inTxn bool
}

func (p *parser) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) eat(c byte) bool {
	if p.peek() == c {
		p.i++
		return true
	}
	return false
}

// str reads a string with no escapes and no control characters, in valid UTF-8.
func (p *parser) str() ([]byte, bool) {
	if !p.eat('"') {
		return nil, false
	}
	start, ascii := p.i, true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		case c >= 0x80:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// int reads a JSON number that is an integer fitting an int64: what encoding/json puts
// in an int64 (a fraction or an exponent is refused, as it refuses them).
func (p *parser) int() (int64, bool) {
	s, ok := p.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// digits skips a run of decimal digits and returns how many there were.
func (p *parser) digits() int {
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	return p.i - start
}

// number reads a JSON number and returns its text, as json.Number keeps it.
func (p *parser) number() (string, bool) {
	b, ok := p.numberBytes()
	return string(b), ok
}

// numberBytes is number's text, not copied.
func (p *parser) numberBytes() ([]byte, bool) {
	start := p.i
	p.eat('-')
	if d := p.i; p.digits() == 0 || (p.b[d] == '0' && p.i > d+1) {
		return nil, false
	}
	if p.eat('.') && p.digits() == 0 {
		return nil, false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return nil, false
		}
	}
	return p.b[start:p.i], true
}

// scalar reads a string or a number, as Value keeps either.
func (p *parser) scalar() (string, bool) {
	b, ok := p.scalarBytes()
	return string(b), ok
}

// scalarBytes is scalar's text, not copied.
func (p *parser) scalarBytes() ([]byte, bool) {
	if p.peek() == '"' {
		return p.str()
	}
	return p.numberBytes()
}

// value reads null, a scalar, or an array of scalars.
func (p *parser) value() (Value, bool) {
	switch p.peek() {
	case 'n':
		if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
			p.i += 4
			return Value{}, true
		}
		return Value{}, false
	case '[':
		p.i++
		p.ws()
		if p.eat(']') {
			return L(), true
		}
		if p.peek() == '[' {
			if p.inTxn { // a transaction's micro-operation holds no transaction
				return Value{}, false
			}
			p.inTxn = true
			defer func() { p.inTxn = false }()
			return p.txn()
		}
		return p.list()
	}
	s, ok := p.scalar()
	return S1(s), ok
}

// list reads the elements of a non-empty list of scalars, after its opening bracket.
// Its prefix that matches the decoder's kept list of the same first element is shared
// with it; a list that extends the kept one becomes the kept one.
func (p *parser) list() (Value, bool) {
	d := p.d
	var kept []string
	first := true
	shared := 0 // the elements read so far equal kept[:shared], when tail is empty
	d.tail = d.tail[:0]
	for {
		p.ws()
		b, ok := p.scalarBytes()
		if !ok {
			return Value{}, false
		}
		if first {
			kept = d.lists[string(b)]
			first = false
		}
		if len(d.tail) == 0 && shared < len(kept) && kept[shared] == string(b) {
			shared++
		} else {
			d.tail = append(d.tail, string(b))
		}
		p.ws()
		if p.eat(']') {
			break
		}
		if !p.eat(',') {
			return Value{}, false
		}
	}
	switch {
	case len(d.tail) == 0:
		return Value{Kind: List, L: kept[:shared:shared]}, true
	case shared == len(kept) && d.lists != nil && (kept != nil || len(d.lists) < maxInterned):
		// the kept list, extended: append may grow it in place past every list cut
		// from it before, whose capacity ends at their length
		kept = append(kept, d.tail...)
		d.lists[kept[0]] = kept
		return Value{Kind: List, L: kept[:len(kept):len(kept)]}, true
	}
	l := cut(&d.strs, shared+len(d.tail))
	copy(l, kept[:shared])
	copy(l[shared:], d.tail)
	return Value{Kind: List, L: l}, true
}

// txn reads a transaction's micro-operations, after its opening bracket: [f, key, value]
// each, value null, a scalar or an array of scalars.
func (p *parser) txn() (Value, bool) {
	// The micro-operations go straight into the decoder's block (copying them there
	// afterwards, with the write barriers of their strings, was a third of the read).
	d := p.d
	start := len(d.mops)
	ok := false
	defer func() {
		if !ok {
			clear(d.mops[start:])
			d.mops = d.mops[:start]
		}
	}()
	for {
		p.ws()
		if !p.eat('[') {
			return Value{}, false
		}
		var m Mop
		for i, dst := range []*string{&m.F, &m.Key} {
			p.ws()
			if i > 0 && !p.eat(',') {
				return Value{}, false
			}
			p.ws()
			var b []byte
			var good bool
			if p.peek() == '"' {
				b, good = p.str()
			} else {
				b, good = p.numberBytes()
			}
			if !good {
				return Value{}, false
			}
			*dst = d.names.get(b)
		}
		p.ws()
		if !p.eat(',') {
			return Value{}, false
		}
		p.ws()
		v, good := p.value()
		if !good {
			return Value{}, false
		}
		m.V = v
		p.ws()
		if !p.eat(']') {
			return Value{}, false
		}
		if len(d.mops) == cap(d.mops) { // a new block, this transaction's first ones moved to it
			n := len(d.mops) - start
			b := make([]Mop, n, max(blockLen, 2*n))
			copy(b, d.mops[start:])
			clear(d.mops[start:])
			d.mops, start = b, 0
		}
		d.mops = append(d.mops, m)
		p.ws()
		if p.eat(']') {
			ok = true
			return Value{Kind: Txn, T: d.mops[start:len(d.mops):len(d.mops)]}, true
		}
		if !p.eat(',') {
			return Value{}, false
		}
	}
}
