//go:build !(linux && amd64)

package vclock

import (
	"errors"
	"runtime"
)

var errUnsupported = errors.New("vclock: per-process clocks need amd64 Linux (the vDSO patch is amd64 code); this is " +
	runtime.GOOS + "/" + runtime.GOARCH)

// Supported says why vclock does not work here.
func Supported() error { return errUnsupported }

// Set is unsupported here.
func Set(pid int, c Clocks) error { return errUnsupported }

// Reset is unsupported here; nothing was set.
func Reset(pid int) error { return nil }

// Forget does nothing here.
func Forget(pid int) {}

// SetTree is unsupported here (resetting is a no-op: nothing was set).
func SetTree(root int, c Clocks) error {
	if c.Wall.True() && c.Mono.True() {
		return nil
	}
	return errUnsupported
}

// CleanOrphans has nothing to clean here.
func CleanOrphans() []string { return nil }
