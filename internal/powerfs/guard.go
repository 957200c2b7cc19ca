package powerfs

import (
	"fmt"
	"io"
	"os/exec"
	"syscall"
)

// guard is a shell beside the process serving a disk, waiting on a pipe from it: when
// that process dies without closing the disk (SIGKILL, a crash), the pipe's end wakes
// the guard, which unmounts the dead mount (the kernel aborted its connection when the
// server's /dev/fuse closed) and gives the directory its files back. A disk closed
// properly stops its guard, which then finds nothing to do.
type guard struct {
	cmd *exec.Cmd
	in  io.WriteCloser
}

// guardScript runs with $1 the mount point and $2 its store.
// It aborts the connection first (through fusectl, named by the device's minor): a
// connection still open somewhere would make umount's lookups wait forever. Where
// fusectl is not mounted, it mounts it in a directory of its own and unmounts it
// after: the host's mount table is left as it was.
const guardScript = `read -r _
dev=$(awk -v d="$1" '$5 == d && / - fuse\.faultline / { print $3 }' /proc/self/mountinfo | tail -n 1)
if [ -n "$dev" ]; then
  ctl=/sys/fs/fuse/connections
  if [ ! -e "$ctl/${dev#*:}/abort" ]; then
    ctl=$(mktemp -d) && mount -t fusectl fusectl "$ctl" 2>/dev/null || { rmdir "$ctl" 2>/dev/null; ctl=; }
  fi
  [ -n "$ctl" ] && echo 1 > "$ctl/${dev#*:}/abort" 2>/dev/null
  case "$ctl" in /sys/*|"") ;; *) umount "$ctl" 2>/dev/null; rmdir "$ctl" 2>/dev/null;; esac
  umount "$1" 2>/dev/null || umount -l "$1"
fi
if [ -d "$2/root" ]; then rmdir "$1" 2>/dev/null; mv "$2/root" "$1" && rm -rf "$2"; fi
exit 0`

func startGuard(dir, store string) (*guard, error) {
	cmd := exec.Command("/bin/sh", "-c", guardScript, "powerfs-guard", dir, store)
	// Its own session: a ^C to the harness's process group must not reach it first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("guard: %w", err)
	}
	return &guard{cmd: cmd, in: in}, nil
}

// stop ends the guard, which finds nothing left to clean.
func (g *guard) stop() {
	if g == nil {
		return
	}
	g.in.Close()
	_ = g.cmd.Wait()
}
