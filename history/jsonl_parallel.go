package history

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
)

// parallelMin is the size from which ReadJSONL decodes a file on every core (10,000
// operations are 2 MB): below it, starting the workers costs more than they save.
const parallelMin = 1 << 20

// parallelBlock is the most of a file one worker decodes at a time.
const parallelBlock = 4 << 20

// blockFor is the block size for a file of size bytes: small enough that every core
// has a few blocks (the reader waits for the first before it can start, and for the
// slowest at the end), at most parallelBlock, at least 256 KiB.
func blockFor(size int64) int64 {
	return min(parallelBlock, max(256<<10, size/int64(8*max(1, runtime.GOMAXPROCS(0)))))
}

// readJSONLAt is ReadJSONL of the size bytes at base in ra, decoded by a worker per
// core, blockSize bytes at a time (eachJSONLAt), into one slice made for as many
// events as the data has lines (a first, fast pass counts them). What it returns is
// what the sequential reader returns: the same events, the same torn last line, the
// same error for the first malformed line (with the events before it).
//
// A million-transaction history (439 MB) took 3-4 s to read on one core; each worker
// keeps its own decoder, so lists are shared within a block's reads only.
func readJSONLAt(ra io.ReaderAt, base, size, blockSize int64) ([]Event, ReadInfo, error) {
	lines, err := countLines(io.NewSectionReader(ra, base, size))
	if err != nil {
		return nil, ReadInfo{}, fmt.Errorf("read history: %w", err)
	}
	events := make([]Event, 0, lines)
	info, err := eachJSONLAt(io.NewSectionReader(ra, base, size), size, blockSize, func(b []Event) error {
		events = append(events, b...)
		return nil
	})
	return events, info, err
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
