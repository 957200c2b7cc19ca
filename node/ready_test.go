package node

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// readyNode is a Node with just what handleReady needs: storage, the MemoryStorage holding
// entries 1..durable (as if written by earlier Readies), the state machine and a transport.
func readyNode(t *testing.T, id uint64, durable uint64) *Node {
	t.Helper()
	store, _, err := OpenStorage(t.TempDir(), Safe)
	require.NoError(t, err)
	t.Cleanup(func() { _ = store.Close() })
	n := &Node{cfg: Config{ID: id, SnapshotCount: DefaultSnapshotCount}, log: slog.New(slog.DiscardHandler),
		kv: NewKV(), store: store, ms: raft.NewMemoryStorage(), waiters: map[uint64]chan Result{},
		reads: map[uint64]chan uint64{}, appliedCh: make(chan struct{}), stopc: make(chan struct{})}
	n.tr = newTransport(n.log, nopReporter{})
	if durable > 0 {
		require.NoError(t, n.ms.Append(putEntries(t, 1, 1, durable)))
	}
	return n
}

// putEntries makes entries from..to, each a put of key k<index> with command id index.
func putEntries(t *testing.T, term, from, to uint64) []raftpb.Entry {
	var out []raftpb.Entry
	for i := from; i <= to; i++ {
		b, err := Command{ID: i, Op: OpPut, Key: keyOf(i), Value: "v"}.MarshalBinary()
		require.NoError(t, err)
		out = append(out, raftpb.Entry{Term: term, Index: i, Type: raftpb.EntryNormal, Data: b})
	}
	return out
}

func keyOf(i uint64) string { return "k" + string(rune('0'+i)) }

func applied(n *Node) []uint64 {
	var out []uint64
	for i := uint64(1); i <= 9; i++ {
		if _, ok := n.kv.Get(keyOf(i)); ok {
			out = append(out, i)
		}
	}
	return out
}

// A committed entry that was on disk before the Ready is applied (its client answered)
// before the Ready's own write; one written by the Ready only after that write. The write
// is made to fail, so what was applied before it shows.
func TestReadyAppliesOnlyDurableEntriesBeforeItsWrite(t *testing.T) {
	cases := []struct {
		name        string
		durable     uint64
		unstable    []raftpb.Entry
		committed   [2]uint64
		wantApplied []uint64
	}{
		// A single voter commits its entries as it appends them: none is on disk yet.
		{"single voter", 0, putEntries(t, 1, 1, 3), [2]uint64{1, 3}, nil},
		// A leader's Ready commits what earlier Readies wrote, and appends more.
		{"leader", 3, putEntries(t, 1, 4, 5), [2]uint64{2, 3}, []uint64{2, 3}},
		// A follower told to overwrite entries 3..5 and, at once, that 3..4 committed:
		// its own 3..5 on disk are not those, and must not be applied first.
		{"overwritten suffix", 5, putEntries(t, 2, 3, 4), [2]uint64{2, 4}, []uint64{2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := readyNode(t, 1, tc.durable)
			require.NoError(t, n.store.f.Close()) // the Ready's write fails
			all := append(putEntries(t, 1, 1, tc.durable), tc.unstable...)
			if len(tc.unstable) > 0 {
				all = append(putEntries(t, 1, 1, tc.unstable[0].Index-1), tc.unstable...)
			}
			rd := raft.Ready{SoftState: &raft.SoftState{Lead: 1, RaftState: raft.StateLeader},
				HardState: raftpb.HardState{Term: 2, Commit: tc.committed[1]},
				Entries:   tc.unstable, CommittedEntries: all[tc.committed[0]-1 : tc.committed[1]]}
			require.Error(t, n.handleReady(rd))
			assert.Equal(t, tc.wantApplied, applied(n))
		})
	}
}

// With the write succeeding, every committed entry is applied once, in order, and each
// proposer (waiting here) is answered.
func TestReadyAppliesEveryCommittedEntryOnce(t *testing.T) {
	for _, id := range []uint64{1, 2} { // leader, follower
		n := readyNode(t, id, 3)
		var chs []chan Result
		for i := uint64(2); i <= 5; i++ {
			chs = append(chs, n.register(i))
		}
		ents := putEntries(t, 1, 1, 5)
		rd := raft.Ready{SoftState: &raft.SoftState{Lead: 1}, HardState: raftpb.HardState{Term: 1, Commit: 5},
			Entries: ents[3:], CommittedEntries: ents[1:5]}
		require.NoError(t, n.handleReady(rd))
		assert.Equal(t, []uint64{2, 3, 4, 5}, applied(n))
		assert.Equal(t, uint64(5), n.appliedIndex())
		for i, ch := range chs {
			select {
			case <-ch:
			default:
				t.Errorf("node %d: proposer of entry %d not answered", id, i+2)
			}
		}
		// Entry 1 (before the committed ones) is not re-applied, nor anything twice.
		rd = raft.Ready{CommittedEntries: ents[1:5]}
		require.NoError(t, n.handleReady(rd))
		assert.Equal(t, uint64(5), n.appliedIndex())
		assert.Equal(t, []uint64{2, 3, 4, 5}, applied(n))
	}
}

// A follower sends the proposals and read indexes it forwards to the leader before its
// write; everything else (append and vote responses) waits for the write.
func TestFollowerForwardsBeforeItsWrite(t *testing.T) {
	n := readyNode(t, 2, 0)
	p := &peer{id: 1, q: make(chan raftpb.Message, 16)}
	n.tr.peers[1] = p
	require.NoError(t, n.store.f.Close()) // the Ready's write fails
	rd := raft.Ready{SoftState: &raft.SoftState{Lead: 1}, Entries: putEntries(t, 1, 1, 1),
		Messages: []raftpb.Message{
			{To: 1, Type: raftpb.MsgAppResp, Index: 1},
			{To: 1, Type: raftpb.MsgProp, Entries: []raftpb.Entry{{Data: []byte("x")}}},
			{To: 1, Type: raftpb.MsgReadIndex},
		}}
	require.Error(t, n.handleReady(rd))
	var got []raftpb.MessageType
	for len(p.q) > 0 {
		got = append(got, (<-p.q).Type)
	}
	assert.Equal(t, []raftpb.MessageType{raftpb.MsgProp, raftpb.MsgReadIndex}, got)
}
