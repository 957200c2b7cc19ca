package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
)

// The WAL is one append-only file of CRC-framed records:
//
//	len uint32 (of type+payload) | crc32c uint32 (of type+payload) | type byte | payload
//
// Records are a raft entry (payload: raftpb.Entry) or a HardState. A later entry with an
// index already seen truncates the log from that index (raft overwrote a suffix). On open,
// a torn or CRC-bad final record (a crash in the middle of an append) is truncated away;
// a bad record followed by good data is corruption and an error.

const (
	recEntry     byte = 1
	recHardState byte = 2
	recSnapshot  byte = 3

	recHeader  = 8
	maxRecSize = 256 << 20
)

// crcTable is made at first use: building it took 0.16 ms of the start-up of every
// faultline command, which links this package for the in-process raftnode.
var crcTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// ErrCorrupt is returned when a WAL or snapshot file is damaged beyond a torn tail.
var ErrCorrupt = errors.New("storage corrupt")

// appendRecord appends one framed record to buf.
func appendRecord(buf []byte, typ byte, payload []byte) []byte {
	var h [recHeader + 1]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)+1))
	crc := crc32.Update(crc32.Checksum([]byte{typ}, crcTable()), crcTable(), payload)
	binary.LittleEndian.PutUint32(h[4:8], crc)
	h[8] = typ
	buf = append(buf, h[:]...)
	return append(buf, payload...)
}

// record is one decoded record.
type record struct {
	typ     byte
	payload []byte
}

// decodeRecords parses data into records. It returns the records before the first bad
// one and the offset where the good prefix ends; torn reports that the bad part is a torn
// tail (safe to truncate), and err is set for a bad record followed by more data.
func decodeRecords(data []byte) (recs []record, good int, err error) {
	off := 0
	for off < len(data) {
		rec, n, ok := decodeOne(data[off:])
		if !ok {
			if isTornTail(data[off:]) {
				return recs, off, nil
			}
			return recs, off, fmt.Errorf("%w: bad record at offset %d of %d", ErrCorrupt, off, len(data))
		}
		recs = append(recs, rec)
		off += n
	}
	return recs, off, nil
}

// decodeOne decodes the record at the start of b.
func decodeOne(b []byte) (record, int, bool) {
	if len(b) < recHeader+1 {
		return record{}, 0, false
	}
	n := int(binary.LittleEndian.Uint32(b[0:4]))
	if n < 1 || n > maxRecSize || recHeader+n > len(b) {
		return record{}, 0, false
	}
	body := b[recHeader : recHeader+n]
	if crc32.Checksum(body, crcTable()) != binary.LittleEndian.Uint32(b[4:8]) {
		return record{}, 0, false
	}
	return record{typ: body[0], payload: body[1:]}, recHeader + n, true
}

// isTornTail reports whether a bad record starting at b[0] can be the remains of an
// interrupted final append (never fsynced, so never acknowledged): no valid record
// starts anywhere after it. A valid record after a bad one means the damage is in the
// middle of the log: corruption, not a torn tail.
func isTornTail(b []byte) bool {
	for off := 1; off+recHeader+1 <= len(b); off++ {
		if t := b[off+recHeader]; t != recEntry && t != recHardState {
			continue // cheap filter before the CRC
		}
		if _, _, ok := decodeOne(b[off:]); ok {
			return false
		}
	}
	return true
}

// walState is what replaying a WAL yields.
type walState struct {
	hs      raftpb.HardState
	ents    []raftpb.Entry
	records int
}

// replay applies records in order: entries at or below snapIndex are skipped (covered by
// the snapshot), a repeated index truncates the suffix, the last HardState wins.
func replay(recs []record, snapIndex uint64) (walState, error) {
	st := walState{records: len(recs)}
	for i, r := range recs {
		switch r.typ {
		case recHardState:
			if err := st.hs.Unmarshal(r.payload); err != nil {
				return st, fmt.Errorf("%w: record %d: hardstate: %v", ErrCorrupt, i, err)
			}
		case recEntry:
			var e raftpb.Entry
			if err := e.Unmarshal(r.payload); err != nil {
				return st, fmt.Errorf("%w: record %d: entry: %v", ErrCorrupt, i, err)
			}
			if e.Index <= snapIndex {
				continue
			}
			if len(st.ents) > 0 {
				first := st.ents[0].Index
				if e.Index < first {
					st.ents = st.ents[:0]
				} else if e.Index <= st.ents[len(st.ents)-1].Index {
					st.ents = st.ents[:e.Index-first]
				}
			}
			want := snapIndex + 1
			if len(st.ents) > 0 {
				want = st.ents[len(st.ents)-1].Index + 1
			}
			if e.Index != want {
				return st, fmt.Errorf("%w: record %d: entry index %d, want %d", ErrCorrupt, i, e.Index, want)
			}
			st.ents = append(st.ents, e)
		default:
			return st, fmt.Errorf("%w: record %d: unknown type %d", ErrCorrupt, i, r.typ)
		}
	}
	return st, nil
}

// encodeState frames a HardState and entries as WAL records appended to buf.
func encodeState(buf []byte, hs raftpb.HardState, ents []raftpb.Entry) ([]byte, error) {
	for i := range ents {
		b, err := ents[i].Marshal()
		if err != nil {
			return buf, fmt.Errorf("encode entry %d: %w", ents[i].Index, err)
		}
		buf = appendRecord(buf, recEntry, b)
	}
	if !isEmptyHardState(hs) {
		b, err := hs.Marshal()
		if err != nil {
			return buf, fmt.Errorf("encode hardstate: %w", err)
		}
		buf = appendRecord(buf, recHardState, b)
	}
	return buf, nil
}

func isEmptyHardState(hs raftpb.HardState) bool {
	return hs.Term == 0 && hs.Vote == 0 && hs.Commit == 0
}

// writeFileSync writes data to path atomically and durably: temp file, fsync, rename,
// fsync of the directory.
func writeFileSync(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}
