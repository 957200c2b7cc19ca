package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
)

// Corrupt implements nemesis.Corrupter: it damages one of node's files of kind, the
// target naming them (sut.Files) under the node's host data directory. node must be
// down. The damage falls within the file's written part (up to its last non-zero
// byte): a preallocated WAL segment's zero tail is no data to damage.
func (c *cluster) Corrupt(ctx context.Context, node string, kind nemesis.FileKind, d nemesis.Damage, r *rand.Rand) (string, bool, error) {
	if c.rt.Running(node) {
		return "", false, fmt.Errorf("it is running")
	}
	hd, ok := c.rt.(runtime.HostDirs)
	if !ok {
		return "", false, fmt.Errorf("the %s runtime keeps no node data on this host", c.rt.Name())
	}
	files, ok := c.target.(sut.Files)
	if !ok {
		return "", false, fmt.Errorf("target %s names no data files", c.target.Name())
	}
	dir := hd.HostDataDir(node)
	var paths []string
	for _, g := range files.FileGlobs(kind) {
		m, err := filepath.Glob(filepath.Join(dir, g))
		if err != nil {
			return "", false, fmt.Errorf("glob %q: %w", g, err)
		}
		for _, p := range m {
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Size() > 0 {
				paths = append(paths, p)
			}
		}
	}
	if len(paths) == 0 {
		return "", false, nil
	}
	slices.Sort(paths)
	p := paths[r.IntN(len(paths))]
	what, err := damage(p, d, r)
	if err != nil {
		return "", false, err
	}
	rel, _ := filepath.Rel(dir, p)
	return fmt.Sprintf("%s %s", rel, what), true, nil
}

// damage does d to the file at path, within its written part, syncs it, and says what
// it did ("at 4711 bit 3", "from 9000 to 4711 bytes").
func damage(path string, d nemesis.Damage, r *rand.Rand) (string, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	size, err := writtenSize(f)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if size == 0 {
		size = 1 // all zeros: damage its first byte
	}
	var what string
	switch d {
	case nemesis.Bitflip:
		off, bit := r.Int64N(size), r.IntN(8)
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, off); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		b[0] ^= 1 << bit
		if _, err := f.WriteAt(b, off); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		what = fmt.Sprintf("bitflip at byte %d bit %d", off, bit)
	case nemesis.Truncate:
		st, err := f.Stat()
		if err != nil {
			return "", err
		}
		off := r.Int64N(size)
		if err := f.Truncate(off); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		what = fmt.Sprintf("truncated from %d to %d bytes", st.Size(), off)
	default:
		return "", fmt.Errorf("unknown damage %q", d)
	}
	return what, f.Sync()
}

// writtenSize is the offset just past f's last non-zero byte.
func writtenSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	const chunk = 1 << 16
	buf := make([]byte, chunk)
	for end := st.Size(); end > 0; {
		start := max(0, end-chunk)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		for i := n - 1; i >= 0; i-- {
			if buf[i] != 0 {
				return start + int64(i) + 1, nil
			}
		}
		end = start
	}
	return 0, nil
}
