package checker

import (
	"syscall"
	"unsafe"
)

// prefaulter maps the operations' array writable ahead of the pairing, in the
// background (MADV_POPULATE_WRITE, Linux 5.14): the array of a million operations is
// 300 MB written once, front to back, and a page fault for every 4 KiB of it cost the
// pairing — the one part of reading a history that runs on a single core — more than
// its writes. It keeps prefaultAhead bytes ahead of the operations written, never the
// whole capacity (only what is written is resident). Advice only: a kernel without it
// answers EINVAL and the pages fault in as before.
type prefaulter struct {
	mem  []byte // the array's memory
	done int    // bytes asked for
	ask  chan []byte
}

const prefaultAhead = 32 << 20

// newPrefaulter returns a prefaulter for ops' array, or nil when it is too small to
// matter.
func newPrefaulter(ops []op) *prefaulter {
	size := uintptr(cap(ops)) * unsafe.Sizeof(op{})
	if size < 4*prefaultAhead {
		return nil
	}
	f := &prefaulter{mem: unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ops[:1]))), size), ask: make(chan []byte, 2)}
	go func() {
		for b := range f.ask {
			_ = syscall.Madvise(b, 23) // MADV_POPULATE_WRITE
		}
	}()
	return f
}

// at says n operations are written; it asks for the next stretch when they near the
// end of what was asked for.
func (f *prefaulter) at(n int) {
	if f == nil {
		return
	}
	used := n * int(unsafe.Sizeof(op{}))
	if used+prefaultAhead/2 < f.done || f.done >= len(f.mem) {
		return
	}
	end := min(len(f.mem), max(f.done, used)+prefaultAhead)
	select {
	case f.ask <- f.mem[max(f.done, used):end]:
		f.done = end
	default: // the last is still being mapped: ask again later
	}
}

// stop ends the prefaulting.
func (f *prefaulter) stop() {
	if f != nil {
		close(f.ask)
		f.mem = nil
	}
}
