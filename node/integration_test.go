package node_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/node/client"
)

// Integration tests: real raftnode processes on 127.0.0.1. Timeouts are generous, as
// the machine may be loaded.

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes; skipped with -short")
	}
}

func TestClusterServesOnAnyNode(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3)
	c.waitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 1; i <= 9; i++ {
		require.NoError(t, c.client(uint64(i%3+1)).Put(ctx, fmt.Sprintf("k%d", i), fmt.Sprintf("v%d", i)))
	}
	for id := uint64(1); id <= 3; id++ {
		v, ok, err := c.client(id).Get(ctx, "k5")
		require.NoError(t, err)
		assert.True(t, ok)
		assert.Equal(t, "v5", v)
		_, ok, err = c.client(id).Get(ctx, "missing")
		require.NoError(t, err)
		assert.False(t, ok)
	}
	err := c.client(2).CAS(ctx, "k1", "wrong", "x")
	assert.ErrorIs(t, err, client.ErrCASMismatch)
	var d interface{ Definite() bool }
	require.True(t, errors.As(err, &d))
	assert.True(t, d.Definite())
	assert.ErrorIs(t, c.client(3).CAS(ctx, "nokey", "", "x"), client.ErrCASMismatch, "a missing key never matches")
	require.NoError(t, c.client(3).CAS(ctx, "k1", "v1", "c1"))
	for _, x := range []string{"a", "b", "c"} {
		require.NoError(t, c.client(uint64(len(x)%3+1)).Append(ctx, "l", x))
	}
	l, err := c.client(1).List(ctx, "l")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b", "c"}, l)
	l, err = c.client(2).List(ctx, "empty")
	require.NoError(t, err)
	assert.Equal(t, []string{}, l)

	st, err := c.client(1).Status(ctx)
	require.NoError(t, err)
	assert.Len(t, st.Members, 3)
	assert.NotZero(t, st.Leader)
	assert.GreaterOrEqual(t, st.Applied, uint64(14))
	require.NoError(t, c.client(1).SetClock(ctx, client.Clock{OffsetMS: 1500, Rate: 2}))
	cl, err := c.client(1).Clock(ctx)
	require.NoError(t, err)
	assert.Equal(t, client.Clock{OffsetMS: 1500, Rate: 2}, cl)
	require.NoError(t, c.client(1).SetClock(ctx, client.Clock{Rate: 1}))
}

func TestLeaderKillFailover(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3)
	leader := c.waitLeader(20 * time.Second)
	ctx := context.Background()
	require.NoError(t, eventually(10*time.Second, func(ctx context.Context) error { return c.client(leader).Put(ctx, "a", "1") }))
	c.kill(leader)
	killed := time.Now()
	other := leader%3 + 1
	require.NoError(t, eventually(15*time.Second, func(ctx context.Context) error { return c.client(other).Put(ctx, "b", "2") }))
	t.Logf("write through node %d succeeded %v after SIGKILL of leader %d", other, time.Since(killed), leader)
	v, ok, err := c.client(leader%3+1).Get(ctx, "a")
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, "1", v)

	c.start(leader, false)
	require.NoError(t, eventually(15*time.Second, func(ctx context.Context) error {
		v, _, err := c.client(leader).Get(ctx, "b")
		if err == nil && v != "2" {
			err = fmt.Errorf("restarted node read b=%q", v)
		}
		return err
	}))
}

func TestKillAllLosesNoAckedWrite(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3)
	c.waitLeader(20 * time.Second)
	// Concurrent writers on every node; SIGKILL everything mid-stream.
	type ack struct{ key, value string }
	acks := make(chan ack, 10000)
	stop := make(chan struct{})
	done := make(chan struct{})
	for w := 0; w < 6; w++ {
		go func(w int) {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k, v := fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("v%d", i)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if c.client(uint64(w%3+1)).Put(ctx, k, v) == nil {
					acks <- ack{k, v}
				}
				cancel()
			}
		}(w)
	}
	time.Sleep(2 * time.Second)
	for id := uint64(1); id <= 3; id++ {
		c.kill(id)
	}
	close(stop)
	for w := 0; w < 6; w++ {
		<-done
	}
	close(acks)
	for id := uint64(1); id <= 3; id++ {
		c.start(id, false)
	}
	c.waitLeader(20 * time.Second)
	n := 0
	for a := range acks {
		n++
		err := eventually(10*time.Second, func(ctx context.Context) error {
			v, ok, err := c.client(uint64(n%3+1)).Get(ctx, a.key)
			if err == nil && (!ok || v != a.value) {
				return fmt.Errorf("acknowledged write %s=%s lost (read %q, found %v)", a.key, a.value, v, ok)
			}
			return err
		})
		require.NoError(t, err)
	}
	require.Greater(t, n, 10, "too few writes acknowledged before the kill to mean anything")
	t.Logf("%d acknowledged writes survived a SIGKILL of every node", n)
}

func TestMemberReplacedCatchesUpFromSnapshot(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3, "--snapshot-count", "20")
	leader := c.waitLeader(20 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	victim := leader%3 + 1
	leaderPeers := c.peers(leader) // names the victim's old id, not its new one
	for i := 0; i < 30; i++ {
		require.NoError(t, c.client(leader).Put(ctx, fmt.Sprintf("k%d", i), "before"))
	}
	require.NoError(t, c.client(leader).RemoveMember(ctx, victim))
	select {
	case <-c.nodes[victim].done: // a removed node exits on its own
		c.nodes[victim].cmd = nil
	case <-time.After(10 * time.Second):
		t.Fatalf("removed node %d did not exit", victim)
	}
	require.NoError(t, os.RemoveAll(c.nodes[victim].dataDir))
	for i := 0; i < 50; i++ {
		require.NoError(t, c.client(leader).Put(ctx, fmt.Sprintf("k%d", i), "after"))
	}
	// Back as a new member (new id, same addresses, empty data dir), through a
	// follower's API, the way a control plane replaces a member.
	newID := uint64(4)
	p := c.define(newID)
	p.peerAddr, p.clientAddr = c.nodes[victim].peerAddr, c.nodes[victim].clientAddr
	delete(c.nodes, victim)
	require.NoError(t, c.client(6-leader-victim).AddMember(ctx, newID, "http://"+p.peerAddr))
	c.start(newID, true)
	require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
		v, _, err := c.client(newID).Get(ctx, "k49")
		if err == nil && v != "after" {
			err = fmt.Errorf("new member read k49=%q", v)
		}
		return err
	}))
	st, err := c.client(newID).Status(ctx)
	require.NoError(t, err)
	assert.Len(t, st.Members, 3)
	_, err = os.Stat(filepath.Join(p.dataDir, "snap"))
	assert.NoError(t, err, "the new member should have caught up from a snapshot")
	log, _ := os.ReadFile(p.logPath)
	assert.Contains(t, string(log), "installed snapshot")

	// The joined member restarts from its own data like any other.
	c.kill(newID)
	c.start(newID, true)
	require.NoError(t, c.client(leader).Put(ctx, "k0", "restarted"))
	require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
		return wantValue(ctx, c.client(newID), "k0", "restarted")
	}))

	// An old member restarted with the --peers it was first given (which cannot name the
	// new member) learns where the new member is from its snapshot: with the third
	// member down, the two of them still make a quorum.
	other := 6 - leader - victim
	c.kill(other)
	c.kill(leader)
	c.startWithPeers(leader, leaderPeers, false)
	require.NoError(t, eventually(20*time.Second, func(ctx context.Context) error {
		return c.client(leader).Put(ctx, "k1", "two of three")
	}))
	require.NoError(t, wantValue(ctx, c.client(newID), "k1", "two of three"))
}

func TestBadFlagsExit2(t *testing.T) {
	skipShort(t)
	t.Parallel()
	bin := raftnodeBin(t)
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	require.NoError(t, os.WriteFile(ro, nil, 0o444)) // a file where a dir should be
	base := []string{"--id", "1", "--peers", "1=http://127.0.0.1:1", "--listen-peer", "127.0.0.1:0",
		"--listen-client", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "d")}
	with := func(kv ...string) []string {
		out := append([]string{}, base...)
		for i := 0; i < len(kv); i += 2 {
			for j := 0; j < len(out); j += 2 {
				if out[j] == kv[i] {
					out[j+1] = kv[i+1]
				}
			}
		}
		return out
	}
	cases := map[string][]string{
		"unknown flag":       append(with(), "--bogus"),
		"id not in peers":    with("--id", "9"),
		"zero id":            with("--id", "0"),
		"bad peers":          with("--peers", "1=notaurl"),
		"bad unsafe":         append(with(), "--unsafe", "yolo"),
		"data dir is a file": with("--data-dir", filepath.Join(ro, "sub")),
		"no data dir":        with("--data-dir", ""),
		"non-numeric id":     with("--id", "x"),
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			var stderr bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			require.True(t, errors.As(err, &ee), "want exit 2, got %v", err)
			assert.Equal(t, 2, ee.ExitCode())
			out := strings.TrimSpace(stderr.String())
			assert.NotContains(t, out, "panic")
			assert.Equal(t, 1, len(strings.Split(out, "\n")), "want one line, got %q", out)
		})
	}
}

func TestRemoveLeaderThenPauseFollower(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3)
	leader := c.waitLeader(20 * time.Second)
	f := leader%3 + 1
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, c.client(f).Put(ctx, "a", "1"))
	// Removing the leader through a follower: it steps down and exits; the others go on.
	require.NoError(t, c.client(f).RemoveMember(ctx, leader))
	select {
	case <-c.nodes[leader].done:
		c.nodes[leader].cmd = nil
	case <-time.After(10 * time.Second):
		t.Fatalf("removed leader %d did not exit", leader)
	}
	require.NoError(t, eventually(15*time.Second, func(ctx context.Context) error { return c.client(f).Put(ctx, "a", "2") }))
	st, err := c.client(f).Status(ctx)
	require.NoError(t, err)
	assert.Len(t, st.Members, 2)

	// A paused node (SIGSTOP) blocks the two-node cluster; after SIGCONT it resumes
	// with one tick, not a burst of them, and everything committed is still there.
	other := 6 - leader - f
	c.pause(other)
	t0 := time.Now()
	err = c.client(f).Put(ctxT(2*time.Second), "a", "3")
	require.Error(t, err, "no quorum while node %d is paused (answered after %v)", other, time.Since(t0))
	time.Sleep(2 * time.Second)
	require.NoError(t, c.nodes[other].cmd.Process.Signal(syscall.SIGCONT))
	require.NoError(t, eventually(15*time.Second, func(ctx context.Context) error {
		return c.client(other).Put(ctx, "b", "after-pause")
	}))
	v, _, err := c.client(f).Get(ctx, "a")
	require.NoError(t, err)
	assert.Contains(t, []string{"2", "3"}, v, "a=3 was indeterminate; anything else is wrong")
}

// Rounds of SIGKILLs (one node, or all) under a steady write load, with frequent
// snapshots so that restarts go through compacted logs and snapshot installs: no
// acknowledged write may be lost.
func TestRepeatedKillsWithSnapshotsLoseNothing(t *testing.T) {
	skipShort(t)
	t.Parallel()
	c := newCluster(t, 3, "--snapshot-count", "50")
	c.waitLeader(20 * time.Second)
	rng := rand.New(rand.NewSource(7))
	acked := map[string]string{}
	var mu sync.Mutex
	write := func(stop <-chan struct{}, w int) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Each writer owns its keys and writes them in turn, so the last
			// acknowledged value of a key is the one to read back.
			k, v := fmt.Sprintf("w%d-k%d", w, i%40), fmt.Sprintf("v%d", i)
			if c.client(uint64(w%3+1)).Put(ctxT(2*time.Second), k, v) == nil {
				mu.Lock()
				acked[k] = v
				mu.Unlock()
			}
		}
	}
	for round := 0; round < 3; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 3; w++ {
			wg.Add(1)
			go func(w int) { defer wg.Done(); write(stop, w) }(w)
		}
		time.Sleep(1500 * time.Millisecond)
		victims := []uint64{uint64(rng.Intn(3) + 1)}
		if round == 2 {
			victims = []uint64{1, 2, 3}
		}
		for _, id := range victims {
			c.kill(id)
		}
		time.Sleep(time.Duration(rng.Intn(1000)) * time.Millisecond)
		close(stop)
		wg.Wait()
		for _, id := range victims {
			c.start(id, false)
		}
		c.waitLeader(20 * time.Second)
	}
	require.Greater(t, len(acked), 20)
	// The value read must be the last acknowledged one or a later write of the same
	// writer (a write that failed indefinitely, e.g. cut by a kill, may have committed).
	seq := func(v string) (n int) { _, _ = fmt.Sscanf(v, "v%d", &n); return n }
	for k, v := range acked {
		require.NoError(t, eventually(10*time.Second, func(ctx context.Context) error {
			for id := uint64(1); id <= 3; id++ {
				got, ok, err := c.client(id).Get(ctx, k)
				if err != nil {
					return fmt.Errorf("node %d: %w", id, err)
				}
				if !ok || seq(got) < seq(v) {
					return fmt.Errorf("node %d: read %s=%q, but %q was acknowledged", id, k, got, v)
				}
			}
			return nil
		}))
	}
	installs := 0
	for _, p := range c.nodes {
		b, _ := os.ReadFile(p.logPath)
		installs += strings.Count(string(b), "installed snapshot")
	}
	t.Logf("%d keys' last acknowledged writes intact on every node; %d snapshot installs", len(acked), installs)
}
