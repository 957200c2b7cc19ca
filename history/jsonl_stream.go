package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// ReadFileEach reads a history.jsonl file as ReadFile does, but hands its events to fn
// a batch at a time, in order, instead of holding them all: a reader that keeps only
// what it needs of each event (checker.Pairer) reads a history of millions of events
// in the memory of what it keeps. fn must not keep the slice it is given (its Events,
// and the strings and values in them, it may keep). An error from fn stops the reading
// and is returned. A malformed line is reported as ReadFile reports it, after the
// events before it were handed over; a torn last line is dropped and info.Torn set.
//
// A file of parallelMin bytes or more is decoded on every core, a few blocks ahead of fn.
func ReadFileEach(path string, fn func([]Event) error) (ReadInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return ReadInfo{}, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ReadInfo{}, fmt.Errorf("read history: %w", err)
	}
	if !st.Mode().IsRegular() || st.Size() < parallelMin || runtime.GOMAXPROCS(0) < 2 {
		events, info, err := ReadJSONL(f)
		if len(events) > 0 {
			if ferr := fn(events); ferr != nil {
				return info, ferr
			}
		}
		return info, err
	}
	return eachJSONLAt(f, st.Size(), blockFor(st.Size()), fn)
}

// block is one block's decoding: the events of the lines that start in it, how many
// lines start in it (blank ones too: line numbers count them), and its first
// malformed line (badLine, its index among the block's lines, -1 for none; events
// then holds the events before it) or a torn last line.
type block struct {
	events  []Event
	lines   int
	badLine int
	badErr  error
	torn    bool
	err     error // reading
}

// eachJSONLAt is ReadFileEach of the size bytes of ra: a worker per core decodes
// blockSize bytes at a time (the lines that start in a block are its worker's), at most
// a few blocks ahead of fn, which gets them in order.
func eachJSONLAt(ra io.ReaderAt, size, blockSize int64, fn func([]Event) error) (ReadInfo, error) {
	blocks := int((size + blockSize - 1) / blockSize)
	workers := min(runtime.GOMAXPROCS(0), blocks)
	out := make([]chan block, blocks)
	for i := range out {
		out[i] = make(chan block, 1)
	}
	// A worker takes a token before it takes a block and fn's side gives it back when
	// it has the block: blocks are taken in order, so the next block fn waits for is
	// always held by a worker, and at most len(tokens) are decoded ahead.
	tokens := make(chan struct{}, workers+2)
	free := make(chan []Event, workers+2) // spent batches, for the workers to reuse
	stop := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 0, blockSize+1<<12)
			for {
				select {
				case tokens <- struct{}{}:
				case <-stop:
					return
				}
				b := int(next.Add(1) - 1)
				if b >= blocks {
					return
				}
				var evs []Event
				select {
				case evs = <-free:
				default:
					evs = make([]Event, 0, blockSize/64) // a line is rarely shorter
				}
				out[b] <- decodeBlock(ra, size, blockSize, b, buf, evs[:0])
			}
		})
	}
	defer func() {
		close(stop)
		wg.Wait()
	}()
	var info ReadInfo
	line := 0 // lines before this block
	for b := range blocks {
		r := <-out[b]
		<-tokens
		if r.err != nil {
			return info, r.err
		}
		info.Lines += len(r.events)
		if len(r.events) > 0 {
			if err := fn(r.events); err != nil {
				return info, err
			}
		}
		if r.badLine >= 0 {
			return info, fmt.Errorf("%w: line %d: %v", ErrBadHistory, line+r.badLine+1, r.badErr)
		}
		info.Torn = info.Torn || r.torn
		line += r.lines
		clear(r.events) // what fn kept, it kept; the rest is garbage
		select {
		case free <- r.events[:0]:
		default:
		}
	}
	return info, nil
}

// decodeBlock decodes the lines that start in block b of ra (size bytes) into evs.
func decodeBlock(ra io.ReaderAt, size, blockSize int64, b int, buf []byte, evs []Event) block {
	r := block{badLine: -1}
	off := int64(b) * blockSize
	from := off
	if b > 0 {
		from-- // the byte before the block says whether a line starts at it
	}
	buf, err := readLines(ra, 0, from, off+blockSize, size, buf)
	if err != nil {
		r.err = err
		return r
	}
	p := 0
	if b > 0 {
		if buf[0] != '\n' { // the block starts inside a line: its worker is the one before
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				r.events = evs
				return r
			}
			p = i + 1
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
		if len(line) > 0 {
			evs = append(evs, Event{})
			e := &evs[len(evs)-1]
			if !decodeFast(line, e, d) {
				*e = Event{}
				if perr := json.Unmarshal(line, e); perr != nil {
					evs = evs[:len(evs)-1]
					if !complete { // the file's last line, cut short by a crash
						r.torn = true
					} else {
						r.badLine, r.badErr = r.lines, perr
						r.events = evs
						return r
					}
				}
			}
		}
		r.lines++
		p += end + 1
	}
	r.events = evs
	return r
}
