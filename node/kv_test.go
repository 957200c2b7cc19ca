package node

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKVApply(t *testing.T) {
	tests := []struct {
		name     string
		cmds     []Command
		key      string
		want     string
		found    bool
		mismatch bool // of the last command
	}{
		{"put", []Command{{Op: OpPut, Key: "a", Value: "1"}}, "a", "1", true, false},
		{"overwrite", []Command{{Op: OpPut, Key: "a", Value: "1"}, {Op: OpPut, Key: "a", Value: "2"}}, "a", "2", true, false},
		{"cas ok", []Command{{Op: OpPut, Key: "a", Value: "1"}, {Op: OpCAS, Key: "a", From: "1", Value: "2"}}, "a", "2", true, false},
		{"cas mismatch", []Command{{Op: OpPut, Key: "a", Value: "1"}, {Op: OpCAS, Key: "a", From: "3", Value: "2"}}, "a", "1", true, true},
		{"cas missing never matches", []Command{{Op: OpCAS, Key: "a", From: "", Value: "2"}}, "a", "", false, true},
		{"missing", nil, "a", "", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv := NewKV()
			var r Result
			for _, c := range tt.cmds {
				r = kv.Apply(c)
			}
			v, ok := kv.Get(tt.key)
			assert.Equal(t, tt.want, v)
			assert.Equal(t, tt.found, ok)
			assert.Equal(t, tt.mismatch, r.CASMismatch)
		})
	}
}

func TestKVListsAndSnapshot(t *testing.T) {
	kv := NewKV()
	assert.Equal(t, []string{}, kv.List("l"))
	for _, v := range []string{"x", "y", "z"} {
		kv.Apply(Command{Op: OpAppend, Key: "l", Value: v})
	}
	kv.Apply(Command{Op: OpPut, Key: "r", Value: "1"})
	kv.SetMember(2, "http://b")
	kv.SetMember(1, "http://a")
	l := kv.List("l")
	assert.Equal(t, []string{"x", "y", "z"}, l)
	l[0] = "mutated"
	assert.Equal(t, "x", kv.List("l")[0], "List returns a copy")

	data, err := kv.Snapshot()
	require.NoError(t, err)
	kv2 := NewKV()
	kv2.Apply(Command{Op: OpPut, Key: "stale", Value: "gone"})
	require.NoError(t, kv2.Restore(data))
	assert.Equal(t, []string{"x", "y", "z"}, kv2.List("l"))
	v, ok := kv2.Get("r")
	assert.True(t, ok)
	assert.Equal(t, "1", v)
	_, ok = kv2.Get("stale")
	assert.False(t, ok, "restore replaces the state")
	assert.Equal(t, []Member{{ID: 1, PeerURL: "http://a"}, {ID: 2, PeerURL: "http://b"}}, kv2.Members())

	require.NoError(t, kv2.Restore(nil))
	assert.Empty(t, kv2.Members())
	assert.Error(t, kv2.Restore([]byte("{bad")))
}

func TestKVAppliesADuplicatedCommandOnce(t *testing.T) {
	kv := NewKV()
	w := Command{ID: 7, Op: OpPut, Key: "a", Value: "1"}
	kv.Apply(w)
	kv.Apply(Command{ID: 8, Op: OpPut, Key: "a", Value: "2"})
	assert.True(t, kv.Apply(w).Duplicate, "the network delivered the proposal twice")
	v, _ := kv.Get("a")
	assert.Equal(t, "2", v, "the duplicate must not undo the later write")
	app := Command{ID: 9, Op: OpAppend, Key: "l", Value: "x"}
	kv.Apply(app)
	kv.Apply(app)
	assert.Equal(t, []string{"x"}, kv.List("l"))

	// The window is state: a replica restored from a snapshot skips the same duplicates.
	snap, err := kv.Snapshot()
	require.NoError(t, err)
	restored := NewKV()
	require.NoError(t, restored.Restore(snap))
	assert.True(t, restored.Apply(w).Duplicate)
	for i := range DedupWindow {
		restored.Apply(Command{ID: uint64(100 + i), Op: OpPut, Key: "b", Value: "x"})
	}
	assert.False(t, restored.Apply(w).Duplicate, "only the last DedupWindow ids are remembered")
}
