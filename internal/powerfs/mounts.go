package powerfs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Probe says whether this host lets this process mount a disk, by mounting one on an
// empty directory and unmounting it; why says what was found or what is missing. The
// answer is found once per process.
func Probe() (ok bool, why string) {
	probeOnce.Do(func() { probeOK, probeWhy = probe() })
	return probeOK, probeWhy
}

var (
	probeOnce sync.Once
	probeOK   bool
	probeWhy  string
)

func probe() (bool, string) {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, "no /dev/fuse on this host (load the fuse module; in a container, pass --device /dev/fuse)"
	case err != nil:
		return false, "cannot open /dev/fuse: " + err.Error()
	}
	f.Close()
	tmp, err := os.MkdirTemp("", "faultline-powerfs-probe-")
	if err != nil {
		return false, "probe: " + err.Error()
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return false, "probe: " + err.Error()
	}
	d, err := Mount(dir, Options{Tag: "probe"})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return false, "mounting a FUSE filesystem needs root (or faultline's rootless user namespace): " + err.Error()
		}
		return false, "cannot mount a FUSE filesystem here: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		return false, "probe: " + err.Error()
	}
	return true, "FUSE mounts on /dev/fuse"
}

// Mounted is a powerfs mount found in this process's mount namespace.
type Mounted struct {
	Dir    string // the mount point
	Tag    string // its Options.Tag
	Pid    int    // the process that serves it (0: unknown)
	Device string // major:minor of its connection
}

// Mounts lists the powerfs mounts of this mount namespace, deepest first.
func Mounts() ([]Mounted, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Mounted
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// ID parent major:minor root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+2 >= len(fields) || fields[sep+1] != FSType {
			continue
		}
		src := unescape(fields[sep+2])
		tag, _ := strings.CutPrefix(src, fsName+":")
		var pid int
		if i := strings.LastIndexByte(tag, ':'); i >= 0 {
			pid, _ = strconv.Atoi(tag[i+1:])
			tag = tag[:i]
		}
		out = append(out, Mounted{Dir: unescape(fields[4]), Tag: tag, Pid: pid, Device: fields[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Deepest first: a mount inside another is undone before it.
	for i := 0; i < len(out); i++ {
		for j := i + 1; j < len(out); j++ {
			if strings.Count(out[j].Dir, "/") > strings.Count(out[i].Dir, "/") {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Release ends a mount whose server is gone or stuck (a harness that died): its
// connection is aborted, it is detached, and its directory gets its files back (as they
// are: what the lost server would have undone stays written).
func Release(m Mounted) error {
	if err := release(m.Dir); err != nil {
		return err
	}
	return restoreDir(m.Dir)
}

// fusectl is where the kernel lists FUSE connections.
const fusectl = "/sys/fs/fuse/connections"

// abortConn aborts the FUSE connection named minor through fusectl; where fusectl is not
// mounted, through a mount of it of its own, removed after (the host's mount table is
// left as it was).
func abortConn(minor string) {
	ctl := fusectl
	if _, err := os.Stat(filepath.Join(ctl, minor, "abort")); err != nil {
		tmp, err := os.MkdirTemp("", "faultline-fusectl-")
		if err != nil {
			return
		}
		defer os.Remove(tmp)
		if err := unix.Mount("fusectl", tmp, "fusectl", 0, ""); err != nil {
			return
		}
		defer unix.Unmount(tmp, unix.MNT_DETACH)
		ctl = tmp
	}
	_ = os.WriteFile(filepath.Join(ctl, minor, "abort"), []byte("1"), 0)
}

// release aborts the FUSE connection mounted at dir and unmounts it (detaching it if it
// is busy).
func release(dir string) error {
	var dev string
	if ms, err := Mounts(); err == nil {
		for _, m := range ms {
			if m.Dir == dir {
				dev = m.Device
			}
		}
	}
	if _, minor, ok := strings.Cut(dev, ":"); ok {
		// The connection's directory in fusectl is named by the device's minor number.
		// A connection whose server is gone must be aborted: until then, whatever waits
		// on it (even the dying server's own threads) waits forever.
		abortConn(minor)
	}
	err := unix.Unmount(dir, 0)
	if err != nil && !errors.Is(err, unix.EINVAL) {
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not mounted any more
		return fmt.Errorf("unmount %s: %w", dir, err)
	}
	return nil
}
