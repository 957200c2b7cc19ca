// Package powerfs is a disk that can lose power: a FUSE filesystem mounted over a
// directory, which passes every read and write through to the directory's own files but
// remembers how to undo everything not yet made durable — the bytes written to a file
// since its last fsync or fdatasync, and the names made, removed or moved since the last
// sync — so that PowerLoss can drop exactly that, the way a machine losing power loses
// what sat in its page cache. A SIGKILL never loses those writes: the kernel keeps them.
//
// Model. The data of a file is durable up to its last fsync/fdatasync (through any of its
// descriptors; a write through a descriptor opened O_SYNC or O_DSYNC is synced at once).
// The namespace is a journal, as on ext4 or XFS: every sync commits all the changes of
// names made before it (Options.DirSyncOnly: only a directory's fsync does, the strict
// POSIX reading). After a loss, each file holds its synced bytes and size, and the names
// are as the last commit left them. O_DIRECT writes, close(2) and sync(2)/syncfs(2) make
// nothing durable (FUSE does not pass syncfs on).
//
// How. Writes go straight to the backing file (so reads, mmap and stat are plain
// passthrough; bbolt's read-only shared mmap works). Before a write or a truncation
// changes bytes that were synced, the synced bytes are read and kept; a file's growth
// needs nothing kept (the loss truncates it). A removed name is moved to a grave beside
// the backing directory, to be deleted when the removal commits. PowerLoss unmounts (the
// kernel drops its caches), restores the kept bytes and sizes, undoes the uncommitted
// name changes newest first, and mounts again. Memory is the overwritten synced bytes
// since the last sync: small for logs that append and sync.
//
// The kernel is kept out of the way: no writeback cache (it would hold dirty pages the
// filesystem never sees), no passthrough (the kernel would write the backing file
// itself), no direct I/O (it forbids shared mmap), no attribute or entry caching,
// copy_file_range refused (the kernel falls back to reads and writes), ioctls refused.
//
// Mounting needs root (or root in a user namespace that owns its mount namespace) and
// /dev/fuse: Probe says whether this host can.
package powerfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FSType is the filesystem type of every powerfs mount in /proc/self/mountinfo.
const FSType = "fuse." + fsName

const fsName = "faultline"

// Options tune a disk.
type Options struct {
	// Tag names the mount: its source in /proc/self/mountinfo is "faultline:<Tag>:<pid>"
	// (the pid of the process serving it), which is how a cleaner tells whose it is.
	Tag string
	// DirSyncOnly makes only a directory's fsync commit the namespace (strict POSIX);
	// by default any sync does, as on a journaling filesystem.
	DirSyncOnly bool
	// Writeback is the kernel's writeback: every Writeback, everything written so far
	// becomes durable as if synced, as Linux writes dirty pages back and ext4 commits its
	// journal every few seconds. A power loss then drops at most the last Writeback of
	// unsynced changes. 0 keeps nothing unsynced however old (LazyFS's strict model).
	Writeback time.Duration
}

// Loss is what a power loss dropped.
type Loss struct {
	Files int   // files put back to their last sync
	Bytes int64 // bytes written since a sync that were lost (growth and overwrites)
	Names int   // changes of names undone
}

func (l Loss) String() string {
	return fmt.Sprintf("%s back to their last sync (%d unsynced bytes lost), %s undone",
		plural(l.Files, "file"), l.Bytes, plural(l.Names, "name change"))
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Disk is one directory under powerfs.
type Disk struct {
	dir   string // the mount point: where the directory was
	store string // beside it: root/ holds the backing files, graves/ the removed ones
	opts  Options

	// gate: every mutating operation holds it shared; PowerLoss, Wipe and Close take it
	// alone, so that no change is half-applied while they work.
	gate   sync.RWMutex
	mu     sync.Mutex // the fields below
	files  map[uint64]*file
	jr     journal
	server *fuse.Server
	closed bool
	guard  *guard
	stopWB chan struct{} // closed by Close: ends the writeback
}

// storeOf is where the backing files of a disk mounted at dir live.
func storeOf(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".powerfs")
}

// Mount puts dir under powerfs: its contents move to a store beside it
// (.<name>.powerfs/, on the same filesystem) and dir becomes the mount point, showing the
// same files. Everything in dir at the time counts as synced. Close undoes it.
func Mount(dir string, o Options) (*Disk, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	store := storeOf(dir)
	if _, err := os.Stat(store); err == nil {
		return nil, fmt.Errorf("powerfs %s: %s exists (a disk mounted before and not closed: faultline clean)", dir, store)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("powerfs: %w", err)
	}
	if err := os.Mkdir(store, 0o700); err != nil {
		return nil, fmt.Errorf("powerfs %s: %w", dir, err)
	}
	root, graves := filepath.Join(store, "root"), filepath.Join(store, "graves")
	undo := func(err error) (*Disk, error) {
		if _, e := os.Stat(root); e == nil {
			_ = os.Remove(dir)
			_ = os.Rename(root, dir)
		}
		_ = os.RemoveAll(store)
		return nil, fmt.Errorf("powerfs %s: %w", dir, err)
	}
	if err := os.Mkdir(graves, 0o700); err != nil {
		return undo(err)
	}
	if err := os.Rename(dir, root); err != nil {
		return undo(err)
	}
	if err := os.Mkdir(dir, st.Mode().Perm()); err != nil {
		return undo(err)
	}
	_ = os.Chown(dir, int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid))
	d := &Disk{dir: dir, store: store, opts: o, files: map[uint64]*file{},
		jr: journal{root: root, graves: graves}}
	if err := d.mount(); err != nil {
		return undo(err)
	}
	g, err := startGuard(dir, store)
	if err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = d.unmount(ctx)
		return undo(err)
	}
	d.guard = g
	d.stopWB = make(chan struct{})
	if o.Writeback > 0 {
		go d.writeback(o.Writeback)
	}
	return d, nil
}

// Writeback makes everything written so far durable, as if synced: what the kernel's
// writeback does with dirty pages.
func (d *Disk) Writeback() {
	d.gate.RLock() // not during a power loss, a wipe or a close
	defer d.gate.RUnlock()
	if !d.closed {
		d.forget()
	}
}

// writeback makes everything written durable every period, until Close.
func (d *Disk) writeback(period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-d.stopWB:
			return
		case <-t.C:
		}
		d.Writeback()
	}
}

// Dir is the mount point.
func (d *Disk) Dir() string { return d.dir }

// Backing is the directory holding the files; writing it directly bypasses the disk's
// bookkeeping (what is there counts as synced at the next PowerLoss or Wipe).
func (d *Disk) Backing() string { return d.jr.root }

func (d *Disk) mount() error {
	root, err := fs.NewLoopbackRoot(d.jr.root)
	if err != nil {
		return err
	}
	n := &node{LoopbackNode: root.(*fs.LoopbackNode), d: d}
	opts := &fs.Options{ // non-nil: entry and attribute timeouts stay 0 (no kernel caching)
		MountOptions: fuse.MountOptions{
			Name: fsName, FsName: fsName + ":" + d.opts.Tag + ":" + strconv.Itoa(os.Getpid()),
			DirectMountStrict: true, AllowOther: true, Options: []string{"default_permissions"},
			DisabledCapabilities: fuse.CAP_PASSTHROUGH, // never CAP_WRITEBACK_CACHE either
			MaxWrite:             1 << 20,
		},
	}
	// go-fuse opens /dev/fuse without close-on-exec when it mounts directly: a program
	// started meanwhile, or afterwards, would hold the connection open, so that it
	// outlives this process and whatever touches the mount then hangs. Forks wait until
	// the descriptor is fixed.
	syscall.ForkLock.Lock()
	srv, err := fs.Mount(d.dir, n, opts)
	closeOnExec()
	syscall.ForkLock.Unlock()
	if err != nil {
		return fmt.Errorf("mount: %w", err)
	}
	d.server = srv
	return nil
}

// closeOnExec marks every /dev/fuse descriptor of this process close-on-exec.
func closeOnExec() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && l == "/dev/fuse" {
			if fd, err := strconv.Atoi(e.Name()); err == nil {
				syscall.CloseOnExec(fd)
			}
		}
	}
}

// unmount ends the current mount: it waits up to ctx's end for the mount to be free
// (its users' files closed), then aborts the connection and detaches it.
func (d *Disk) unmount(ctx context.Context) error {
	srv := d.server
	if srv == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		var err error
		for {
			if err = srv.Unmount(); err == nil || ctx.Err() != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			d.server = nil
			return nil
		}
		return fmt.Errorf("unmount %s: %w", d.dir, err)
	case <-ctx.Done():
		err := release(d.dir)
		<-done
		d.server = nil
		if err != nil {
			return fmt.Errorf("unmount %s: %w", d.dir, err)
		}
		return nil
	}
}

// PowerLoss drops everything written since it was synced: the disk is unmounted, every
// file goes back to its last sync, the names to their last commit, and it is mounted
// again. Whatever uses the disk must be dead (its open files closed): until ctx ends,
// PowerLoss waits for the mount to be free, and gives up with nothing dropped if it is
// not.
func (d *Disk) PowerLoss(ctx context.Context) (Loss, error) {
	d.gate.Lock()
	defer d.gate.Unlock()
	if d.closed {
		return Loss{}, errors.New("powerfs: closed")
	}
	if err := d.unmountFree(ctx); err != nil {
		return Loss{}, err
	}
	loss, err := d.drop()
	if merr := d.mount(); merr != nil {
		return loss, errors.Join(err, fmt.Errorf("powerfs %s: mount again: %w", d.dir, merr))
	}
	return loss, err
}

// unmountFree unmounts only once the mount is free: it never aborts a connection in use.
func (d *Disk) unmountFree(ctx context.Context) error {
	for {
		err := d.server.Unmount()
		if err == nil {
			d.server = nil
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || ctx.Err() != nil {
			return fmt.Errorf("powerfs %s: unmount: %w (is its user still running?)", d.dir, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drop restores every tracked file and undoes the journal; the disk is unmounted.
func (d *Disk) drop() (Loss, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var loss Loss
	var errs []error
	for ino, f := range d.files {
		f.mu.Lock()
		n, err := f.restore()
		f.close()
		f.mu.Unlock()
		delete(d.files, ino)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if n > 0 {
			loss.Files++
			loss.Bytes += n
		}
	}
	n, err := d.jr.undo()
	loss.Names = n
	if err != nil {
		errs = append(errs, err)
	}
	return loss, errors.Join(errs...)
}

// Wipe empties the disk, as a new machine's would be; whatever uses it must be dead.
func (d *Disk) Wipe(ctx context.Context) error {
	d.gate.Lock()
	defer d.gate.Unlock()
	if err := d.unmountFree(ctx); err != nil {
		return err
	}
	d.forget()
	var errs []error
	ents, err := os.ReadDir(d.jr.root)
	errs = append(errs, err)
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(d.jr.root, e.Name())))
	}
	if err := d.mount(); err != nil {
		errs = append(errs, fmt.Errorf("mount again: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("powerfs %s: wipe: %w", d.dir, err)
	}
	return nil
}

// forget makes everything durable as it is now.
func (d *Disk) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for ino, f := range d.files {
		f.mu.Lock()
		f.close()
		f.mu.Unlock()
		delete(d.files, ino)
	}
	_ = d.jr.commit()
}

// Close unmounts the disk and puts the directory back as it is now (what was written
// stays: closing is not a power loss). It waits up to ctx's end for the mount to be
// free, then forces it. It is safe to call more than once.
func (d *Disk) Close(ctx context.Context) error {
	d.gate.Lock()
	defer d.gate.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	close(d.stopWB)
	err := d.unmount(ctx)
	d.forget()
	if err == nil {
		err = restoreDir(d.dir)
	}
	d.guard.stop()
	return err
}

// restoreDir moves the backing files of a disk mounted at dir (no longer mounted) back
// into dir and removes the store; a dir without a store is left be.
func restoreDir(dir string) error {
	store := storeOf(dir)
	root := filepath.Join(store, "root")
	if _, err := os.Stat(root); err != nil {
		return nil
	}
	if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("powerfs: put %s back: %w", dir, err)
	}
	if err := os.Rename(root, dir); err != nil {
		return fmt.Errorf("powerfs: put %s back: %w", dir, err)
	}
	return os.RemoveAll(store)
}
