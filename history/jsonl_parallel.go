package history

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
)

// parallelMin is the size from which ReadJSONL decodes a file on every core: below it,
// starting the workers costs more than they save.
const parallelMin = 8 << 20

// parallelBlock is the share of a file one worker decodes at a time.
const parallelBlock = 4 << 20

// readJSONLAt is ReadJSONL of the size bytes at base in ra, decoded by a worker per
// core, blockSize bytes at a time: the lines that start in a block are its worker's. A first pass
// counts each block's newlines, so that every line knows its index and is decoded in
// place into one slice made for all of them; blank lines leave holes, closed at the
// end. What it returns is what the sequential reader returns: the same events, the
// same torn last line, the same error for the first malformed line (with the events
// before it).
//
// A million-transaction history (439 MB) took 3-4 s to read on one core; each worker
// keeps its own decoder, so lists are shared within a block's reads only.
func readJSONLAt(ra io.ReaderAt, base, size, blockSize int64) ([]Event, ReadInfo, error) {
	blocks := int((size + blockSize - 1) / blockSize)
	workers := min(runtime.GOMAXPROCS(0), blocks)
	each := func(f func(block int, buf []byte) error) error {
		var next atomic.Int64
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 0, blockSize+1<<12)
				for {
					b := int(next.Add(1) - 1)
					if b >= blocks {
						return
					}
					if err := f(b, buf); err != nil {
						errs[w] = err
						return
					}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	// Pass 1: newlines per block, and whether the file ends in one.
	newlines := make([]int, blocks)
	var lastByte byte
	err := each(func(b int, buf []byte) error {
		off := int64(b) * blockSize
		buf = buf[:min(blockSize, size-off)]
		if _, err := ra.ReadAt(buf, base+off); err != nil {
			return fmt.Errorf("read history: %w", err)
		}
		newlines[b] = bytes.Count(buf, []byte{'\n'})
		if b == blocks-1 {
			lastByte = buf[len(buf)-1]
		}
		return nil
	})
	if err != nil {
		return nil, ReadInfo{}, err
	}
	before := make([]int, blocks) // newlines before each block: the index of its first whole line
	lines := 0
	for b, n := range newlines {
		before[b] = lines
		lines += n
	}
	if lastByte != '\n' {
		lines++
	}
	// Pass 2: decode the lines that start in each block.
	events := make([]Event, lines)
	blank := make([]bool, lines)
	type lineErr struct {
		line int // index
		err  error
	}
	bad := make([]lineErr, blocks) // each block's first malformed line
	torn := false
	err = each(func(b int, buf []byte) error {
		bad[b].line = -1
		off := int64(b) * blockSize
		from := off
		if b > 0 {
			from-- // the byte before the block says whether a line starts at it
		}
		buf, err := readLines(ra, base, from, off+blockSize, size, buf)
		if err != nil {
			return err
		}
		idx := before[b]
		p := 0
		if b > 0 {
			if buf[0] != '\n' { // the block starts inside a line: its worker is the one before
				i := bytes.IndexByte(buf, '\n')
				if i < 0 {
					return nil
				}
				p = i + 1
				idx++
			} else {
				p = 1
			}
		}
		d := newDecoder()
		for p < len(buf) && from+int64(p) < off+blockSize {
			end := bytes.IndexByte(buf[p:], '\n')
			complete := end >= 0
			if !complete {
				end = len(buf) - p
			}
			line := bytes.TrimSpace(buf[p : p+end])
			switch {
			case len(line) == 0:
				blank[idx] = true
			case !decodeFast(line, &events[idx], d):
				events[idx] = Event{}
				if perr := json.Unmarshal(line, &events[idx]); perr != nil {
					blank[idx] = true
					if !complete { // the file's last line, cut short by a crash
						torn = true
					} else if bad[b].line < 0 {
						bad[b] = lineErr{idx, fmt.Errorf("%w: line %d: %v", ErrBadHistory, idx+1, perr)}
					}
				}
			}
			idx++
			p += end + 1
		}
		return nil
	})
	if err != nil {
		return nil, ReadInfo{}, err
	}
	keep := lines
	var first error
	for _, e := range bad {
		if e.line >= 0 {
			keep, first = e.line, e.err
			break
		}
	}
	// close the holes of blank (and torn, or malformed) lines among those kept
	n := 0
	for i := range keep {
		if !blank[i] {
			if n != i {
				events[n] = events[i]
			}
			n++
		}
	}
	clear(events[n:])
	info := ReadInfo{Lines: n, Torn: torn && first == nil}
	return events[:n:n], info, first
}

// readLines reads [from, to) of the size bytes at base in ra into buf, and on past to
// until the line that holds byte to-1 ends (or the data does).
func readLines(ra io.ReaderAt, base, from, to, size int64, buf []byte) ([]byte, error) {
	to = min(to, size)
	buf = buf[:to-from]
	if _, err := ra.ReadAt(buf, base+from); err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	for at := to; at < size && (len(buf) == 0 || buf[len(buf)-1] != '\n'); {
		var more [1 << 12]byte
		k := int(min(int64(len(more)), size-at))
		if _, err := ra.ReadAt(more[:k], base+at); err != nil {
			return nil, fmt.Errorf("read history: %w", err)
		}
		if i := bytes.IndexByte(more[:k], '\n'); i >= 0 {
			k = i + 1
			buf = append(buf, more[:k]...)
			break
		}
		buf = append(buf, more[:k]...)
		at += int64(k)
	}
	return buf, nil
}
