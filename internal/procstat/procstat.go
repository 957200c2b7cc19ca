// Package procstat reads the states of processes and their threads from /proc: what a
// pause (SIGSTOP) must wait for before it can claim to be in force. kill(2) only queues
// the signal; the process stops when each of its threads takes it, and on a loaded
// machine a thread can run on for milliseconds after kill returns — long enough for a
// "paused" server to answer a request. The state the kernel shows for the process
// (/proc/PID/stat) is its leader thread's alone.
package procstat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const proc = "/proc"

// State returns the state letter (R, S, D, T, t, Z, ...) of pid's leader thread.
func State(pid int) (byte, error) {
	return stateOf(filepath.Join(proc, strconv.Itoa(pid), "stat"))
}

// Stopped reports whether every thread of pid is stopped (T, or t under a tracer).
func Stopped(pid int) (bool, error) { return stopped(proc, pid) }

// WaitStopped polls until every thread of pid is stopped, or ctx ends.
func WaitStopped(ctx context.Context, pid int) error {
	for {
		ok, err := Stopped(pid)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			st, _ := State(pid)
			return fmt.Errorf("process %d not stopped (leader in state %c): %w", pid, st, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// PeakRSS returns pid's peak resident set (VmHWM) in KiB, or 0 when it cannot be read
// (the process has exited). Unlike a child's rusage, it is the process's own: Go starts
// children with vfork, and at exec Linux carries the parent's peak into ru_maxrss.
func PeakRSS(pid int) int64 {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb
		}
	}
	return 0
}

func stopped(root string, pid int) (bool, error) {
	tasks, err := filepath.Glob(filepath.Join(root, strconv.Itoa(pid), "task", "*", "stat"))
	if err != nil {
		return false, fmt.Errorf("threads of %d: %w", pid, err)
	}
	if len(tasks) == 0 {
		return false, fmt.Errorf("threads of %d: none in %s (has it exited?)", pid, root)
	}
	for _, f := range tasks {
		st, err := stateOf(f)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a thread that exited since the glob
		}
		if err != nil {
			return false, err
		}
		if st != 'T' && st != 't' {
			return false, nil
		}
	}
	return true, nil
}

// stateOf parses a stat file's state.
func stateOf(file string) (byte, error) {
	f, err := statFields(file)
	if err != nil {
		return 0, fmt.Errorf("process state: %w", err)
	}
	return f[0][0], nil
}

// Parent returns pid's parent pid, from /proc/PID/stat.
func Parent(pid int) (int, error) {
	f, err := statFields(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, fmt.Errorf("parent of %d: %w", pid, err)
	}
	if len(f) < 2 {
		return 0, fmt.Errorf("parent of %d: a stat with no parent", pid)
	}
	return strconv.Atoi(f[1])
}

// statFields parses a stat file, "pid (comm) S ppid ...", into the fields after comm
// (state first): comm may hold ") ", so they start after the last ')'.
func statFields(file string) ([]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("cannot parse %s", file)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) == 0 || len(f[0]) == 0 {
		return nil, fmt.Errorf("cannot parse %s", file)
	}
	return f, nil
}
