package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/faultline/faultline/harness/netns"
)

// Clean removes whatever runs left behind on this host: node processes started by a
// harness (found by RunEnv in their environment), the containers, networks and volumes
// labelled faultline=1 (when a Docker daemon answers), then the runs' namespaces,
// bridges and rules. It touches nothing that is not marked as faultline's. It returns what it removed.
func Clean(ctx context.Context) ([]string, error) {
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

// ourProcesses lists the pids whose environment carries RunEnv.
func ourProcesses() ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	marker := []byte(RunEnv + "=")
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
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.HasPrefix(kv, marker) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}
