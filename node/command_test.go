package node

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCommandRoundTrips(t *testing.T) {
	for _, c := range []Command{
		{ID: 1, Op: OpPut, Key: "k", Value: "v"},
		{ID: 1<<64 - 1, Op: OpCAS, Key: "k", Value: "new", From: "old"},
		{ID: 7, Op: OpAppend, Key: "", Value: ""},
		{ID: 0, Op: OpPut, Key: string(make([]byte, 300)), Value: "ü{\"x\":1}"},
	} {
		b, err := c.MarshalBinary()
		require.NoError(t, err)
		require.NotEqual(t, byte('{'), b[0])
		var got Command
		require.NoError(t, got.UnmarshalBinary(b))
		require.Equal(t, c, got)
	}
}

// Entries written as JSON (by nodes before the binary form) still apply.
func TestCommandDecodesJSONEntries(t *testing.T) {
	c := Command{ID: 9, Op: OpCAS, Key: "r1", Value: "2", From: "1"}
	b, err := json.Marshal(c)
	require.NoError(t, err)
	got := Command{Key: "stale"}
	require.NoError(t, got.UnmarshalBinary(b))
	require.Equal(t, c, got)
}

func TestCommandRejectsMalformedData(t *testing.T) {
	_, err := Command{ID: 1, Op: "delete", Key: "k"}.MarshalBinary()
	require.Error(t, err)
	good, err := Command{ID: 300, Op: OpPut, Key: "key", Value: "value"}.MarshalBinary()
	require.NoError(t, err)
	bad := map[string][]byte{
		"empty":          nil,
		"version":        append([]byte{2}, good[1:]...),
		"unknown op":     {commandV1, 1, 9, 0, 0, 0},
		"zero op":        {commandV1, 1, 0, 0, 0, 0},
		"trailing bytes": append(append([]byte{}, good...), 0),
	}
	for n := 1; n < len(good); n++ {
		bad["truncated at "+string(rune('0'+n%10))+string(rune('a'+n/10))] = good[:n]
	}
	for name, b := range bad {
		var c Command
		require.Error(t, c.UnmarshalBinary(b), name)
	}
}

// FuzzCommand: any data either fails to decode, or decodes to a command whose encoding
// decodes to it again — never a panic.
func FuzzCommand(f *testing.F) {
	for _, c := range []Command{{ID: 1, Op: OpPut, Key: "k", Value: "v"}, {ID: 2, Op: OpCAS, Key: "a", Value: "b", From: "c"}} {
		b, _ := c.MarshalBinary()
		f.Add(b)
	}
	f.Add([]byte(`{"id":1,"op":"put","key":"k"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Command
		if c.UnmarshalBinary(b) != nil {
			return
		}
		enc, err := c.MarshalBinary()
		if b[0] == '{' && err != nil {
			return // JSON may name any op; only the binary form is checked
		}
		require.NoError(t, err)
		var again Command
		require.NoError(t, again.UnmarshalBinary(enc))
		require.Equal(t, c, again)
	})
}
