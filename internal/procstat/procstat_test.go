package procstat

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// fakeProc writes a /proc-like tree for pid whose threads are in the given states.
func fakeProc(t *testing.T, pid int, states ...byte) string {
	t.Helper()
	root := t.TempDir()
	for i, st := range states {
		dir := filepath.Join(root, strconv.Itoa(pid), "task", strconv.Itoa(pid+i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		// A command name with a ") " in it: the state follows the last ')'.
		line := strconv.Itoa(pid+i) + " (etcd) x) " + string(st) + " 1 2 3\n"
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// The thread group leader can report T while another thread is still running (in an
// fsync, or not yet scheduled to take the stop): the process is not stopped until every
// thread is.
func TestStoppedNeedsEveryThread(t *testing.T) {
	for _, c := range []struct {
		states []byte
		want   bool
	}{
		{[]byte("TTT"), true},
		{[]byte("tT"), true},
		{[]byte("TR"), false},
		{[]byte("TTD"), false},
		{[]byte("S"), false},
	} {
		root := fakeProc(t, 100, c.states...)
		got, err := stopped(root, 100)
		if err != nil {
			t.Fatalf("%s: %v", c.states, err)
		}
		if got != c.want {
			t.Errorf("threads %s: stopped = %v, want %v", c.states, got, c.want)
		}
	}
	if _, err := stopped(t.TempDir(), 100); err == nil {
		t.Error("a process with no threads in /proc: no error")
	}
}

// A real process: not stopped while it runs, stopped once WaitStopped returns after
// SIGSTOP, running again after SIGCONT.
func TestWaitStoppedOnARealProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start sleep: %v", err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if ok, err := Stopped(pid); err != nil || ok {
		t.Fatalf("running process: Stopped = %v, %v", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	if err := WaitStopped(ctx, pid); err == nil {
		t.Error("WaitStopped of a running process returned nil")
	}
	cancel()
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitStopped(ctx, pid); err != nil {
		t.Fatal(err)
	}
	if st, err := State(pid); err != nil || (st != 'T' && st != 't') {
		t.Errorf("after WaitStopped: state %c, %v", st, err)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if ok, err := Stopped(pid); err == nil && !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("still stopped 5 s after SIGCONT")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
