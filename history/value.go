package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Kind says which of its forms a Value holds.
type Kind uint8

// The forms of a Value.
const (
	None Kind = iota // JSON null: no argument, or a read of a missing key
	Str              // one string
	List             // a list of strings (a cas's [from, to], a list or set read)
	Txn              // a transaction's micro-operations
)

// Value is an operation's argument or result: nothing, one string, a list of strings,
// or a transaction's micro-operations. The zero Value is None.
type Value struct {
	Kind Kind
	S    string
	L    []string
	T    []Mop
}

// Mop is one micro-operation of a transaction, as Elle's list-append histories write
// them: [F, Key, V]. An append carries its value (Str); a read carries nothing (None) in
// the invoke and the list it read (List) in the completion.
type Mop struct {
	F   string
	Key string
	V   Value
}

// The F of micro-operations.
const (
	MopAppend = "append"
	MopRead   = "r"
)

// T returns a Value holding a transaction's micro-operations.
func T(mops ...Mop) Value { return Value{Kind: Txn, T: mops} }

// S1 returns a Value holding one string.
func S1(s string) Value { return Value{Kind: Str, S: s} }

// L returns a Value holding a list of strings (an empty, non-nil list for no arguments).
func L(items ...string) Value {
	if items == nil {
		items = []string{}
	}
	return Value{Kind: List, L: items}
}

// IsNone reports whether the value is absent (JSON null).
func (v Value) IsNone() bool { return v.Kind == None }

// String renders the value for humans: nil, "s", or [a b c].
func (v Value) String() string {
	switch v.Kind {
	case Str:
		return fmt.Sprintf("%q", v.S)
	case List:
		return "[" + strings.Join(v.L, " ") + "]"
	case Txn:
		parts := make([]string, len(v.T))
		for i, m := range v.T {
			parts[i] = m.String()
		}
		return "[" + strings.Join(parts, " ") + "]"
	default:
		return "nil"
	}
}

// String renders the micro-operation as Elle does: [append x 3], [r x [1 2 3]], [r x nil].
func (m Mop) String() string {
	v := m.V.String()
	if m.V.Kind == Str {
		v = m.V.S
	}
	return "[" + m.F + " " + m.Key + " " + v + "]"
}

// MarshalJSON encodes None as null, Str as a string and List as an array.
func (v Value) MarshalJSON() ([]byte, error) {
	switch v.Kind {
	case Str:
		return json.Marshal(v.S)
	case List:
		if v.L == nil {
			return []byte("[]"), nil
		}
		return json.Marshal(v.L)
	case Txn:
		mops := make([][3]any, len(v.T))
		for i, m := range v.T {
			mops[i] = [3]any{m.F, m.Key, m.V}
		}
		return json.Marshal(mops)
	default:
		return []byte("null"), nil
	}
}

// UnmarshalJSON accepts null, a string, a number (kept as its decimal text), or an
// array of strings and numbers.
func (v *Value) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*v = Value{}
		return nil
	case b[0] == '[':
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		if len(raw) > 0 && bytes.HasPrefix(bytes.TrimSpace(raw[0]), []byte("[")) {
			return v.unmarshalTxn(raw)
		}
		items := make([]string, 0, len(raw))
		for _, r := range raw {
			s, err := scalar(r)
			if err != nil {
				return err
			}
			items = append(items, s)
		}
		*v = L(items...)
		return nil
	default:
		s, err := scalar(b)
		if err != nil {
			return err
		}
		*v = S1(s)
		return nil
	}
}

func scalar(b []byte) (string, error) {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		err := json.Unmarshal(b, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return "", fmt.Errorf("value %s is not a string, number, list or null", b)
	}
	return n.String(), nil
}

// unmarshalTxn reads a transaction: an array of [f, key, value] arrays.
func (v *Value) unmarshalTxn(raw []json.RawMessage) error {
	mops := make([]Mop, len(raw))
	for i, r := range raw {
		var parts []json.RawMessage
		if err := json.Unmarshal(r, &parts); err != nil || len(parts) != 3 {
			return fmt.Errorf("micro-operation %s is not [f, key, value]", r)
		}
		f, err := scalar(parts[0])
		if err != nil {
			return err
		}
		k, err := scalar(parts[1])
		if err != nil {
			return err
		}
		var mv Value
		if err := mv.UnmarshalJSON(parts[2]); err != nil {
			return err
		}
		if mv.Kind == Txn {
			return fmt.Errorf("micro-operation %s holds a transaction", r)
		}
		mops[i] = Mop{F: f, Key: k, V: mv}
	}
	*v = T(mops...)
	return nil
}
