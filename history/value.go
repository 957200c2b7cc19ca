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
)

// Value is an operation's argument or result: nothing, one string, or a list of strings.
// The zero Value is None.
type Value struct {
	Kind Kind
	S    string
	L    []string
}

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
	default:
		return "nil"
	}
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
