package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/faultline/faultline/harness/netns"
)

// Clean removes whatever runs left behind on this host, and nothing of a run whose
// harness still lives: node processes (found by RunEnv in their environment), the
// containers, networks and volumes labelled faultline=1 (when a Docker daemon answers),
// then the runs' namespaces,
// bridges and rules; with images, also the node images (a cache). It touches nothing that
// is not marked as faultline's. It returns what it removed.
func Clean(ctx context.Context, images bool) ([]string, error) {
	var removed []string
	pids, err := ourProcesses()
	if err != nil {
		return nil, err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGCONT)
		removed = append(removed, fmt.Sprintf("process %d", pid))
	}
	if ok, _ := DockerAvailable(ctx); ok {
		r, err := DockerCleanAll(ctx)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("clean docker: %w", err)
		}
		if images {
			r, err := DockerRemoveImages(ctx)
			removed = append(removed, r...)
			if err != nil {
				return removed, fmt.Errorf("clean docker images: %w", err)
			}
		}
	}
	if ok, _ := netns.Available(); ok {
		r, err := netns.CleanAll(ctx)
		removed = append(removed, r...)
		if err != nil {
			return removed, fmt.Errorf("clean network: %w", err)
		}
	}
	return removed, nil
}

// ourProcesses lists the pids of node processes (RunEnv in their environment) whose
// harness (HarnessEnv) is no longer alive.
func ourProcesses() ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	marker, harness := []byte(RunEnv+"="), []byte(HarnessEnv+"=")
	self := os.Getpid()
	var pids []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join(d, "environ"))
		if err != nil {
			continue // gone, or not ours to read
		}
		ours, live := false, false
		for _, kv := range bytes.Split(env, []byte{0}) {
			switch {
			case bytes.HasPrefix(kv, marker):
				ours = true
			case bytes.HasPrefix(kv, harness):
				h, err := strconv.Atoi(string(kv[len(harness):]))
				live = err == nil && h != self && alive(h)
			}
		}
		if ours && !live {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// alive reports whether a process with this pid exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
