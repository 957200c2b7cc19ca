package history

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// A minimal EDN reader, enough for Jepsen's history.edn and the values in its logs:
// nil, booleans, numbers, strings, characters, keywords, symbols, vectors, lists,
// maps, sets, tagged values (#jepsen.history.Op{...}, #inst "...") and #_ discards.
// Scalars keep their text; collections their items (a map's keys and values alternate).

type ednKind uint8

const (
	ednNil ednKind = iota
	ednBool
	ednNumber
	ednString
	ednChar
	ednKeyword
	ednSymbol
	ednVector
	ednList
	ednMap
	ednSet
)

type ednValue struct {
	kind  ednKind
	text  string // scalars: the text (a string unquoted, a keyword without its colon)
	items []ednValue
	line  int
}

func (v ednValue) scalar() bool { return v.kind < ednVector }

// String renders the value back as EDN-ish text, for nemesis values and messages.
func (v ednValue) String() string {
	switch v.kind {
	case ednNil:
		return "nil"
	case ednString:
		return fmt.Sprintf("%q", v.text)
	case ednKeyword:
		return ":" + v.text
	case ednChar:
		return `\` + v.text
	case ednVector, ednList, ednMap, ednSet:
		open, end := map[ednKind]string{ednVector: "[", ednList: "(", ednMap: "{", ednSet: "#{"}[v.kind], map[ednKind]string{ednVector: "]", ednList: ")", ednMap: "}", ednSet: "}"}[v.kind]
		parts := make([]string, len(v.items))
		for i, it := range v.items {
			parts[i] = it.String()
		}
		return open + strings.Join(parts, " ") + end
	}
	return v.text
}

// errEDNEOF is the end of input in the middle of a value.
var errEDNEOF = errors.New("unexpected end of input")

const maxEDNDepth = 64

type ednReader struct {
	s    string
	pos  int
	line int
}

func newEDNReader(s string) *ednReader { return &ednReader{s: s, line: 1} }

func (r *ednReader) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %s", r.line, fmt.Sprintf(format, args...))
}

// skip passes whitespace, commas and comments.
func (r *ednReader) skip() {
	for r.pos < len(r.s) {
		switch c := r.s[r.pos]; c {
		case '\n':
			r.line++
			r.pos++
		case ' ', '\t', '\r', ',', '\f':
			r.pos++
		case ';':
			for r.pos < len(r.s) && r.s[r.pos] != '\n' {
				r.pos++
			}
		default:
			return
		}
	}
}

// more reports whether a value may follow.
func (r *ednReader) more() bool {
	r.skip()
	return r.pos < len(r.s)
}

func isDelim(c byte) bool {
	return strings.IndexByte(" \t\r\n,;()[]{}\"\f", c) >= 0
}

// read reads one value.
func (r *ednReader) read(depth int) (ednValue, error) {
	if depth > maxEDNDepth {
		return ednValue{}, r.errorf("values nested deeper than %d", maxEDNDepth)
	}
	r.skip()
	if r.pos >= len(r.s) {
		return ednValue{}, fmt.Errorf("line %d: %w", r.line, errEDNEOF)
	}
	line := r.line
	c := r.s[r.pos]
	switch c {
	case '[':
		r.pos++
		return r.readSeq(ednVector, ']', depth, line)
	case '(':
		r.pos++
		return r.readSeq(ednList, ')', depth, line)
	case '{':
		r.pos++
		return r.readSeq(ednMap, '}', depth, line)
	case ']', ')', '}':
		return ednValue{}, r.errorf("unexpected %q", c)
	case '"':
		return r.readString(line)
	case '#':
		return r.readDispatch(depth, line)
	case '\\':
		r.pos++
		tok := r.token()
		if tok == "" && r.pos < len(r.s) { // \( \[ \space-like delimiters
			_, n := utf8.DecodeRuneInString(r.s[r.pos:])
			tok = r.s[r.pos : r.pos+n]
			r.pos += n
		}
		if tok == "" {
			return ednValue{}, fmt.Errorf("line %d: %w", r.line, errEDNEOF)
		}
		return ednValue{kind: ednChar, text: tok, line: line}, nil
	}
	tok := r.token()
	return r.atom(tok, line)
}

func (r *ednReader) token() string {
	start := r.pos
	for r.pos < len(r.s) && !isDelim(r.s[r.pos]) {
		r.pos++
	}
	return r.s[start:r.pos]
}

func (r *ednReader) atom(tok string, line int) (ednValue, error) {
	switch {
	case tok == "nil":
		return ednValue{kind: ednNil, line: line}, nil
	case tok == "true" || tok == "false":
		return ednValue{kind: ednBool, text: tok, line: line}, nil
	case tok[0] == ':':
		if len(tok) == 1 {
			return ednValue{}, r.errorf("empty keyword")
		}
		return ednValue{kind: ednKeyword, text: tok[1:], line: line}, nil
	case tok[0] >= '0' && tok[0] <= '9',
		len(tok) > 1 && (tok[0] == '-' || tok[0] == '+') && tok[1] >= '0' && tok[1] <= '9':
		return ednValue{kind: ednNumber, text: strings.TrimRight(tok, "NM"), line: line}, nil
	}
	return ednValue{kind: ednSymbol, text: tok, line: line}, nil
}

func (r *ednReader) readSeq(kind ednKind, end byte, depth, line int) (ednValue, error) {
	v := ednValue{kind: kind, line: line, items: []ednValue{}}
	for {
		r.skip()
		if r.pos >= len(r.s) {
			return ednValue{}, fmt.Errorf("line %d: %w (a collection opened on line %d is not closed)", r.line, errEDNEOF, line)
		}
		if r.s[r.pos] == end {
			r.pos++
			if kind == ednMap && len(v.items)%2 != 0 {
				return ednValue{}, fmt.Errorf("line %d: a map has a key without a value", line)
			}
			return v, nil
		}
		it, err := r.read(depth + 1)
		if err != nil {
			return ednValue{}, err
		}
		if it.kind == ednNil && it.text == "#_" {
			continue
		}
		v.items = append(v.items, it)
	}
}

func (r *ednReader) readString(line int) (ednValue, error) {
	var b strings.Builder
	for r.pos++; r.pos < len(r.s); r.pos++ {
		c := r.s[r.pos]
		switch c {
		case '"':
			r.pos++
			return ednValue{kind: ednString, text: b.String(), line: line}, nil
		case '\n':
			r.line++
		case '\\':
			r.pos++
			if r.pos >= len(r.s) {
				break
			}
			switch e := r.s[r.pos]; e {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			default:
				c = e
			}
		}
		b.WriteByte(c)
	}
	return ednValue{}, fmt.Errorf("line %d: %w (a string opened on line %d is not closed)", r.line, errEDNEOF, line)
}

// readDispatch reads #{set}, #_discard and #tag value (the tag is dropped).
func (r *ednReader) readDispatch(depth, line int) (ednValue, error) {
	r.pos++
	if r.pos >= len(r.s) {
		return ednValue{}, fmt.Errorf("line %d: %w", r.line, errEDNEOF)
	}
	switch r.s[r.pos] {
	case '{':
		r.pos++
		return r.readSeq(ednSet, '}', depth, line)
	case '_':
		r.pos++
		if _, err := r.read(depth + 1); err != nil {
			return ednValue{}, err
		}
		return ednValue{kind: ednNil, text: "#_", line: line}, nil
	}
	if tag := r.token(); tag == "" {
		return ednValue{}, r.errorf("a # that starts no tag, set or discard")
	}
	return r.read(depth + 1)
}
