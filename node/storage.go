package node

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Storage is the node's durable state in its data dir: the WAL ("wal") and the latest
// snapshot ("snap"). Save makes a Ready's HardState and entries durable (one write and
// one fsync), but for a HardState that only moves the commit index, which it defers (see
// Save); SaveSnapshot replaces the snapshot atomically; Rewrite replaces the WAL after a
// compaction. Only the Ready loop calls these, so they need no ordering beyond the mutex
// that guards against the background flusher.
//
// In buffered mode (--unsafe ack-before-fsync) Save only appends to a user-space buffer
// that a background goroutine writes and fsyncs every flushEvery: a SIGKILL loses it.
// In no-sync mode (--unsafe no-fsync) Save writes the WAL and never fsyncs it: only a
// power loss loses it.
type Storage struct {
	dir      string
	buffered bool
	noSync   bool

	mu      sync.Mutex
	f       *os.File
	pending []byte
	// off is where the next record goes (the end of the log); size is the file's
	// length, zeros past off: the WAL is allocated ahead of its end (see extend).
	off, size int64
	err       error // a background flush error, reported by the next Save
	// hs is the newest HardState given to Save or Rewrite; deferred says it is not yet
	// in the WAL (it moved only the commit index).
	hs       raftpb.HardState
	deferred bool
	syncs    int // fsyncs of the WAL, for tests

	stop chan struct{}
	done chan struct{}
}

// Loaded is the state found on open.
type Loaded struct {
	Snapshot  raftpb.Snapshot
	HardState raftpb.HardState
	Entries   []raftpb.Entry
	// Exists is false for a fresh data dir (nothing durable yet): the node bootstraps.
	Exists bool
}

const flushEvery = 1500 * time.Millisecond

// OpenStorage opens (creating if needed) the storage in dir and loads its state,
// truncating a torn final WAL record. mode is Safe, or one of the unsafe modes that
// change how the WAL is made durable (AckBeforeFsync, NoFsync).
func OpenStorage(dir string, mode Unsafe) (*Storage, Loaded, error) {
	buffered := mode == AckBeforeFsync
	var ld Loaded
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, ld, fmt.Errorf("create data dir: %w", err)
	}
	snap, err := readSnapshot(filepath.Join(dir, "snap"))
	if err != nil {
		return nil, ld, err
	}
	walPath := filepath.Join(dir, "wal")
	data, err := os.ReadFile(walPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, ld, fmt.Errorf("read wal: %w", err)
	}
	recs, good, err := decodeRecords(data)
	if err != nil {
		return nil, ld, fmt.Errorf("open wal %s: %w", walPath, err)
	}
	st, err := replay(recs, snap.Metadata.Index)
	if err != nil {
		return nil, ld, fmt.Errorf("replay wal %s: %w", walPath, err)
	}
	f, err := os.OpenFile(walPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, ld, fmt.Errorf("open wal: %w", err)
	}
	// Zeros after the last record are the allocation (see extend), kept as they are;
	// anything else there is a torn record, cut off.
	size := len(data)
	if good < len(data) && !allZero(data[good:]) {
		if err := truncateSync(f, int64(good)); err != nil {
			f.Close()
			return nil, ld, err
		}
		size = good
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, ld, err
	}
	s := &Storage{dir: dir, buffered: buffered, noSync: mode == NoFsync, f: f, hs: st.hs, off: int64(good), size: int64(size),
		stop: make(chan struct{}), done: make(chan struct{})}
	if buffered {
		go s.flusher()
	} else {
		close(s.done)
	}
	ld = Loaded{Snapshot: snap, HardState: st.hs, Entries: st.ents,
		Exists: snap.Metadata.Index > 0 || st.records > 0}
	return s, ld, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func truncateSync(f *os.File, size int64) error {
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate torn wal tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync wal: %w", err)
	}
	return nil
}

// Save appends a HardState and entries and makes them durable before returning (in
// buffered mode: only buffers them).
//
// A HardState that changes nothing but the commit index, with no entries, is not written
// at all: it is kept, and written with the next record that must be durable (or by
// Close). The commit index need not survive a crash — a restarted node starts from the
// one it has and learns the rest from the leader, and entries, term and vote are always
// synced (raft.MustSync, as etcd's WAL does) — while syncing it would put an fsync on
// every write's path: the leader's Ready that commits an entry comes before its apply.
// Not writing it, rather than writing it unsynced, keeps the WAL's rule that everything
// in it was fsynced, so damage anywhere but a torn final record is corruption.
func (s *Storage) Save(hs raftpb.HardState, ents []raftpb.Entry) error {
	if isEmptyHardState(hs) && len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if !s.buffered && len(ents) == 0 && !raft.MustSync(hs, s.hs, 0) {
		s.hs, s.deferred = hs, true
		return nil
	}
	if isEmptyHardState(hs) && s.deferred {
		hs = s.hs // this Ready changed nothing: the newest HardState is the deferred one
	}
	if !isEmptyHardState(hs) {
		s.hs = hs
	}
	s.deferred = false
	buf, err := encodeState(s.pending, hs, ents)
	if err != nil {
		return err
	}
	s.pending = buf
	if s.buffered {
		return nil
	}
	return s.flushLocked()
}

func (s *Storage) flushLocked() error {
	if len(s.pending) == 0 {
		return nil
	}
	if err := s.extend(s.off + int64(len(s.pending))); err != nil {
		return err
	}
	if _, err := s.f.WriteAt(s.pending, s.off); err != nil {
		return fmt.Errorf("write wal: %w", err)
	}
	s.off += int64(len(s.pending))
	s.pending = s.pending[:0]
	if s.noSync {
		return nil
	}
	s.syncs++
	if err := fdatasync(s.f); err != nil {
		return fmt.Errorf("fsync wal: %w", err)
	}
	return nil
}

// walChunk is how far ahead of the log's end the WAL file is allocated.
const walChunk = 1 << 20

// allocated is the file size that holds n bytes: n rounded up to whole walChunks.
func allocated(n int64) int64 { return (n + walChunk - 1) / walChunk * walChunk }

// extend makes the WAL file at least need bytes long, in walChunk steps of zeros made
// durable (fsync: the file's size is metadata). Records are then written over zeros
// already on disk, and fdatasync has only their data to flush: on ext4 an append's
// fdatasync also commits the journal (the size changed), which made it 30% slower here,
// three nodes syncing on one disk (290 vs 200 µs). etcd preallocates its WAL segments for
// the same reason. A crash leaves zeros after the last record: opening keeps them as the
// allocation, and the next record goes over them.
func (s *Storage) extend(need int64) error {
	if need <= s.size {
		return nil
	}
	size := allocated(need)
	if _, err := s.f.WriteAt(make([]byte, size-s.size), s.size); err != nil {
		return fmt.Errorf("allocate wal: %w", err)
	}
	if !s.noSync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("fsync wal: %w", err)
		}
	}
	s.size = size
	return nil
}

func (s *Storage) flusher() {
	defer close(s.done)
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.mu.Lock()
			if err := s.flushLocked(); err != nil && s.err == nil {
				s.err = err
			}
			s.mu.Unlock()
		}
	}
}

// SaveSnapshot durably replaces the snapshot file.
func (s *Storage) SaveSnapshot(snap raftpb.Snapshot) error {
	b, err := snap.Marshal()
	if err != nil {
		return fmt.Errorf("encode snapshot: %w", err)
	}
	return writeFileSync(filepath.Join(s.dir, "snap"), appendRecord(nil, recSnapshot, b))
}

// Rewrite durably replaces the WAL with exactly this HardState and these entries (the
// log after a snapshot), dropping whatever was buffered. Call it after SaveSnapshot.
func (s *Storage) Rewrite(hs raftpb.HardState, ents []raftpb.Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf, err := encodeState(nil, hs, ents)
	if err != nil {
		return err
	}
	s.hs, s.deferred = hs, false
	path := filepath.Join(s.dir, "wal")
	// The new file comes allocated (see extend), in the one fsync the rewrite makes.
	size := allocated(int64(len(buf)) + 1)
	if err := writeFileSync(path, append(buf, make([]byte, size-int64(len(buf)))...)); err != nil {
		return fmt.Errorf("rewrite wal: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("reopen wal: %w", err)
	}
	s.f.Close()
	s.f, s.pending = f, s.pending[:0]
	s.off, s.size = int64(len(buf)), size
	return nil
}

// Close flushes what is buffered and closes the WAL.
func (s *Storage) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	var err error
	if s.deferred {
		s.pending, err = encodeState(s.pending, s.hs, nil)
		s.deferred = false
	}
	if err == nil {
		err = s.flushLocked()
	}
	if cerr := s.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close wal: %w", cerr)
	}
	return err
}

// readSnapshot reads the snapshot file; a missing file is the empty snapshot. The file
// is replaced atomically, so any damage is corruption.
func readSnapshot(path string) (raftpb.Snapshot, error) {
	var snap raftpb.Snapshot
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return snap, nil
	}
	if err != nil {
		return snap, fmt.Errorf("read snapshot: %w", err)
	}
	rec, n, ok := decodeOne(data)
	if !ok || n != len(data) || rec.typ != recSnapshot {
		return snap, fmt.Errorf("%w: snapshot file %s", ErrCorrupt, path)
	}
	if err := snap.Unmarshal(rec.payload); err != nil {
		return snap, fmt.Errorf("%w: snapshot file %s: %v", ErrCorrupt, path, err)
	}
	return snap, nil
}

// fdatasync flushes f's data (and the metadata needed to read it back) to disk.
func fdatasync(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			if serr = syscall.Fdatasync(int(fd)); serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return serr
}
