package vclock

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/faultline/faultline/internal/procstat"
)

// SetTree sets the clocks of root and of every process descended from it (a node's
// program and whatever it started: a shell wrapper's child, say). A process that
// exits meanwhile is skipped.
func SetTree(root int, c Clocks) error {
	var errs []error
	for _, pid := range Tree(root) {
		var err error
		if c.Wall.True() && c.Mono.True() {
			err = Reset(pid)
		} else {
			err = Set(pid, c)
		}
		if err != nil && processExists(pid) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Tree returns root and its descendants, root first.
func Tree(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := procstat.Parent(pid); err == nil {
			children[pp] = append(children[pp], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
