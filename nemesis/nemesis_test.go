package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

func seeded(seed uint64) func(int, func(i, j int)) { return rand.New(rand.NewPCG(seed, seed)).Shuffle }

// sees returns the nodes x can exchange packets with (itself included).
func sees(g Grudge, nodes []string, x string) []string {
	var out []string
	for _, y := range nodes {
		if x == y || (!slices.Contains(g[x], y) && !slices.Contains(g[y], x)) {
			out = append(out, y)
		}
	}
	return out
}

func TestShapes(t *testing.T) {
	for _, shape := range Shapes {
		for _, n := range []int{3, 5, 7} {
			t.Run(fmt.Sprintf("%s/%d", shape, n), func(t *testing.T) {
				nodes := five
				if n != 5 {
					nodes = nil
					for i := 1; i <= n; i++ {
						nodes = append(nodes, fmt.Sprintf("n%d", i))
					}
				}
				g, err := MakeGrudge(shape, nodes, seeded(uint64(n)))
				require.NoError(t, err)
				cut := false
				for _, x := range nodes {
					for _, y := range g[x] {
						assert.Contains(t, g[y], x, "grudges are symmetric")
						assert.NotEqual(t, x, y, "a node never drops itself")
						cut = true
					}
				}
				if shape == "majorities-ring" && n == 3 {
					return // every pair is adjacent in a ring of three
				}
				assert.True(t, cut, "the shape cuts something")
				switch shape {
				case "one", "leader":
					lonely := 0
					for _, x := range nodes {
						if len(sees(g, nodes, x)) == 1 {
							lonely++
						}
					}
					assert.Equal(t, 1, lonely, "exactly one node is isolated")
				case "majorities-ring":
					seen := map[string]bool{}
					for _, x := range nodes {
						s := sees(g, nodes, x)
						assert.Greater(t, len(s), n/2, "%s sees a majority", x)
						seen[fmt.Sprint(s)] = true
					}
					assert.Len(t, seen, n, "no two nodes see the same majority")
				case "bridge":
					bridges := 0
					for _, x := range nodes {
						if len(sees(g, nodes, x)) == n {
							bridges++
						}
					}
					assert.Equal(t, 1, bridges, "one node sees both sides")
				case "halves", "random-halves":
					for _, x := range nodes {
						assert.Contains(t, []int{n / 2, n - n/2}, len(sees(g, nodes, x)))
					}
				}
			})
		}
	}
	_, err := MakeGrudge("triangle", five, seeded(1))
	assert.Error(t, err)
}

func TestLeaderShapeIsolatesLeader(t *testing.T) {
	g, err := MakeGrudge("leader", []string{"n3", "n1", "n2"}, seeded(1))
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"n1", "n2"}, g["n3"])
}

func runSchedule(t *testing.T, c *fakeCluster, seed uint64, d time.Duration) ([]history.Event, error) {
	t.Helper()
	faults, _, err := Choose([]string{"partition", "kill", "pause"}, 5, c.caps())
	require.NoError(t, err)
	rec := history.NewRecorder(time.Now(), nil)
	s := &Schedule{Faults: faults, Interval: 10 * time.Millisecond, Cluster: c, Powers: c.powers(),
		Rand: rand.New(rand.NewPCG(seed, 0)), Rec: rec}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err = s.Run(ctx)
	return rec.Events(), err
}

func TestScheduleHealsEverythingAndRecordsPairs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		events, err := runSchedule(t, c, 42, 300*time.Millisecond)
		require.NoError(t, err)
		assert.Empty(t, c.down, "every killed or paused node is back")
		assert.False(t, c.partitioned, "the partition is healed")
		require.NotEmpty(t, events)
		open := map[string]bool{}
		fs := map[string]bool{}
		assert.Equal(t, history.NemesisStart, events[0].F, "the schedule's start comes first")
		for _, e := range events[1:] {
			require.True(t, e.IsNemesis())
			fs[e.F] = true
			if e.Type == history.Invoke {
				open[e.F] = true
			} else {
				assert.Equal(t, history.OK, e.Type, "%+v", e)
				delete(open, e.F)
			}
		}
		assert.Empty(t, open, "every invoke has its completion")
		assert.True(t, fs["start-partition"] && fs["stop-partition"] && fs["kill"] && fs["start"] && fs["pause"] && fs["resume"], "%v", fs)
	})
}

// newSchedule is a schedule of entries on c, driven step by step by the tests.
func newSchedule(t *testing.T, c *fakeCluster, seed uint64, interval time.Duration, entries ...string) *Schedule {
	t.Helper()
	faults, _, err := Choose(entries, 5, c.caps())
	require.NoError(t, err)
	return &Schedule{Faults: faults, Interval: interval, Cluster: c, Powers: c.powers(),
		Rand: rand.New(rand.NewPCG(seed, 0)), Rec: history.NewRecorder(time.Now(), nil)}
}

func TestScheduleIsDeterministicBySeed(t *testing.T) {
	seq := func(seed uint64) []string {
		c := newFake()
		s := newSchedule(t, c, seed, time.Millisecond, "partition", "kill", "pause")
		// Drive the same steps Run takes, without its timing.
		var steps []string
		for range 20 {
			st := s.next()
			inj, err := s.inject(context.Background(), st)
			require.NoError(t, err)
			require.NoError(t, s.heal(st.turn, inj))
			// What was injected where (kills run in parallel: the fake's log order is not).
			steps = append(steps, fmt.Sprint(st.quiet, st.hold, st.turn.fault.Name, st.turn.value(), inj.Nodes, inj.Value))
		}
		return steps
	}
	assert.Equal(t, seq(7), seq(7))
	assert.NotEqual(t, seq(7), seq(8))
}

func TestScheduleTakesEveryEntryEachRound(t *testing.T) {
	s := newSchedule(t, newFake(), 3, 5*time.Second, "partition", "kill", "pause")
	var elapsed time.Duration
	for round := range 10 {
		seen := map[string]bool{}
		for range s.Faults {
			st := s.next()
			assert.GreaterOrEqual(t, st.quiet, time.Second)
			assert.Less(t, st.quiet, 2*time.Second)
			assert.GreaterOrEqual(t, st.hold, 2500*time.Millisecond)
			assert.Less(t, st.hold, 4500*time.Millisecond)
			seen[st.turn.fault.Name] = true
			if round == 0 {
				elapsed += st.quiet + st.hold
			}
		}
		assert.Len(t, seen, len(s.Faults), "round %d has every entry once", round)
	}
	// The third fault of the first round starts within 3 quiet times and 2 holds.
	assert.Less(t, elapsed, 3*2*time.Second+3*4500*time.Millisecond)
}

func TestScheduleWeighsEntriesNotVariants(t *testing.T) {
	s := newSchedule(t, newFake(), 9, time.Second, "clock", "pause")
	counts := map[string]int{}
	variants := map[string]int{}
	for range 200 {
		st := s.next()
		counts[st.turn.fault.Name]++
		if st.turn.fault.Name == "clock" {
			variants[st.turn.value()]++
		}
	}
	assert.Equal(t, map[string]int{"clock": 100, "pause": 100}, counts, "each entry once a round")
	assert.Len(t, variants, 4, "every clock variant comes up: %v", variants)
	assert.Greater(t, variants["bump"], variants["slow"], "by weight: %v", variants)
}

func TestFailedInjectionStopsTheScheduleLoudly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		c.failPause = true
		s := newSchedule(t, c, 1, time.Millisecond, "pause")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.Run(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "freezer unavailable")
		evs := s.Rec.(*history.Recorder).Events()
		require.Len(t, evs, 3, "start, invoke, fail")
		assert.Equal(t, history.Fail, evs[2].Type, "the history never claims a fault that was not injected")
		assert.Empty(t, c.down)
	})
}

// panicky is a fault whose Inject or Heal panics.
func panicky(inInject bool) *Fault {
	d := &Def{Kind: "panicky", Start: "start-panicky", End: "stop-panicky", Variants: []Variant{{Name: "x", Weight: 1}},
		Inject: func(context.Context, Env, Variant) (Injection, error) {
			if inInject {
				panic("inject went wrong")
			}
			return Injection{Heal: func(context.Context) error { panic("heal went wrong") }}, nil
		}}
	return &Fault{Name: "panicky", Parts: []Part{{Def: d, Variants: d.Variants}}}
}

func TestAPanickingFaultIsAnErrorNotACrash(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for _, inInject := range []bool{true, false} {
			rec := history.NewRecorder(time.Now(), nil)
			s := &Schedule{Faults: []*Fault{panicky(inInject)}, Interval: time.Millisecond, Cluster: newFake(),
				Rand: rand.New(rand.NewPCG(1, 1)), Rec: rec}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := s.Run(ctx)
			cancel()
			require.Error(t, err, "inInject %v", inInject)
			assert.Contains(t, err.Error(), "panicked")
			evs := rec.Events()
			last := evs[len(evs)-1]
			assert.Equal(t, history.Fail, last.Type, "the failed step is recorded: %+v", last)
		}
	})
}

// Faults are held and healed in a defer: a schedule cancelled while a fault is held
// heals it before Run returns.
func TestACancelledScheduleHealsTheFaultInForce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		s := newSchedule(t, c, 1, 2*time.Second, "kill")
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		time.Sleep(1100 * time.Millisecond) // past the longest quiet time: the kill is in force
		synctest.Wait()
		require.NotEmpty(t, s.Active(), "a kill is in force")
		require.NotEmpty(t, c.down)
		cancel()
		require.NoError(t, <-done)
		assert.Empty(t, c.down, "every killed node was started again")
	})
}

// leaderless is a cluster that knows no leader.
type leaderless struct{ *fakeCluster }

func (leaderless) Leader(context.Context) (string, error) { return "", nil }

// A partition draws the same random numbers whether or not a leader is known, so a seed
// gives the same schedule after it (issue: a "leader" partition that found no leader
// fell back to "one" and drew more).
func TestPartitionDrawsTheSameWhateverTheCluster(t *testing.T) {
	c := newFake()
	for seed := range uint64(20) {
		next := func(cl Cluster) uint64 {
			env := Env{Cluster: cl, Powers: c.powers(), Rand: rand.New(rand.NewPCG(seed, 7))}
			v, _ := partitionDef.Variant("leader")
			_, err := injectPartition(context.Background(), env, v)
			require.NoError(t, err)
			return env.Rand.Uint64()
		}
		assert.Equal(t, next(c), next(leaderless{c}), "seed %d", seed)
	}
}

// wanderingLeader names another leader, or none, each time it is asked, and is slow to
// answer: a cluster whose leader changes while faults are injected.
type wanderingLeader struct {
	*fakeCluster
	calls atomic.Int64
}

func (c *wanderingLeader) Leader(context.Context) (string, error) {
	time.Sleep(3 * time.Millisecond) // asking takes time: the timeline must not drift by it
	n := c.calls.Add(1)
	if n%3 == 0 {
		return "", nil
	}
	return five[n%int64(len(five))], nil
}

// planned is what a replay must reproduce of one fault: kind and variant, the nodes when
// they were drawn at random (not the leader), and the start offset from the schedule's
// start.
type planned struct {
	what   string
	offset time.Duration
}

func timeline(t *testing.T, cl Cluster, seed uint64) []planned {
	t.Helper()
	c := newFake()
	faults, _, err := Choose([]string{"partition", "kill", "pause"}, 5, c.caps())
	require.NoError(t, err)
	rec := history.NewRecorder(time.Now(), nil)
	s := &Schedule{Faults: faults, Interval: 40 * time.Millisecond, Cluster: cl, Powers: c.powers(),
		Rand: rand.New(rand.NewPCG(seed, 0)), Rec: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
	defer cancel()
	require.NoError(t, s.Run(ctx))
	var begin, invoked int64 = -1, 0
	var out []planned
	for _, e := range rec.Events() {
		if e.F == history.NemesisStart {
			begin = e.Time
		}
		if e.Type == history.Invoke {
			invoked = e.Time // an injection's ok follows its invoke
		}
		if e.Type != history.OK || e.Value.IsNone() {
			continue // heals have no value: their times follow the starts
		}
		require.GreaterOrEqual(t, begin, int64(0), "the schedule records its start first")
		variant, detail := e.Value.S, ""
		if e.Value.Kind == history.List {
			variant, detail = e.Value.L[0], strings.Join(e.Value.L[1:], " ")
		}
		what := e.F + ":" + variant
		if variant != "leader" {
			what += " " + detail + " on " + e.Node // drawn at random: must be the same nodes
		}
		out = append(out, planned{what: what, offset: time.Duration(invoked - begin)})
	}
	return out
}

// Replay by seed: the same faults, in order, on the same randomly drawn nodes, at the
// same offsets, whether the cluster knows its leader, or its leader changes, or it has
// none (issue: a leader partition that found no leader drew more numbers, and every
// fault after it diverged). In a bubble of synthetic time the offsets are exact: a
// cluster that is slow to answer moves no fault after it.
func TestScheduleTimelineIsTheSeedsWhateverTheClusterAnswers(t *testing.T) {
	for _, seed := range []uint64{3, 4} {
		synctest.Test(t, func(t *testing.T) {
			a := timeline(t, newFake(), seed)
			b := timeline(t, &wanderingLeader{fakeCluster: newFake()}, seed)
			c := timeline(t, leaderless{newFake()}, seed)
			n := min(len(a), len(b), len(c)) - 1 // the last may be cut by the deadline
			require.GreaterOrEqual(t, n, 8, "enough faults to compare")
			for i := range n {
				assert.Equal(t, a[i].what, b[i].what, "seed %d fault %d", seed, i)
				assert.Equal(t, a[i].what, c[i].what, "seed %d fault %d", seed, i)
				assert.Equal(t, a[i].offset, b[i].offset, "seed %d fault %d %s starts on time", seed, i, a[i].what)
				assert.Equal(t, a[i].offset, c[i].offset, "seed %d fault %d %s starts on time", seed, i, a[i].what)
			}
		})
	}
}

// A pause that fails after it froze its node is undone too: no node is left frozen.
func TestAPauseThatFailsHalfWayIsUndone(t *testing.T) {
	for seed := range uint64(10) {
		c := newFake()
		c.freezeThenFail = true
		_, err := inject(t, context.Background(), c, "pause", seed)
		require.Error(t, err)
		assert.Empty(t, c.down, "seed %d: every node it froze is resumed", seed)
	}
}
