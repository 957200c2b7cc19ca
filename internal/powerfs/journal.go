package powerfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// change is one change of the namespace (a name made, removed or moved) not yet durable,
// with what undoes it. Paths are relative to the backing root.
type change struct {
	kind  changeKind
	path  string // the name made or removed; a rename's source
	to    string // a rename's target
	grave string // where a removed name (or one a rename replaced) waits, absolute
}

type changeKind int

const (
	made    changeKind = iota // a file, symlink, device or hard link: undone by unlinking it
	madeDir                   // undone by removing the (by then empty) directory
	removed                   // undone by moving it back from its grave
	moved                     // undone by moving it back, then the one it replaced
	swapped                   // RENAME_EXCHANGE: undone by exchanging again
)

// journal is the namespace's changes since the last commit, in order. Removing a name
// does not delete anything: the entry moves to a grave (a directory beside the backing
// root, on its filesystem), from which an undo brings it back and a commit deletes it.
// Undoing the changes in reverse order walks the namespace back through the states it
// went through, so the paths each change recorded are valid when it is undone.
type journal struct {
	root, graves string
	changes      []change
	seq          int
}

// grave returns a fresh path in the graves.
func (j *journal) grave() string {
	j.seq++
	return filepath.Join(j.graves, strconv.Itoa(j.seq))
}

func (j *journal) abs(rel string) string { return filepath.Join(j.root, rel) }

// commit makes every change durable: the removed entries are deleted for good.
func (j *journal) commit() error {
	var errs []error
	for _, c := range j.changes {
		if c.grave != "" {
			if err := os.RemoveAll(c.grave); err != nil {
				errs = append(errs, err)
			}
		}
	}
	j.changes = nil
	return errors.Join(errs...)
}

// undo reverts every change since the last commit, newest first, and says how many.
func (j *journal) undo() (int, error) {
	n := len(j.changes)
	for i := n - 1; i >= 0; i-- {
		if err := j.revert(j.changes[i]); err != nil {
			j.changes = j.changes[:i+1]
			return n - 1 - i, fmt.Errorf("undo change %d of %d: %w", i+1, n, err)
		}
	}
	j.changes = nil
	return n, nil
}

func (j *journal) revert(c change) error {
	switch c.kind {
	case made:
		return unix.Unlink(j.abs(c.path))
	case madeDir:
		return unix.Rmdir(j.abs(c.path))
	case removed:
		return unix.Rename(c.grave, j.abs(c.path))
	case moved:
		if err := unix.Rename(j.abs(c.to), j.abs(c.path)); err != nil {
			return err
		}
		if c.grave != "" {
			return unix.Rename(c.grave, j.abs(c.to))
		}
		return nil
	case swapped:
		return unix.Renameat2(unix.AT_FDCWD, j.abs(c.path), unix.AT_FDCWD, j.abs(c.to), unix.RENAME_EXCHANGE)
	}
	return fmt.Errorf("unknown change %d", c.kind)
}
