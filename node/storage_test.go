package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.etcd.io/raft/v3/raftpb"
)

func ents(term uint64, from, to uint64) []raftpb.Entry {
	var out []raftpb.Entry
	for i := from; i <= to; i++ {
		out = append(out, raftpb.Entry{Term: term, Index: i, Data: []byte{byte(i)}})
	}
	return out
}

func open(t *testing.T, dir string) (*Storage, Loaded) {
	t.Helper()
	s, ld, err := OpenStorage(dir, Safe)
	require.NoError(t, err)
	return s, ld
}

func TestStorageReopen(t *testing.T) {
	dir := t.TempDir()
	s, ld := open(t, dir)
	assert.False(t, ld.Exists)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: 2}, ents(1, 1, 5)))
	// Raft overwrites a suffix: 4.. with term 2.
	require.NoError(t, s.Save(raftpb.HardState{Term: 2, Vote: 2, Commit: 3}, ents(2, 4, 6)))
	require.NoError(t, s.Close())

	s, ld = open(t, dir)
	defer s.Close()
	assert.True(t, ld.Exists)
	assert.Equal(t, raftpb.HardState{Term: 2, Vote: 2, Commit: 3}, ld.HardState)
	require.Len(t, ld.Entries, 6)
	assert.Equal(t, uint64(1), ld.Entries[2].Term)
	assert.Equal(t, uint64(2), ld.Entries[3].Term)
	assert.Equal(t, uint64(6), ld.Entries[5].Index)
}

func TestStorageTornFinalRecord(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"cut mid-record": func(b []byte) []byte { return b[:len(b)-3] },
		"cut mid-header": func(b []byte) []byte { return b[:lastGood(b)+4] },
		"bad crc at end": func(b []byte) []byte { b[len(b)-1] ^= 0xff; return b },
		"zeroed tail":    func(b []byte) []byte { return append(b, make([]byte, 100)...) },
		// What a crash mid-write leaves in the allocated file: the final record's end
		// never reached the disk, the allocation's zeros are still there.
		"cut mid-record, zeros after": func(b []byte) []byte {
			return append(append(b[:len(b)-3], 0, 0, 0), make([]byte, walChunk)...)
		},
		"garbage tail": func(b []byte) []byte {
			last := lastGood(b)
			for i := last + recHeader; i < len(b); i++ {
				b[i] = 0xa5
			}
			return append(b, make([]byte, 50)...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := open(t, dir)
			require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 3}, ents(1, 1, 3)))
			require.NoError(t, s.Save(raftpb.HardState{}, ents(1, 4, 4)))
			require.NoError(t, s.Close())
			path := filepath.Join(dir, "wal")
			b, err := os.ReadFile(path)
			require.NoError(t, err)
			b = b[:lastGood(b)+recordLen(b[lastGood(b):])] // the records, not the allocation's zeros
			require.NoError(t, os.WriteFile(path, damage(b), 0o644))

			s, ld := open(t, dir)
			want := 3
			if name == "zeroed tail" {
				want = 4
			}
			assert.Len(t, ld.Entries, want, "the torn record is dropped, the rest kept")
			assert.Equal(t, uint64(3), ld.HardState.Commit)
			// The tail was truncated: appending and reopening works.
			require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 4}, ents(1, uint64(want+1), uint64(want+1))))
			require.NoError(t, s.Close())
			s, ld = open(t, dir)
			defer s.Close()
			assert.Len(t, ld.Entries, want+1)
		})
	}
}

// recordLen is the length of the valid record at the start of b.
func recordLen(b []byte) int {
	_, n, _ := decodeOne(b)
	return n
}

// lastGood returns the offset where the last record of b starts.
func lastGood(b []byte) int {
	off, last := 0, 0
	for off < len(b) {
		_, n, ok := decodeOne(b[off:])
		if !ok {
			break
		}
		last, off = off, off+n
	}
	return last
}

func TestStorageCorruptMiddleIsAnError(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 1}, ents(1, 1, 5)))
	require.NoError(t, s.Close())
	path := filepath.Join(dir, "wal")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	b[recHeader+2] ^= 0xff // inside the first record's payload
	require.NoError(t, os.WriteFile(path, b, 0o644))
	_, _, err = OpenStorage(dir, Safe)
	assert.ErrorIs(t, err, ErrCorrupt)
}

func TestStorageSnapshotAndRewrite(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 10}, ents(1, 1, 12)))
	snap := raftpb.Snapshot{Data: []byte(`{"regs":{"a":"1"}}`), Metadata: raftpb.SnapshotMetadata{
		Index: 10, Term: 1, ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	require.NoError(t, s.SaveSnapshot(snap))
	// Rewrite keeping a tail that starts before the snapshot, as compaction does.
	require.NoError(t, s.Rewrite(raftpb.HardState{Term: 1, Commit: 10}, ents(1, 8, 12)))
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 13}, ents(1, 13, 13)))
	require.NoError(t, s.Close())

	s, ld := open(t, dir)
	defer s.Close()
	assert.Equal(t, snap.Metadata, ld.Snapshot.Metadata)
	assert.Equal(t, snap.Data, ld.Snapshot.Data)
	require.Len(t, ld.Entries, 3, "entries covered by the snapshot are skipped")
	assert.Equal(t, uint64(11), ld.Entries[0].Index)
	assert.Equal(t, uint64(13), ld.HardState.Commit)
	_, err := os.Stat(filepath.Join(dir, "snap.tmp"))
	assert.True(t, os.IsNotExist(err))
}

func TestStorageBufferedLosesUnflushed(t *testing.T) {
	dir := t.TempDir()
	s, _, err := OpenStorage(dir, AckBeforeFsync)
	require.NoError(t, err)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 1}, ents(1, 1, 2)))
	// A crash now (before the background flush) loses the buffer: the file is empty.
	b, err := os.ReadFile(filepath.Join(dir, "wal"))
	require.NoError(t, err)
	assert.Empty(t, b)
	// The background flush writes and fsyncs it.
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "wal"))
		return err == nil && len(b) > 0
	}, 10*flushEvery, flushEvery/10)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 2}, ents(1, 3, 3)))
	require.NoError(t, s.Close()) // a clean stop flushes the rest
	s, ld := open(t, dir)
	defer s.Close()
	assert.Len(t, ld.Entries, 3)
}

// A HardState that only moves the commit index is not fsynced on its own (raft.MustSync:
// the commit index need not be durable; a restarted node learns it from the leader), so
// the leader's commit Ready does not wait for the disk before it applies. It is written
// with the next record that must be durable, and on Close.
func TestStorageCommitOnlyHardStateIsNotSynced(t *testing.T) {
	dir := t.TempDir()
	s, _ := open(t, dir)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: 0}, ents(1, 1, 3)))
	synced := s.syncs
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Vote: 1, Commit: 3}, nil))
	assert.Equal(t, synced, s.syncs, "a commit-only HardState was fsynced")
	// What a SIGKILL now would leave: the entries, the older commit index.
	s2, ld := open(t, dir)
	require.NoError(t, s2.Close())
	assert.Equal(t, raftpb.HardState{Term: 1, Vote: 1, Commit: 0}, ld.HardState)
	assert.Len(t, ld.Entries, 3)

	// The next durable record carries it, even when its own Ready has no HardState.
	require.NoError(t, s.Save(raftpb.HardState{}, ents(1, 4, 4)))
	assert.Equal(t, synced+1, s.syncs)
	s2, ld = open(t, dir)
	require.NoError(t, s2.Close())
	assert.Equal(t, raftpb.HardState{Term: 1, Vote: 1, Commit: 3}, ld.HardState)
	assert.Len(t, ld.Entries, 4)

	// A vote or a term is always synced; Close writes a deferred commit.
	require.NoError(t, s.Save(raftpb.HardState{Term: 2, Vote: 2, Commit: 3}, nil))
	assert.Equal(t, synced+2, s.syncs)
	require.NoError(t, s.Save(raftpb.HardState{Term: 2, Vote: 2, Commit: 4}, nil))
	assert.Equal(t, synced+2, s.syncs)
	require.NoError(t, s.Close())
	s, ld = open(t, dir)
	defer s.Close()
	assert.Equal(t, raftpb.HardState{Term: 2, Vote: 2, Commit: 4}, ld.HardState)
}

// The WAL file is allocated ahead of its records, so that a record's fdatasync has no
// size to commit: writes stay inside the allocation until it is used up; what a crash
// leaves (records, then zeros) opens with every record, the zeros kept for the next.
func TestStorageWALIsAllocatedAhead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wal")
	size := func() int64 {
		st, err := os.Stat(path)
		require.NoError(t, err)
		return st.Size()
	}
	s, _ := open(t, dir)
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 1}, ents(1, 1, 3)))
	assert.Equal(t, int64(walChunk), size(), "the first record allocates a chunk")
	written := s.off
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 2}, ents(1, 4, 6)))
	assert.Greater(t, s.off, written)
	assert.Equal(t, int64(walChunk), size(), "a record inside the allocation does not grow the file")

	// A record larger than what is left allocates up to the next chunk boundary past it.
	big := raftpb.Entry{Term: 1, Index: 7, Data: make([]byte, walChunk)}
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 3}, []raftpb.Entry{big}))
	assert.Equal(t, int64(2*walChunk), size())

	// A crash (no Close): records, then zeros.
	s2, ld := open(t, dir)
	require.Len(t, ld.Entries, 7)
	assert.Equal(t, raftpb.HardState{Term: 1, Commit: 3}, ld.HardState)
	assert.Equal(t, int64(2*walChunk), size(), "opening keeps the allocation")
	require.NoError(t, s2.Save(raftpb.HardState{Term: 1, Commit: 7}, ents(1, 8, 8)))
	assert.Equal(t, int64(2*walChunk), size())
	require.NoError(t, s2.Close())
	s.f.Close()

	// A rewrite's file comes allocated: the next record does not grow it.
	s, ld = open(t, dir)
	require.Len(t, ld.Entries, 8)
	require.NoError(t, s.Rewrite(raftpb.HardState{Term: 1, Commit: 8}, ents(1, 1, 8)))
	assert.Equal(t, int64(walChunk), size())
	require.NoError(t, s.Save(raftpb.HardState{Term: 1, Commit: 8}, ents(1, 9, 9)))
	assert.Equal(t, int64(walChunk), size())
	require.NoError(t, s.Close())
	s, ld = open(t, dir)
	defer s.Close()
	require.Len(t, ld.Entries, 9)
	assert.Equal(t, uint64(9), ld.Entries[8].Index)
}
