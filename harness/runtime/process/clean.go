package process

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/faultline/faultline/harness/runtime"
)

// Orphans lists the pids of node processes (runtime.RunEnv in their environment) whose
// harness (runtime.HarnessEnv) is no longer alive: what a dead run left behind.
func Orphans() ([]int, error) { return scan("") }

// OfRun lists the pids of the live processes of one run, whatever its harness.
func OfRun(runID string) ([]int, error) { return scan(runID) }

// scan lists the node processes of runID (any run's orphans, for "").
func scan(runID string) ([]int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	marker, harness := []byte(runtime.RunEnv+"="+runID), []byte(runtime.HarnessEnv+"=")
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
			case runID == "" && bytes.HasPrefix(kv, marker), runID != "" && bytes.Equal(kv, marker):
				ours = true
			case bytes.HasPrefix(kv, harness):
				h, err := strconv.Atoi(string(kv[len(harness):]))
				live = err == nil && h != self && runtime.Alive(h)
			}
		}
		if ours && (!live || runID != "") {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// CleanOrphans kills every orphaned node process (SIGKILL, and SIGCONT for a paused
// one) and returns what it removed.
func CleanOrphans(_ context.Context) ([]string, error) {
	pids, err := Orphans()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGCONT)
		removed = append(removed, fmt.Sprintf("process %d", pid))
	}
	return removed, nil
}
