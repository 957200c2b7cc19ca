package powerfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of a mounted disk: go-fuse's loopback, with every change
// recorded so that it can be undone. Reads, lookups, attributes and locks are the
// loopback's.
type node struct {
	*fs.LoopbackNode
	d *Disk
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
)

// WrapChild makes every node of the tree a recording one.
func (n *node) WrapChild(_ context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), d: n.d}
}

// rel is the node's path relative to the backing root; child, a name in it.
func (n *node) rel() string              { return n.Path(n.Root()) }
func (n *node) child(name string) string { return filepath.Join(n.rel(), name) }

// enter admits a change: it holds the gate until the returned func is called.
func (n *node) enter() func() {
	n.d.gate.RLock()
	return n.d.gate.RUnlock
}

// handle is an open file: the loopback's, never passed through to the kernel (the
// kernel would then write the backing file itself), with ioctls refused.
type handle struct {
	*fs.LoopbackFile
	sync bool // opened O_SYNC or O_DSYNC: every write is synced
}

// PassthroughFd refuses FUSE passthrough.
func (h *handle) PassthroughFd() (int, bool) { return -1, false }

// Ioctl refuses ioctls: one could change the file behind the disk's back.
func (h *handle) Ioctl(context.Context, uint32, uint64, []byte, []byte) (int32, syscall.Errno) {
	return 0, syscall.ENOTTY
}

// fd is the handle's backing descriptor.
func (h *handle) fd() int {
	fd, _ := h.LoopbackFile.PassthroughFd()
	return fd
}

func wrap(fh fs.FileHandle, flags uint32) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	return &handle{LoopbackFile: lf, sync: flags&unix.O_DSYNC != 0}
}

// track returns the undo state of the node's backing inode, made on its first change
// since a sync; fd, if not negative, is an open descriptor of it (the file may have no
// name any more), else it is opened by path. The returned file is locked.
func (n *node) track(fd int) (*file, syscall.Errno) {
	ino := n.StableAttr().Ino
	for {
		n.d.mu.Lock()
		f := n.d.files[ino]
		if f == nil {
			var ofd int
			var err error
			if fd >= 0 {
				ofd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
			} else {
				ofd, err = unix.Open(n.d.jr.abs(n.rel()), unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			}
			if err == nil {
				f, err = newFile(ofd)
			}
			if err != nil {
				n.d.mu.Unlock()
				return nil, fs.ToErrno(err)
			}
			n.d.files[ino] = f
		}
		n.d.mu.Unlock()
		f.mu.Lock()
		if !f.closed {
			return f, 0
		}
		f.mu.Unlock() // synced meanwhile: look again
	}
}

// synced makes the node's data durable, and (unless only directory syncs do) every
// change of names so far.
func (n *node) synced(dir bool) syscall.Errno {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if !dir {
		if f := n.d.files[n.StableAttr().Ino]; f != nil {
			delete(n.d.files, n.StableAttr().Ino)
			f.mu.Lock() // wait for writes in flight
			f.close()
			f.mu.Unlock()
		}
	}
	if dir || !n.d.opts.DirSyncOnly {
		return fs.ToErrno(n.d.jr.commit())
	}
	return 0
}

// Open opens the loopback's file, wrapped. An O_TRUNC (which the kernel normally sends
// as a setattr) keeps the synced bytes first.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&unix.O_TRUNC != 0 && flags&unix.O_ACCMODE != unix.O_RDONLY {
		defer n.enter()()
		f, errno := n.track(-1)
		if errno != 0 {
			return nil, 0, errno
		}
		defer f.mu.Unlock()
		if err := f.save(0, f.synced); err != nil {
			return nil, 0, fs.ToErrno(err)
		}
	}
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return wrap(fh, flags), ff, 0
}

// Create makes a file: a change of names. The kernel sends it only for a name its lookup
// did not find, holding the directory's lock meanwhile, and nothing else changes the
// backing files: the name cannot exist (if it did, it is opened and not recorded).
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	defer n.enter()()
	rel := n.child(name)
	_, err := os.Lstat(n.d.jr.abs(rel))
	existed := err == nil
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if !existed {
		n.journal(change{kind: made, path: rel})
	}
	return ch, wrap(fh, flags), ff, 0
}

func (n *node) journal(c change) {
	n.d.mu.Lock()
	n.d.jr.changes = append(n.d.jr.changes, c)
	n.d.mu.Unlock()
}

// Write keeps the synced bytes it overwrites, then writes through.
func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	h, ok := fh.(*handle)
	if !ok {
		return 0, syscall.EBADF
	}
	defer n.enter()()
	f, errno := n.track(h.fd())
	if errno != 0 {
		return 0, errno
	}
	if err := f.save(off, int64(len(data))); err != nil {
		f.mu.Unlock()
		return 0, fs.ToErrno(err)
	}
	w, errno := h.LoopbackFile.Write(ctx, data, off)
	f.mu.Unlock()
	if errno == 0 && h.sync {
		errno = n.synced(false)
	}
	return w, errno
}

// Fsync makes the file's data durable (fsync and fdatasync alike), or a directory's
// names. The backing file is not synced: the host does not lose power.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	defer n.enter()()
	return n.synced(n.IsDir())
}

// Setattr keeps the synced bytes a truncation cuts off, then applies the change.
func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	size, ok := in.GetSize()
	if !ok || n.IsDir() {
		return n.LoopbackNode.Setattr(ctx, fh, in, out)
	}
	defer n.enter()()
	fd := -1
	if h, ok := fh.(*handle); ok {
		fd = h.fd()
	}
	f, errno := n.track(fd)
	if errno != 0 {
		return errno
	}
	defer f.mu.Unlock()
	if err := f.save(int64(size), f.synced); err != nil {
		return fs.ToErrno(err)
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

// Allocate keeps the synced bytes a hole punched or a range zeroed overwrites; it
// refuses to collapse or insert ranges (which move bytes).
func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	h, ok := fh.(*handle)
	if !ok {
		return syscall.EBADF
	}
	if mode&(unix.FALLOC_FL_COLLAPSE_RANGE|unix.FALLOC_FL_INSERT_RANGE) != 0 {
		return syscall.EOPNOTSUPP
	}
	defer n.enter()()
	f, errno := n.track(h.fd())
	if errno != 0 {
		return errno
	}
	defer f.mu.Unlock()
	if mode&(unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_ZERO_RANGE) != 0 {
		if err := f.save(int64(off), int64(size)); err != nil {
			return fs.ToErrno(err)
		}
	}
	return h.LoopbackFile.Allocate(ctx, off, size, mode)
}

// CopyFileRange is refused with ENOSYS: the kernel then copies with reads and writes,
// which the disk sees.
func (n *node) CopyFileRange(context.Context, fs.FileHandle, uint64, *fs.Inode, fs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Mkdir makes a directory: a change of names.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.enter()()
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.journal(change{kind: madeDir, path: n.child(name)})
	}
	return ch, errno
}

// Mknod makes a node: a change of names.
func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.enter()()
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, dev, out)
	if errno == 0 {
		n.journal(change{kind: made, path: n.child(name)})
	}
	return ch, errno
}

// Symlink makes a symlink: a change of names.
func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	defer n.enter()()
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.journal(change{kind: made, path: n.child(name)})
	}
	return ch, errno
}

// Link makes a hard link: a change of names.
func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if t, ok := target.(*node); ok {
		target = t.LoopbackNode
	}
	defer n.enter()()
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.journal(change{kind: made, path: n.child(name)})
	}
	return ch, errno
}

// Unlink moves the name to a grave.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	defer n.enter()()
	rel := n.child(name)
	var st unix.Stat_t
	if err := unix.Lstat(n.d.jr.abs(rel), &st); err != nil {
		return fs.ToErrno(err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return syscall.EISDIR
	}
	return n.bury(rel)
}

// Rmdir moves the (empty) directory to a grave.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	defer n.enter()()
	rel := n.child(name)
	if errno := emptyDir(n.d.jr.abs(rel)); errno != 0 {
		return errno
	}
	return n.bury(rel)
}

// emptyDir says why path is not an empty directory (0 when it is).
func emptyDir(path string) syscall.Errno {
	f, err := os.Open(path)
	if err != nil {
		return fs.ToErrno(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fs.ToErrno(err)
	}
	if !st.IsDir() {
		return syscall.ENOTDIR
	}
	if names, _ := f.Readdirnames(1); len(names) > 0 {
		return syscall.ENOTEMPTY
	}
	return 0
}

func (n *node) bury(rel string) syscall.Errno {
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	grave := n.d.jr.grave()
	if err := unix.Rename(n.d.jr.abs(rel), grave); err != nil {
		return fs.ToErrno(err)
	}
	n.d.jr.changes = append(n.d.jr.changes, change{kind: removed, path: rel, grave: grave})
	return 0
}

// Rename moves a name; a name it replaces goes to a grave first.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	defer n.enter()()
	from, to := n.child(name), np.child(newName)
	af, at := n.d.jr.abs(from), n.d.jr.abs(to)
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if err := unix.Renameat2(unix.AT_FDCWD, af, unix.AT_FDCWD, at, unix.RENAME_EXCHANGE); err != nil {
			return fs.ToErrno(err)
		}
		n.d.jr.changes = append(n.d.jr.changes, change{kind: swapped, path: from, to: to})
		return 0
	case flags&^unix.RENAME_NOREPLACE != 0:
		return syscall.EINVAL
	}
	err := unix.Renameat2(unix.AT_FDCWD, af, unix.AT_FDCWD, at, unix.RENAME_NOREPLACE)
	if err == nil {
		n.d.jr.changes = append(n.d.jr.changes, change{kind: moved, path: from, to: to})
		return 0
	}
	if !errors.Is(err, unix.EEXIST) || flags&unix.RENAME_NOREPLACE != 0 {
		return fs.ToErrno(err)
	}
	// The target exists: rename(2)'s checks, then the target to a grave.
	var sf, st unix.Stat_t
	if err := unix.Lstat(af, &sf); err != nil {
		return fs.ToErrno(err)
	}
	if err := unix.Lstat(at, &st); err != nil {
		return fs.ToErrno(err)
	}
	if sf.Ino == st.Ino && sf.Dev == st.Dev {
		return 0 // two names of one file: rename does nothing
	}
	fromDir, toDir := sf.Mode&unix.S_IFMT == unix.S_IFDIR, st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case fromDir && !toDir:
		return syscall.ENOTDIR
	case !fromDir && toDir:
		return syscall.EISDIR
	case toDir:
		if errno := emptyDir(at); errno != 0 {
			return errno
		}
	}
	grave := n.d.jr.grave()
	if err := unix.Rename(at, grave); err != nil {
		return fs.ToErrno(err)
	}
	if err := unix.Rename(af, at); err != nil {
		_ = unix.Rename(grave, at)
		return fs.ToErrno(err)
	}
	n.d.jr.changes = append(n.d.jr.changes, change{kind: moved, path: from, to: to, grave: grave})
	return 0
}

// OpendirHandle opens the loopback's directory stream without its own fsync, so that a
// directory's fsync reaches Fsync.
func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{fh}, ff, 0
}

// dirHandle is a directory stream that is not a FileFsyncdirer.
type dirHandle struct{ fs.FileHandle }

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return h.FileHandle.(fs.FileReaddirenter).Readdirent(ctx)
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := h.FileHandle.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := h.FileHandle.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}
