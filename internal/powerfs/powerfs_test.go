package powerfs

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// mounted mounts a disk over a fresh directory holding files (name → content, all
// synced), and closes it at the end of the test.
func mounted(t *testing.T, o Options, files map[string]string) *Disk {
	t.Helper()
	if ok, why := Probe(); !ok {
		t.Skip("powerfs cannot mount here: " + why)
	}
	dir := filepath.Join(t.TempDir(), "data")
	require.NoError(t, os.Mkdir(dir, 0o755))
	for name, content := range files {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
	}
	if o.Tag == "" {
		o.Tag = "test:" + t.Name()
	}
	d, err := Mount(dir, o)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, d.Close(ctx))
		_, err := os.Stat(storeOf(dir))
		require.True(t, os.IsNotExist(err), "the store is removed at close")
	})
	return d
}

func powerLoss(t *testing.T, d *Disk) Loss {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := d.PowerLoss(ctx)
	require.NoError(t, err)
	return l
}

// tree is the directory's files and their contents (directories end in /).
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case e.IsDir():
			out[rel+"/"] = ""
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		}
		return nil
	}))
	return out
}

func writeFile(t *testing.T, path, content string, sync bool) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString(content)
	require.NoError(t, err)
	if sync {
		require.NoError(t, f.Sync())
	}
	require.NoError(t, f.Close())
}

func fsyncPath(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

// The test: a file written without fsync is gone after a power loss, one
// written with fsync is intact.
func TestPowerLossDropsUnsynced(t *testing.T) {
	d := mounted(t, Options{}, map[string]string{"old": "before the mount"})
	writeFile(t, filepath.Join(d.Dir(), "synced"), "fsynced", true)
	writeFile(t, filepath.Join(d.Dir(), "unsynced"), "never fsynced", false)
	require.Equal(t, map[string]string{"old": "before the mount", "synced": "fsynced", "unsynced": "never fsynced"}, tree(t, d.Dir()))
	loss := powerLoss(t, d)
	require.Equal(t, map[string]string{"old": "before the mount", "synced": "fsynced"}, tree(t, d.Dir()))
	require.Equal(t, Loss{Files: 1, Bytes: int64(len("never fsynced")), Names: 1}, loss)
	// The disk works on after the loss.
	writeFile(t, filepath.Join(d.Dir(), "after"), "x", true)
	require.Equal(t, "x", tree(t, d.Dir())["after"])
}

// With a writeback, what was written some periods ago is durable without a sync, as
// the kernel's writeback makes it; what is written after the last one is not.
func TestWritebackMakesOldWritesDurable(t *testing.T) {
	d := mounted(t, Options{Writeback: 20 * time.Millisecond}, nil)
	writeFile(t, filepath.Join(d.Dir(), "old"), "written long ago", false)
	time.Sleep(time.Second) // fifty periods: written back, however busy the machine
	loss := powerLoss(t, d)
	require.Equal(t, map[string]string{"old": "written long ago"}, tree(t, d.Dir()))
	require.Equal(t, Loss{}, loss)
}

// Overwrites, appends and truncations of synced bytes go back to the synced ones.
func TestPowerLossRestoresOverwrites(t *testing.T) {
	d := mounted(t, Options{}, map[string]string{"f": "hello world", "g": "0123456789"})
	f, err := os.OpenFile(filepath.Join(d.Dir(), "f"), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("HELLO"), 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte(", and more"), 11)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.NoError(t, os.Truncate(filepath.Join(d.Dir(), "g"), 3))
	require.Equal(t, "HELLO world, and more", tree(t, d.Dir())["f"])
	powerLoss(t, d)
	require.Equal(t, map[string]string{"f": "hello world", "g": "0123456789"}, tree(t, d.Dir()))

	// A sync in between: the loss goes back to it, not to the mount.
	f, err = os.OpenFile(filepath.Join(d.Dir(), "f"), os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("J"), 0)
	require.NoError(t, err)
	require.NoError(t, unix.Fdatasync(int(f.Fd())))
	_, err = f.WriteAt([]byte("Y"), 0)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	powerLoss(t, d)
	require.Equal(t, "Jello world", tree(t, d.Dir())["f"])
}

// Names: removals, renames over a name, new directories are undone unless synced.
func TestPowerLossUndoesNames(t *testing.T) {
	d := mounted(t, Options{}, map[string]string{"a": "1", "b": "2", "dir/c": "3"})
	p := func(n string) string { return filepath.Join(d.Dir(), n) }
	require.NoError(t, os.Rename(p("a"), p("b")))
	require.NoError(t, os.Remove(p("dir/c")))
	require.NoError(t, os.Remove(p("dir")))
	require.NoError(t, os.MkdirAll(p("new/deeper"), 0o755))
	require.NoError(t, os.Symlink("b", p("link")))
	require.NoError(t, os.Link(p("b"), p("hard")))
	require.Equal(t, map[string]string{"b": "1", "new/": "", "new/deeper/": "", "link": "1", "hard": "1"}, tree(t, d.Dir()))
	loss := powerLoss(t, d)
	require.Equal(t, map[string]string{"a": "1", "b": "2", "dir/": "", "dir/c": "3"}, tree(t, d.Dir()))
	require.Equal(t, 7, loss.Names)

	// A sync of anything commits the names before it (a journal's commit).
	require.NoError(t, os.Rename(p("a"), p("b")))
	writeFile(t, p("s"), "s", true)
	require.NoError(t, os.Remove(p("b")))
	powerLoss(t, d)
	require.Equal(t, map[string]string{"b": "1", "s": "s", "dir/": "", "dir/c": "3"}, tree(t, d.Dir()))
	graves, err := os.ReadDir(filepath.Join(storeOf(d.Dir()), "graves"))
	require.NoError(t, err)
	require.Empty(t, graves, "a committed removal deletes its grave; an undone one empties it")
}

// DirSyncOnly: a file's fsync makes its bytes durable but not its name; the
// directory's fsync does.
func TestDirSyncOnly(t *testing.T) {
	d := mounted(t, Options{DirSyncOnly: true}, nil)
	p := func(n string) string { return filepath.Join(d.Dir(), n) }
	writeFile(t, p("f"), "data", true)
	powerLoss(t, d)
	require.Empty(t, tree(t, d.Dir()))
	writeFile(t, p("f"), "data", true)
	fsyncPath(t, d.Dir())
	writeFile(t, p("g"), "more", true)
	powerLoss(t, d)
	require.Equal(t, map[string]string{"f": "data"}, tree(t, d.Dir()))
}

// O_SYNC and O_DSYNC writes are durable when they return; O_DIRECT-less plain ones are not.
func TestSyncWrites(t *testing.T) {
	d := mounted(t, Options{}, nil)
	f, err := os.OpenFile(filepath.Join(d.Dir(), "dsync"), os.O_CREATE|os.O_WRONLY|syscall.O_DSYNC, 0o644)
	require.NoError(t, err)
	_, err = f.WriteString("durable")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	powerLoss(t, d)
	require.Equal(t, map[string]string{"dsync": "durable"}, tree(t, d.Dir()))
}

// bbolt reads through a shared read-only mmap and writes with pwrite: the mapping sees
// the writes, and the synced state after a loss. The mapping is another process's: a
// page fault on a FUSE file in the process serving it can deadlock with Go's garbage
// collector (the faulting thread cannot be stopped, the server's goroutines are).
func TestMmapReaders(t *testing.T) {
	d := mounted(t, Options{}, map[string]string{"db": strings.Repeat("a", 8192)})
	db := filepath.Join(d.Dir(), "db")
	reader := exec.Command(os.Args[0], "-test.run=^TestHelperMmap$")
	reader.Env = append(os.Environ(), "POWERFS_HELPER_MMAP="+db)
	in, err := reader.StdinPipe()
	require.NoError(t, err)
	out, err := reader.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, reader.Start())
	defer reader.Wait()
	defer in.Close()
	lines := bufio.NewReader(out)
	look := func() string { // the mapping's bytes at 4096, as the reader sees them now
		_, err := in.Write([]byte("\n"))
		require.NoError(t, err)
		l, err := lines.ReadString('\n')
		require.NoError(t, err)
		return strings.TrimSpace(l)
	}
	require.Equal(t, "aaaa", look())
	f, err := os.OpenFile(db, os.O_RDWR, 0)
	require.NoError(t, err)
	_, err = f.WriteAt([]byte("bbbb"), 4096)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, "bbbb", look(), "the mapping sees a pwrite")
	in.Close()
	require.NoError(t, reader.Wait())
	powerLoss(t, d)
	require.Equal(t, strings.Repeat("a", 8192), tree(t, d.Dir())["db"])
}

// TestHelperMmap maps the file of TestMmapReaders and prints 4 of its bytes at 4096 for
// every line it reads.
func TestHelperMmap(t *testing.T) {
	path := os.Getenv("POWERFS_HELPER_MMAP")
	if path == "" {
		t.Skip("a helper process of TestMmapReaders")
	}
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	m, err := unix.Mmap(int(f.Fd()), 0, 8192, unix.PROT_READ, unix.MAP_SHARED)
	require.NoError(t, err, "a shared mmap of a powerfs file")
	defer unix.Munmap(m)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(string(m[4096:4100]))
	}
}

// A power loss waits for the disk to be free, and gives up (dropping nothing) when its
// user does not let go.
func TestPowerLossWhileInUse(t *testing.T) {
	d := mounted(t, Options{}, nil)
	f, err := os.Create(filepath.Join(d.Dir(), "open"))
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString("x")
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = d.PowerLoss(ctx)
	require.Error(t, err)
	require.Equal(t, map[string]string{"open": "x"}, tree(t, d.Dir()), "nothing dropped, still mounted")
	require.NoError(t, f.Close())
	powerLoss(t, d)
	require.Empty(t, tree(t, d.Dir()))
}

func TestWipeAndClose(t *testing.T) {
	d := mounted(t, Options{}, map[string]string{"a": "1"})
	writeFile(t, filepath.Join(d.Dir(), "b"), "2", false)
	ctx := context.Background()
	require.NoError(t, d.Wipe(ctx))
	require.Empty(t, tree(t, d.Dir()))
	writeFile(t, filepath.Join(d.Dir(), "c"), "3", false)
	dir := d.Dir()
	require.NoError(t, d.Close(ctx))
	require.Equal(t, map[string]string{"c": "3"}, tree(t, dir), "close keeps what was written, in the directory itself")
	ms, err := Mounts()
	require.NoError(t, err)
	require.False(t, slices.ContainsFunc(ms, func(m Mounted) bool { return m.Dir == dir }))
}

// TestRandomAgainstModel runs random file and name operations on a disk, with power
// losses among them, and checks after each loss that the directory is what the model
// says survives: each name as the last commit left it, each file's bytes as its last
// sync left them.
func TestRandomAgainstModel(t *testing.T) {
	d := mounted(t, Options{}, nil)
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 2))
		m := newModel()
		require.NoError(t, d.Wipe(context.Background()))
		for step := range 150 {
			op := m.step(t, r, d.Dir())
			if r.IntN(25) == 0 || step == 149 {
				powerLoss(t, d)
				m.loss()
				require.Equal(t, m.tree(), tree(t, d.Dir()), "seed %d after step %d (%s)", seed, step, op)
			}
		}
	}
}

// model is what a directory of files should hold: the current names and bytes, and the
// durable ones.
type model struct {
	names, durableNames map[string]int // name → file id
	data, durable       map[int]string // file id → bytes
	next                int
}

func newModel() *model {
	return &model{names: map[string]int{}, durableNames: map[string]int{}, data: map[int]string{}, durable: map[int]string{}}
}

func (m *model) commit() { m.durableNames = cloneMap(m.names) }

func (m *model) loss() {
	m.names = cloneMap(m.durableNames)
	m.data = map[int]string{}
	for _, id := range m.names {
		m.data[id] = m.durable[id]
	}
}

func (m *model) tree() map[string]string {
	out := map[string]string{}
	for n, id := range m.names {
		out[n] = m.data[id]
	}
	return out
}

func cloneMap[K comparable, V any](x map[K]V) map[K]V {
	out := make(map[K]V, len(x))
	for k, v := range x {
		out[k] = v
	}
	return out
}

func (m *model) step(t *testing.T, r *rand.Rand, dir string) string {
	names := make([]string, 0, len(m.names))
	for n := range m.names {
		names = append(names, n)
	}
	sort.Strings(names)
	pick := func() string { return names[r.IntN(len(names))] }
	p := func(n string) string { return filepath.Join(dir, n) }
	switch x := r.IntN(10); {
	case len(names) == 0 || x == 0: // create
		n := fmt.Sprintf("f%d", r.IntN(8))
		if _, ok := m.names[n]; ok {
			return "skip"
		}
		f, err := os.OpenFile(p(n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		m.next++
		m.names[n], m.data[m.next] = m.next, ""
		return "create " + n
	case x <= 4: // write
		n := pick()
		off := r.IntN(len(m.data[m.names[n]]) + 20)
		b := strings.Repeat(string(rune('a'+r.IntN(26))), 1+r.IntN(40))
		f, err := os.OpenFile(p(n), os.O_WRONLY, 0)
		require.NoError(t, err)
		_, err = f.WriteAt([]byte(b), int64(off))
		require.NoError(t, err)
		require.NoError(t, f.Close())
		cur := []byte(m.data[m.names[n]])
		if len(cur) < off+len(b) {
			cur = append(cur, make([]byte, off+len(b)-len(cur))...)
		}
		copy(cur[off:], b)
		m.data[m.names[n]] = string(cur)
		return fmt.Sprintf("write %s %d+%d", n, off, len(b))
	case x == 5: // truncate
		n := pick()
		size := r.IntN(len(m.data[m.names[n]]) + 10)
		require.NoError(t, os.Truncate(p(n), int64(size)))
		cur := []byte(m.data[m.names[n]])
		if len(cur) < size {
			cur = append(cur, make([]byte, size-len(cur))...)
		}
		m.data[m.names[n]] = string(cur[:size])
		return fmt.Sprintf("truncate %s %d", n, size)
	case x == 6: // fsync
		n := pick()
		fsyncPath(t, p(n))
		m.durable[m.names[n]] = m.data[m.names[n]]
		m.commit()
		return "fsync " + n
	case x == 7: // unlink
		n := pick()
		require.NoError(t, os.Remove(p(n)))
		delete(m.names, n)
		return "unlink " + n
	default: // rename, maybe over another name
		a := pick()
		b := fmt.Sprintf("f%d", r.IntN(8))
		require.NoError(t, os.Rename(p(a), p(b)))
		if a != b {
			m.names[b] = m.names[a]
			delete(m.names, a)
		}
		return "rename " + a + " " + b
	}
}

// startHelper starts a process that mounts a disk over dir, writes a file through it
// without syncing, and waits to be killed; it returns the process and its guard's pid.
func startHelper(t *testing.T, dir string) (*exec.Cmd, int) {
	t.Helper()
	if ok, why := Probe(); !ok {
		t.Skip("powerfs cannot mount here: " + why)
	}
	require.NoError(t, os.Mkdir(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kept"), []byte("k"), 0o644))
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMount$")
	cmd.Env = append(os.Environ(), "POWERFS_HELPER_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var guard int
	_, err = fmt.Fscanf(out, "mounted %d\n", &guard)
	require.NoError(t, err)
	return cmd, guard
}

// A harness killed with its disks mounted leaves nothing: the guard unmounts the dead
// mount and gives the directory its files back (what was written stays written).
func TestGuardCleansAfterKill(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cmd, _ := startHelper(t, dir)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	require.Eventually(t, func() bool {
		ms, err := Mounts()
		require.NoError(t, err)
		_, err = os.Stat(storeOf(dir))
		return !slices.ContainsFunc(ms, func(m Mounted) bool { return m.Dir == dir }) && os.IsNotExist(err)
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, map[string]string{"kept": "k", "written": "w"}, tree(t, dir))
}

// A disk whose server and guard both died is found by Mounts and released by Release,
// its directory given its files back.
func TestReleaseLeftover(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cmd, guard := startHelper(t, dir)
	require.NoError(t, syscall.Kill(guard, syscall.SIGKILL))
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()

	ms, err := Mounts()
	require.NoError(t, err)
	i := slices.IndexFunc(ms, func(m Mounted) bool { return m.Dir == dir })
	require.GreaterOrEqual(t, i, 0, "the dead server's mount is listed")
	require.Equal(t, "helper", ms[i].Tag)
	require.Equal(t, cmd.Process.Pid, ms[i].Pid)
	require.NoError(t, Release(ms[i]))
	ms, err = Mounts()
	require.NoError(t, err)
	require.False(t, slices.ContainsFunc(ms, func(m Mounted) bool { return m.Dir == dir }))
	require.Equal(t, map[string]string{"kept": "k", "written": "w"}, tree(t, dir))
}

// TestHelperMount is the dying server of TestReleaseLeftover and TestGuardCleansAfterKill.
func TestHelperMount(t *testing.T) {
	dir := os.Getenv("POWERFS_HELPER_DIR")
	if dir == "" {
		t.Skip("a helper process of TestReleaseLeftover")
	}
	d, err := Mount(dir, Options{Tag: "helper"})
	require.NoError(t, err)
	writeFile(t, filepath.Join(d.Dir(), "written"), "w", false)
	fmt.Printf("mounted %d\n", d.guard.cmd.Process.Pid)
	time.Sleep(time.Minute)
}
