package nemesis

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

// The corrupt fault damages a minority of followers, never the leader, and never so
// many that with the members still down a majority would be damaged.
func TestCorruptTargetsAMinorityOfFollowers(t *testing.T) {
	c := newFake()
	env := Env{Cluster: c, Powers: c.powers()}
	for seed := range uint64(50) {
		env.Rand = rand.New(rand.NewPCG(seed, 1))
		nodes, err := corruptTargets(context.Background(), env)
		require.NoError(t, err)
		require.Len(t, nodes, 2, "a minority of five")
		require.NotContains(t, nodes, "n2", "the leader is spared")
	}
	c.down["n1"] = "killed" // refused its data, not replaced
	for seed := range uint64(20) {
		env.Rand = rand.New(rand.NewPCG(seed, 2))
		nodes, err := corruptTargets(context.Background(), env)
		require.NoError(t, err)
		require.Len(t, nodes, 1)
		require.NotContains(t, nodes, "n1")
		require.NotContains(t, nodes, "n2")
	}
	c.down["n3"] = "killed"
	_, err := corruptTargets(context.Background(), env)
	require.ErrorContains(t, err, "n1,n3 still down")
}

// fakeFiles is a Corrupter that checks the node is down when damaged.
type fakeFiles struct {
	c       *fakeCluster
	mu      sync.Mutex
	damaged []string
	none    bool // no file of the kind yet
}

func (f *fakeFiles) Corrupt(_ context.Context, node string, kind FileKind, d Damage, _ *rand.Rand) (string, bool, error) {
	if f.c.Running(node) {
		return "", false, errRunning
	}
	if f.none {
		return "", false, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.damaged = append(f.damaged, node+" "+string(d)+" "+string(kind))
	return string(d) + " of a " + string(kind) + " file", true, nil
}

var errRunning = errors.New("damaged while running")

// An injection damages its nodes while they are down and the heal starts them; a node
// with no such file yet is noted and started all the same.
func TestCorruptDamagesWhileDown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		files := &fakeFiles{c: c}
		p := c.powers()
		p.Files = files
		var notes []string
		env := Env{Cluster: c, Powers: p, Rand: rand.New(rand.NewPCG(1, 1)), Note: func(f, n, v string) { notes = append(notes, f+" "+n) }}
		v, _ := corruptDef.Variant("truncate-log")
		inj, err := injectCorrupt(context.Background(), env, v)
		require.NoError(t, err)
		require.Len(t, files.damaged, 2)
		for _, n := range inj.Nodes {
			require.False(t, c.Running(n), "down until the heal")
			require.Contains(t, files.damaged, n+" truncate log")
		}
		require.NoError(t, inj.Heal(context.Background()))
		for _, n := range inj.Nodes {
			require.True(t, c.Running(n))
		}
		require.Equal(t, 2, countPrefix(notes, "corrupted "))

		files.none, notes = true, nil
		inj, err = injectCorrupt(context.Background(), env, v)
		require.NoError(t, err)
		require.Equal(t, 2, countPrefix(notes, "corrupt-none "))
		require.NoError(t, inj.Heal(context.Background()))
	})
}

// A damaged member may refuse its data long after its start (etcd compares hashes with
// its peers first): the heal, waiting for the members to catch up, sees it exit then and
// replaces it, rather than wait on a member that will never serve.
func TestCorruptReplacesAMemberThatRefusesLate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		c.wholeToBeHealthy = true
		p := c.powers()
		p.Files = &fakeFiles{c: c}
		var mu sync.Mutex
		var notes []string
		env := Env{Cluster: c, Powers: p, Rand: rand.New(rand.NewPCG(1, 1)), Note: func(f, n, v string) {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, f+" "+n)
		}}
		v, _ := corruptDef.Variant("bitflip-state")
		inj, err := injectCorrupt(context.Background(), env, v)
		require.NoError(t, err)
		late := inj.Nodes[0]
		go func() { // started by the heal, it checks its data for 19 s, serving nothing, then refuses it
			for !c.Running(late) {
				time.Sleep(100 * time.Millisecond)
			}
			c.mu.Lock()
			c.unhealth = fmt.Errorf("%s is checking its data", late)
			c.mu.Unlock()
			time.Sleep(19 * time.Second)
			c.mu.Lock()
			c.unhealth = nil
			c.mu.Unlock()
			_ = c.set(late, "killed", "refuse")
		}()
		ctx, cancel := context.WithTimeout(context.Background(), corruptDef.HealLimit)
		defer cancel()
		require.NoError(t, inj.Heal(ctx))
		mu.Lock()
		defer mu.Unlock()
		require.Contains(t, notes, "corrupt-refused "+late)
		require.Contains(t, c.steps, "remove "+late)
		require.Contains(t, c.steps, "add "+late)
		synctest.Wait()
	})
}

func countPrefix(s []string, p string) int {
	return len(slices.DeleteFunc(slices.Clone(s), func(x string) bool { return !strings.HasPrefix(x, p) }))
}

// fakeFailpoints fires a panic at once (the node goes down) unless it is told the
// point is never reached; it keeps what is armed.
type fakeFailpoints struct {
	c       *fakeCluster
	unreach bool
	// refuse is how many arming calls find no endpoint yet (a node still starting).
	refuse int
	mu     sync.Mutex
	armed  map[string]string
}

func (f *fakeFailpoints) Failpoints(context.Context, string) ([]Failpoint, error) {
	return []Failpoint{{Name: "raftBeforeSave"}}, nil
}

func (f *fakeFailpoints) SetFailpoint(_ context.Context, node, name, term string) error {
	f.mu.Lock()
	if f.refuse > 0 {
		f.refuse--
		f.mu.Unlock()
		return errors.New("no gofail endpoint (connection refused)")
	}
	f.armed[node+"/"+name] = term
	f.mu.Unlock()
	if strings.HasPrefix(term, "panic") && !f.unreach {
		return f.c.set(node, "killed", "failpoint panic")
	}
	return nil
}

func (f *fakeFailpoints) ClearFailpoint(_ context.Context, node, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.armed, node+"/"+name)
	return nil
}

// A panic takes its node down and the heal starts it; a point never reached is noted
// and disarmed after the wait, and the node left running; a sleep stays armed until
// the heal.
func TestFailpointPanicsStallsAndMisses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		fp := &fakeFailpoints{c: c, armed: map[string]string{}}
		p := c.powers()
		p.Failpoints = fp
		var notes []string
		env := Env{Cluster: c, Powers: p, Rand: rand.New(rand.NewPCG(1, 1)), Note: func(f, n, v string) { notes = append(notes, f+" "+n+" "+v) }}
		ctx := context.Background()

		v, _ := failpointDef.Variant("panic-leader")
		inj, err := injectFailpoint(ctx, env, v)
		require.NoError(t, err)
		require.Equal(t, []string{"n2"}, inj.Nodes)
		require.False(t, c.Running("n2"))
		require.Equal(t, 1, countPrefix(notes, "failpoint-crashed n2"))
		require.NoError(t, inj.Heal(ctx))
		require.True(t, c.Running("n2"))
		require.Empty(t, fp.armed)

		fp.unreach, notes = true, nil
		inj, err = injectFailpoint(ctx, env, v)
		require.NoError(t, err)
		require.True(t, c.Running("n2"))
		require.Equal(t, 1, countPrefix(notes, "failpoint-missed n2"), "%v", notes)
		require.Empty(t, fp.armed, "disarmed")
		require.NoError(t, inj.Heal(ctx))

		v, _ = failpointDef.Variant("sleep-follower")
		inj, err = injectFailpoint(ctx, env, v)
		require.NoError(t, err)
		require.NotEqual(t, "n2", inj.Nodes[0])
		require.Len(t, fp.armed, 1)
		for _, term := range fp.armed {
			require.True(t, strings.HasPrefix(term, "sleep("), term)
		}
		require.NoError(t, inj.Heal(ctx))
		require.Empty(t, fp.armed)

		// A node the nemesis restarted a moment ago may not serve gofail's endpoint
		// yet: the fault waits for it rather than breaking the run.
		fp.unreach, fp.refuse = false, 5
		v, _ = failpointDef.Variant("panic-leader")
		inj, err = injectFailpoint(ctx, env, v)
		require.NoError(t, err)
		require.False(t, c.Running("n2"), "armed once the endpoint answered, and fired")
		require.NoError(t, inj.Heal(ctx))
		fp.refuse = 1 << 30
		_, err = injectFailpoint(ctx, env, v)
		require.ErrorContains(t, err, "connection refused", "a node that never answers is still an error")
		synctest.Wait()
	})
}
