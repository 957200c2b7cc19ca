package powerfs

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestFileRestore checks the undo of one file against a model, without FUSE: random
// writes, growths and truncations through a plain descriptor, each announced to save as
// the disk does, and after any number of them restore gives back the synced bytes.
func TestFileRestore(t *testing.T) {
	for seed := range uint64(40) {
		r := rand.New(rand.NewPCG(seed, 1))
		path := filepath.Join(t.TempDir(), "f")
		synced := make([]byte, r.IntN(300))
		for i := range synced {
			synced[i] = byte(r.IntN(256))
		}
		require.NoError(t, os.WriteFile(path, synced, 0o644))
		fd, err := unix.Open(path, unix.O_RDWR, 0)
		require.NoError(t, err)
		undoFd, err := unix.Dup(fd)
		require.NoError(t, err)
		f, err := newFile(undoFd)
		require.NoError(t, err)
		for range 1 + r.IntN(30) {
			switch r.IntN(4) {
			case 0, 1, 2:
				off := int64(r.IntN(400))
				data := bytes.Repeat([]byte{byte(r.IntN(256))}, 1+r.IntN(80))
				require.NoError(t, f.save(off, int64(len(data))))
				_, err := unix.Pwrite(fd, data, off)
				require.NoError(t, err)
			case 3:
				size := int64(r.IntN(400))
				require.NoError(t, f.save(size, f.synced))
				require.NoError(t, unix.Ftruncate(fd, size))
			}
		}
		_, err = f.restore()
		require.NoError(t, err)
		f.close()
		unix.Close(fd)
		got, err := os.ReadFile(path)
		require.NoError(t, err)
		require.Equal(t, synced, got, "seed %d", seed)
		// The pre-images never overlap: each synced byte is kept at most once.
		require.LessOrEqual(t, f.held, int64(len(synced)), "seed %d", seed)
	}
}
