package netns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// UserNSEnv is set in the environment of a faultline re-executed by RunInUserNS; its
// value is the user it runs for ("uid:gid").
const UserNSEnv = "FAULTLINE_USERNS"

// InUserNS reports whether this process is faultline re-executed by RunInUserNS.
func InUserNS() bool { return os.Getenv(UserNSEnv) != "" }

// RunInUserNS re-executes this program, with the same arguments, in new user, network
// and mount namespaces in which it is root (mapped to the caller's uid and gid): the way
// rootless container tools get network namespaces, bridges and packet filters without
// privileges. Everything the run makes lives and dies in those namespaces; the results
// it writes are the caller's. Signals (SIGINT, SIGTERM) are passed on. It returns the
// child's exit code; started is false (with the reason) when the kernel refuses
// unprivileged user namespaces, and nothing was run.
func RunInUserNS() (code int, started bool, err error) {
	self, err := os.Executable()
	if err != nil {
		return 0, false, fmt.Errorf("user namespace: %w", err)
	}
	cmd := exec.Command(self, os.Args[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	uid, gid := os.Getuid(), os.Getgid()
	cmd.Env = append(withSbin(os.Environ()), fmt.Sprintf("%s=%d:%d", UserNSEnv, uid, gid))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET | syscall.CLONE_NEWNS,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: uid, Size: 1}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: gid, Size: 1}},
		GidMappingsEnableSetgroups: false,
		Pdeathsig:                  syscall.SIGKILL,
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		return 0, false, fmt.Errorf("unprivileged user namespaces are not available here: %w", err)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err = cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true, nil
	}
	if err != nil {
		return 0, true, fmt.Errorf("user namespace: %w", err)
	}
	return 0, true, nil
}

// SetupUserNS prepares the namespaces RunInUserNS made, in the re-executed child: mounts
// are made private, a tmpfs goes over /run (where `ip netns` keeps its namespaces and
// faultline its locks; the real one is not ours to write), and loopback comes up.
func SetupUserNS() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("user namespace: private mounts: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("user namespace: tmpfs on /run: %w", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("user namespace: loopback up: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// withSbin adds the system binary directories (ip, nft) to PATH: an unprivileged user's
// PATH often lacks them.
func withSbin(env []string) []string {
	out := make([]string, 0, len(env)+1)
	found := false
	for _, kv := range env {
		if p, ok := strings.CutPrefix(kv, "PATH="); ok {
			found = true
			for _, d := range []string{"/usr/sbin", "/sbin"} {
				if !strings.Contains(":"+p+":", ":"+d+":") {
					p += ":" + d
				}
			}
			kv = "PATH=" + p
		}
		out = append(out, kv)
	}
	if !found {
		out = append(out, "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
	}
	return out
}
