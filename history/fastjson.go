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
func decodeFast(b []byte, e *Event, in interner) bool {
	p := parser{b: b, in: in}
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

type parser struct {
	b  []byte
	i  int
	in interner // for the names a transaction's micro-operations repeat
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
	start := p.i
	p.eat('-')
	if d := p.i; p.digits() == 0 || (p.b[d] == '0' && p.i > d+1) {
		return "", false
	}
	if p.eat('.') && p.digits() == 0 {
		return "", false
	}
	if p.eat('e') || p.eat('E') {
		if !p.eat('+') {
			p.eat('-')
		}
		if p.digits() == 0 {
			return "", false
		}
	}
	return string(p.b[start:p.i]), true
}

// scalar reads a string or a number, as Value keeps either.
func (p *parser) scalar() (string, bool) {
	if p.peek() == '"' {
		s, ok := p.str()
		return string(s), ok
	}
	return p.number()
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
		items := []string{}
		p.ws()
		if p.eat(']') {
			return L(items...), true
		}
		if p.peek() == '[' {
			return p.txn()
		}
		for {
			p.ws()
			s, ok := p.scalar()
			if !ok {
				return Value{}, false
			}
			items = append(items, s)
			p.ws()
			if p.eat(']') {
				return L(items...), true
			}
			if !p.eat(',') {
				return Value{}, false
			}
		}
	}
	s, ok := p.scalar()
	return S1(s), ok
}

// txn reads a transaction's micro-operations, after its opening bracket: [f, key, value]
// each, value null, a scalar or an array of scalars.
func (p *parser) txn() (Value, bool) {
	var mops []Mop
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
			if p.peek() == '"' {
				s, ok := p.str()
				if !ok {
					return Value{}, false
				}
				b = s
			} else {
				s, ok := p.number()
				if !ok {
					return Value{}, false
				}
				b = []byte(s)
			}
			*dst = p.in.get(b)
		}
		p.ws()
		if !p.eat(',') {
			return Value{}, false
		}
		p.ws()
		v, ok := p.value()
		if !ok || v.Kind == Txn {
			return Value{}, false
		}
		m.V = v
		p.ws()
		if !p.eat(']') {
			return Value{}, false
		}
		mops = append(mops, m)
		p.ws()
		if p.eat(']') {
			return T(mops...), true
		}
		if !p.eat(',') {
			return Value{}, false
		}
	}
}
