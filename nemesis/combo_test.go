package nemesis

import (
	"context"
	"math/rand/v2"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// A combination holds its faults together and heals them in the reverse order.
func TestComboHoldsEveryPartAndHealsInReverse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		c := newFake()
		inj, err := inject(t, ctx, c, "partition+pause+clock", 3)
		require.NoError(t, err)
		c.mu.Lock()
		assert.True(t, c.partitioned, "partitioned")
		assert.NotEmpty(t, c.down, "a node paused")
		assert.NotEmpty(t, c.clocks, "a clock changed")
		c.mu.Unlock()
		assert.Equal(t, "start-partition", inj.Value.L[0], "the value names each part: %v", inj.Value)
		assert.Contains(t, inj.Value.L, "pause")
		require.NoError(t, inj.Heal(ctx))
		assert.False(t, c.partitioned)
		assert.Empty(t, c.down)
		assert.Empty(t, c.clocks)
		require.GreaterOrEqual(t, len(c.log), 4)
		assert.Equal(t, "partition true", c.log[0])
		assert.Equal(t, "partition false", c.log[len(c.log)-1], "the first part is healed last: %v", c.log)
	})
}

// A part that fails undoes the parts injected before it.
func TestComboThatFailsHalfWayLeavesNothing(t *testing.T) {
	c := newFake()
	c.failPause = true
	_, err := inject(t, context.Background(), c, "partition+pause", 1)
	require.ErrorContains(t, err, "pause")
	assert.False(t, c.partitioned, "the partition was healed: %v", c.log)
	assert.Empty(t, c.down)
}

// Every part's draws are taken before the cluster is asked anything: whoever leads, the
// same seed picks the same variants and leaves the schedule's stream in the same place.
func TestComboDrawsTheSameWhateverTheCluster(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for seed := range uint64(20) {
			draw := func(cl Cluster, c *fakeCluster) (string, uint64) {
				f := fault(t, c, "partition+clock")
				r := rand.New(rand.NewPCG(seed, 7))
				tn := f.draw(r)
				inj, err := tn.inject(context.Background(), Env{Cluster: cl, Powers: c.powers()})
				require.NoError(t, err)
				require.NoError(t, inj.Heal(context.Background()))
				return tn.value() + " " + inj.Value.L[1], r.Uint64()
			}
			c := newFake()
			k1, n1 := draw(c, c)
			c = newFake()
			k2, n2 := draw(leaderless{c}, c)
			assert.Equal(t, k1, k2, "seed %d", seed)
			assert.Equal(t, n1, n2, "seed %d", seed)
		}
	})
}

func TestComboNames(t *testing.T) {
	c := newFake()
	for _, bad := range []string{"partition+partition", "partition+", "+clock", "partition+bogus", "partition:leader+clock:sideways"} {
		_, _, err := Choose([]string{bad}, 5, c.caps())
		assert.Error(t, err, bad)
	}
	f := fault(t, c, "partition+clock")
	assert.Equal(t, "partition+clock", f.Name)
	assert.Equal(t, []Kind{Partition, Clock}, f.Kinds())
	start, end := f.draw(rand.New(rand.NewPCG(1, 1))).events()
	assert.Equal(t, "partition+clock", start)
	assert.Equal(t, "heal-partition+clock", end)
	assert.Len(t, f.Parts[1].Variants, 4, "clock gives a bump, a slow or fast clock, or a strobe")
}

// In a schedule a combination is one fault: one start and one heal in the history,
// every part in force in between.
func TestScheduleInjectsACombinationAsOneFault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newFake()
		s := newSchedule(t, c, 1, 20*time.Millisecond, "partition:leader+clock:slow")
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		require.NoError(t, s.Run(ctx))
		starts, heals := 0, 0
		for _, e := range s.Rec.(*history.Recorder).Events() {
			switch {
			case e.F == "partition:leader+clock:slow" && e.Type == history.Invoke:
				assert.Equal(t, "leader+slow", e.Value.S, "the invoke names the variants")
			case e.F == "partition:leader+clock:slow" && e.Type == history.OK:
				starts++
				require.GreaterOrEqual(t, len(e.Value.L), 3, "%v", e.Value)
				assert.Equal(t, []string{"start-partition", "leader"}, e.Value.L[:2])
				assert.Contains(t, e.Value.L, "clock-skew", "%v", e.Value)
			case e.F == "heal-partition:leader+clock:slow" && e.Type == history.OK:
				heals++
			}
		}
		assert.Positive(t, starts)
		assert.Equal(t, starts, heals)
		assert.False(t, c.partitioned)
		assert.Empty(t, c.clocks)
	})
}
