package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"
)

// Writer appends events to a history.jsonl file. Events are buffered and flushed with
// fsync at least every flush interval (and on Close), so a harness that crashes leaves
// a prefix of the history that is at most one interval old; a torn final line is what
// ReadJSONL tolerates.
//
// Writer is safe for concurrent use. Append only encodes the event into a buffer under
// a short lock; Sync swaps the buffer out and writes and fsyncs it without that lock, so
// appenders (the clients, through the Recorder) never wait for the disk. A buffer that
// reaches writeAhead before the interval is written out early (not fsynced): appenders
// faster than the interval expects do not grow it without bound.
type Writer struct {
	mu      sync.Mutex // guards buf, spare, err, f
	f       *os.File
	buf     []byte // encoded events not yet written
	spare   []byte // the buffer Sync last wrote, reused
	err     error
	syncMu  sync.Mutex    // serializes writes to f, so buffers reach it in order
	kick    chan struct{} // the buffer reached writeAhead: write it now
	kicked  bool          // a kick is pending (guarded by mu)
	stop    chan struct{}
	stopped chan struct{}
}

// writeAhead is the size at which a Writer's buffer is written before its interval.
const writeAhead = 1 << 20

// DefaultFlushInterval is how often a Writer flushes and fsyncs while a run goes on.
const DefaultFlushInterval = 200 * time.Millisecond

// CreateWriter creates (truncating) path and returns a Writer that flushes and fsyncs it
// every interval (DefaultFlushInterval when interval <= 0). The new file's directory
// entry is fsynced before it returns: a crash right after cannot lose the file itself.
func CreateWriter(path string, interval time.Duration) (*Writer, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create history: %w", err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		f.Close()
		return nil, fmt.Errorf("create history: %w", err)
	}
	if interval <= 0 {
		interval = DefaultFlushInterval
	}
	w := &Writer{f: f, buf: make([]byte, 0, 1<<16), kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.flushLoop(interval)
	return w, nil
}

// syncDir fsyncs a directory, making the entries created in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

func (w *Writer) flushLoop(interval time.Duration) {
	defer close(w.stopped)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
			_ = w.flush(false)
		case <-t.C:
			_ = w.Sync()
		}
	}
}

// Append buffers one event. It returns the first error the writer has met, if any.
func (w *Writer) Append(e Event) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	n := len(w.buf)
	b, err := e.AppendJSON(w.buf)
	if err != nil {
		w.buf = b[:n] // nothing of the event
		return fmt.Errorf("encode event %d: %w", e.Index, err)
	}
	w.buf = append(b, '\n')
	if len(w.buf) >= writeAhead && !w.kicked {
		w.kicked = true
		select {
		case w.kick <- struct{}{}:
		default: // one is pending already
		}
	}
	return nil
}

// Sync writes the buffered events to the file and fsyncs it. Appends go on meanwhile,
// into a fresh buffer.
func (w *Writer) Sync() error { return w.flush(true) }

// flush writes the buffered events to the file, and fsyncs it if sync.
func (w *Writer) flush(sync bool) error {
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	w.mu.Lock()
	if w.err != nil || w.f == nil {
		defer w.mu.Unlock()
		return w.err
	}
	data, f := w.buf, w.f
	w.buf, w.spare, w.kicked = w.spare[:0], nil, false
	w.mu.Unlock()
	var err error
	if _, werr := f.Write(data); werr != nil {
		err = fmt.Errorf("write history: %w", werr)
	} else if sync {
		if serr := f.Sync(); serr != nil {
			err = fmt.Errorf("fsync history: %w", serr)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.spare = data[:0]
	if err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// Close flushes, fsyncs and closes the file. It is safe to call more than once.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.f == nil {
		w.mu.Unlock()
		return w.err
	}
	w.mu.Unlock()
	close(w.stop)
	<-w.stopped
	err := w.Sync()
	w.mu.Lock()
	defer w.mu.Unlock()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close history: %w", cerr)
	}
	w.f = nil
	if w.err == nil {
		w.err = err
	}
	return err
}

// ReadInfo says what a reader had to forgive.
type ReadInfo struct {
	// Torn is true when the last line was incomplete (a crash mid-write) and was dropped.
	Torn bool
	// Lines is the number of events read.
	Lines int
}

// ErrBadHistory wraps every error about malformed input (as opposed to I/O errors).
var ErrBadHistory = errors.New("malformed history")

// ReadJSONL reads a history.jsonl stream. A final line that does not end in a newline
// and does not parse is taken as torn by a crash: it is dropped and info.Torn is set.
// Any other malformed line is an error wrapping ErrBadHistory that names its line number.
// Blank lines are skipped.
//
// From a reader that can seek (a file), it counts the lines first and decodes into a
// slice of that size; from a file of parallelMin bytes or more, on every core
// (readJSONLAt).
func ReadJSONL(r io.Reader) ([]Event, ReadInfo, error) {
	lines := 0
	if rs, ok := r.(io.ReadSeeker); ok {
		if at, err := rs.Seek(0, io.SeekCurrent); err == nil { // a pipe cannot: no pass
			if ra, ok := r.(io.ReaderAt); ok && runtime.GOMAXPROCS(0) > 1 {
				end, err := rs.Seek(0, io.SeekEnd)
				if err != nil {
					return nil, ReadInfo{}, fmt.Errorf("read history: %w", err)
				}
				if end-at >= parallelMin {
					return readJSONLAt(ra, at, end-at, blockFor(end-at))
				}
				if _, err := rs.Seek(at, io.SeekStart); err != nil {
					return nil, ReadInfo{}, fmt.Errorf("read history: %w", err)
				}
			}
			if lines, err = countLines(rs); err != nil {
				return nil, ReadInfo{}, fmt.Errorf("read history: %w", err)
			}
			if _, err := rs.Seek(at, io.SeekStart); err != nil {
				return nil, ReadInfo{}, fmt.Errorf("read history: %w", err)
			}
		}
	}
	return readJSONL(r, lines)
}

// readJSONL is ReadJSONL into a slice made for lines events: a history of a million
// operations grown by appending allocates its 300 MB of events four times over, and the
// garbage of the doublings nearly doubles the checker's peak memory.
func readJSONL(r io.Reader, lines int) ([]Event, ReadInfo, error) {
	var (
		events = make([]Event, 0, lines)
		info   ReadInfo
	)
	br := bufio.NewReaderSize(r, 1<<16)
	d := newDecoder()
	var long []byte // a line longer than the reader's buffer, put together
	for lineNo := 1; ; lineNo++ {
		// ReadSlice, not ReadBytes: no copy of every line (the decoders copy what they
		// keep); a line longer than the buffer is put together in long.
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return events, info, fmt.Errorf("read history line %d: %w", lineNo, err)
		}
		complete := len(line) > 0 && line[len(line)-1] == '\n'
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			// decode in place: an Event on the stack would escape, one allocation a line
			events = append(events, Event{})
			e := &events[len(events)-1]
			if !decodeFast(trimmed, e, d) {
				*e = Event{}
				if perr := json.Unmarshal(trimmed, e); perr != nil {
					events = events[:len(events)-1]
					if !complete {
						info.Torn = true
						return events, info, nil
					}
					return events, info, fmt.Errorf("%w: line %d: %v", ErrBadHistory, lineNo, perr)
				}
			}
			info.Lines++
		}
		if err != nil { // io.EOF
			return events, info, nil
		}
	}
}

// ReadFile reads a history.jsonl file (see ReadJSONL).
func ReadFile(path string) ([]Event, ReadInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, ReadInfo{}, fmt.Errorf("open history: %w", err)
	}
	defer f.Close()
	return ReadJSONL(f)
}

// countLines counts the newlines in r, plus one for a last line without one: a bound on
// the events a history file holds (a fast pass, from the page cache on the second read).
func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 1<<16)
	n, last := 0, byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
