package vclock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
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
		if pp, ok := parentOf(pid); ok {
			children[pp] = append(children[pp], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// parentOf reads pid's parent from /proc/PID/stat (after the command's closing paren:
// the command may hold spaces and parens itself).
func parentOf(pid int) (int, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil
}
