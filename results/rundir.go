package results

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDir is where runs and campaigns go when --results says nothing: runs/, not
// results/, which is this Go package's own directory in faultline's repository.
const DefaultDir = "runs"

// NewRunDir creates root/<test>/<timestamp>/ for one run and points root/latest at it.
// The timestamp is the run's base time in UTC, with a suffix if two runs share a second.
func NewRunDir(root, test string, base time.Time) (string, error) {
	stamp := base.UTC().Format("20060102T150405Z")
	var dir string
	for i := 0; ; i++ {
		dir = filepath.Join(root, test, stamp)
		if i > 0 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", fmt.Errorf("results dir: %w", err)
		}
		err := os.Mkdir(dir, 0o755)
		if err == nil {
			break
		}
		if !os.IsExist(err) || i > 100 {
			return "", fmt.Errorf("results dir: %w", err)
		}
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		return "", fmt.Errorf("results dir: %w", err)
	}
	latest := filepath.Join(root, "latest")
	// A temporary name of this run's own: runs of a campaign start side by side.
	tmp := fmt.Sprintf("%s.%d.%s.tmp", latest, os.Getpid(), strings.ReplaceAll(rel, string(filepath.Separator), "_"))
	_ = os.Remove(tmp)
	if err := os.Symlink(rel, tmp); err != nil {
		return "", fmt.Errorf("latest link: %w", err)
	}
	if err := os.Rename(tmp, latest); err != nil {
		return "", fmt.Errorf("latest link: %w", err)
	}
	return dir, nil
}

// WriteJSON writes v, indented, to dir/name through a temporary file and a rename, so a
// reader never sees half a file.
func WriteJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	return writeAtomic(dir, name, append(b, '\n'))
}
