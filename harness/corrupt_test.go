package harness

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/nemesis"
)

// damage does what it says, inside the file's written part: a bitflip changes exactly
// one bit before the zero tail, a truncation cuts the file short of it.
func TestDamage(t *testing.T) {
	written := make([]byte, 5000)
	for i := range written {
		written[i] = byte(i%251 + 1)
	}
	file := append(append([]byte(nil), written...), make([]byte, 60000)...) // a preallocated tail
	for seed := range uint64(50) {
		r := rand.New(rand.NewPCG(seed, seed))
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "0.wal")
			require.NoError(t, os.WriteFile(p, file, 0o600))
			what, err := damage(p, nemesis.Bitflip, r)
			require.NoError(t, err)
			got, err := os.ReadFile(p)
			require.NoError(t, err)
			require.Len(t, got, len(file))
			flipped := 0
			for i := range got {
				if d := got[i] ^ file[i]; d != 0 {
					require.Less(t, i, len(written), "the flip falls in the written part")
					flipped += bits.OnesCount8(d)
					assert.Contains(t, what, fmt.Sprintf("at byte %d ", i))
				}
			}
			require.Equal(t, 1, flipped, what)

			require.NoError(t, os.WriteFile(p, file, 0o600))
			what, err = damage(p, nemesis.Truncate, r)
			require.NoError(t, err)
			st, err := os.Stat(p)
			require.NoError(t, err)
			require.Less(t, st.Size(), int64(len(written)), what)
			assert.Contains(t, what, fmt.Sprintf("to %d bytes", st.Size()))
		})
	}
}

// writtenSize finds the last non-zero byte across read chunks, and 0 for a file of
// zeros.
func TestWrittenSize(t *testing.T) {
	for _, n := range []int{0, 1, 65535, 65536, 65537, 200000} {
		b := make([]byte, 300000)
		if n > 0 {
			b[n-1] = 7
		}
		p := filepath.Join(t.TempDir(), "f")
		require.NoError(t, os.WriteFile(p, b, 0o600))
		f, err := os.Open(p)
		require.NoError(t, err)
		got, err := writtenSize(f)
		f.Close()
		require.NoError(t, err)
		require.EqualValues(t, n, got)
	}
}

// The corrupt fault takes effect on raftnode: a bit flipped in a follower's WAL makes
// the follower refuse its data at its start (its log says the storage is corrupt), the
// heal replaces it as a new member; a truncated WAL that lost entries the member had
// acknowledged makes raft refuse it (its commit index is past its log), and it is
// replaced too. Every acknowledged write is still there, on both runtimes.
func TestCorruptTakesEffect(t *testing.T) {
	t.Parallel()
	for _, rt := range []string{"process", "docker"} {
		t.Run(rt, func(t *testing.T) {
			t.Parallel()
			testCorruptTakesEffect(t, rt)
		})
	}
}

func testCorruptTakesEffect(t *testing.T, rt string) {
	cl, rn := raftClusterWith(t, clusterOpts{runtime: rt, nodes: 3})
	for i := range 200 {
		putAcknowledged(t, cl, rn, fmt.Sprintf("k%d", i%20), fmt.Sprintf("v%d", i))
	}
	notes := injectAndHeal(t, cl, "corrupt:bitflip-log")
	t.Logf("notes: %v", notes)
	require.True(t, hasNote(notes, "corrupted", "wal bitflip at byte"), "%v", notes)
	require.True(t, hasNote(notes, "corrupt-refused", "storage corrupt"), "the flip is found: %v", notes)
	require.True(t, hasNote(notes, "replace-add", ""), "the refusing member is replaced: %v", notes)

	notes = injectAndHeal(t, cl, "corrupt:truncate-log")
	t.Logf("notes: %v", notes)
	require.True(t, hasNote(notes, "corrupted", "wal truncated from"), "%v", notes)
	for i := 180; i < 200; i++ {
		v, found := readLinearizable(t, cl, rn, fmt.Sprintf("k%d", i%20))
		require.True(t, found)
		require.Equal(t, fmt.Sprintf("v%d", i), v)
	}
	ctx := context.Background()
	require.NoError(t, cl.powers.Members.Healthy(ctx))
}

func hasNote(notes []string, event, value string) bool {
	for _, n := range notes {
		if strings.HasPrefix(n, event+" ") && strings.Contains(n, value) {
			return true
		}
	}
	return false
}
