package powerfs

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sys/unix"
)

// file is what a power loss must undo in one backing file: everything written to it
// since its last sync. The backing file holds the current bytes (writes go straight
// through); file keeps the size it had at the sync and the synced bytes that writes and
// truncations have since overwritten (pre-images), so that restore can put the file back
// exactly as the sync left it.
//
// A file is created at its first change after a sync, when its backing bytes are still
// the synced ones, and dropped at its next sync.
type file struct {
	mu     sync.Mutex
	fd     int   // the backing inode, read-write, owned
	synced int64 // the size at the last sync
	pre    []extent
	held   int64 // bytes in pre
	closed bool  // dropped by a sync: whoever holds it must look again
}

// extent is a pre-image: the synced bytes at off.
type extent struct {
	off  int64
	data []byte
}

func (e extent) end() int64 { return e.off + int64(len(e.data)) }

// newFile starts tracking the backing inode open as fd (which it now owns): its current
// state is the synced one.
func newFile(fd int) (*file, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("fstat: %w", err)
	}
	return &file{fd: fd, synced: st.Size}, nil
}

// save keeps the synced bytes of [off, off+n) not kept yet, before a change to them.
// Bytes at or past the synced size need nothing: restore truncates them away. The
// caller holds f.mu.
func (f *file) save(off, n int64) error {
	lo, hi := max(off, 0), min(off+n, f.synced)
	if lo >= hi {
		return nil
	}
	// The gaps of [lo, hi) between the extents kept, in order.
	i, _ := slices.BinarySearchFunc(f.pre, lo, func(e extent, x int64) int {
		switch {
		case e.end() <= x:
			return -1
		case e.off > x:
			return 1
		}
		return 0
	})
	var fresh []extent
	at := lo
	for ; at < hi; i++ {
		next := hi
		if i < len(f.pre) {
			next = min(f.pre[i].off, hi)
		}
		if at < next {
			buf := make([]byte, next-at)
			if err := preadFull(f.fd, buf, at); err != nil {
				return err
			}
			fresh = append(fresh, extent{off: at, data: buf})
			f.held += int64(len(buf))
		}
		if i >= len(f.pre) {
			break
		}
		at = max(at, f.pre[i].end())
	}
	if len(fresh) == 0 {
		return nil
	}
	f.pre = append(f.pre, fresh...)
	slices.SortFunc(f.pre, func(a, b extent) int { return cmp.Compare(a.off, b.off) })
	return nil
}

// restore puts the backing file back as the last sync left it: its synced size, and its
// synced bytes where they were overwritten. The caller holds f.mu.
func (f *file) restore() (dropped int64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return 0, fmt.Errorf("fstat: %w", err)
	}
	if st.Size > f.synced {
		dropped = st.Size - f.synced
	}
	if err := unix.Ftruncate(f.fd, f.synced); err != nil {
		return 0, fmt.Errorf("truncate to %d: %w", f.synced, err)
	}
	for _, e := range f.pre {
		if _, err := unix.Pwrite(f.fd, e.data, e.off); err != nil {
			return 0, fmt.Errorf("restore %d bytes at %d: %w", len(e.data), e.off, err)
		}
	}
	return dropped + f.held, nil
}

// close drops the file's state; the caller holds f.mu.
func (f *file) close() {
	if !f.closed {
		unix.Close(f.fd)
		f.closed = true
		f.pre = nil
	}
}

func preadFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		n, err := unix.Pread(fd, buf, off)
		if err != nil {
			return fmt.Errorf("read %d bytes at %d: %w", len(buf), off, err)
		}
		if n == 0 { // past the end (another fd shrank it): those bytes read as zeros
			clear(buf)
			return nil
		}
		buf, off = buf[n:], off+int64(n)
	}
	return nil
}
