package nemesis

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func combo(t *testing.T, kind string) Combo {
	t.Helper()
	fs, err := ByName([]string{kind})
	require.NoError(t, err)
	require.Len(t, fs, 1)
	c, ok := fs[0].(Combo)
	require.True(t, ok, "%s is a Combo", kind)
	return c
}

// A combination holds its faults together and heals them in the reverse order.
func TestComboHoldsEveryPartAndHealsInReverse(t *testing.T) {
	ctx := context.Background()
	c := newHookCluster()
	inj, err := combo(t, "partition+pause+clock").Inject(ctx, env(c, 3))
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
}

// A part that fails undoes the parts injected before it.
func TestComboThatFailsHalfWayLeavesNothing(t *testing.T) {
	c := &fakeCluster{failPause: true}
	_, err := combo(t, "partition+pause").Inject(context.Background(), env(c, 1))
	require.ErrorContains(t, err, "pause")
	assert.False(t, c.partitioned, "the partition was healed: %v", c.log)
	assert.Empty(t, c.down)
}

// Every part's draws are taken before the cluster is asked anything: whoever leads, the
// same seed picks the same variants and leaves the stream in the same place.
func TestComboDrawsTheSameWhateverTheCluster(t *testing.T) {
	for seed := range uint64(20) {
		draw := func(c Cluster) (string, uint64) {
			env := Env{Cluster: c, Rand: rand.New(rand.NewPCG(seed, 7))}
			inj, err := combo(t, "partition+clock").Inject(context.Background(), env)
			require.NoError(t, err)
			require.NoError(t, inj.Heal(context.Background()))
			var kinds string
			for _, v := range inj.Value.L {
				if v == "start-partition" || v == "start-snapshot-partition" || v[:min(len(v), 6)] == "clock-" {
					kinds += v + " "
				}
			}
			return kinds + inj.Value.L[1], env.Rand.Uint64()
		}
		k1, n1 := draw(newHookCluster())
		k2, n2 := draw(&leaderlessClock{newHookCluster()})
		assert.Equal(t, k1, k2, "seed %d", seed)
		assert.Equal(t, n1, n2, "seed %d", seed)
	}
}

type leaderlessClock struct{ *hookCluster }

func (leaderlessClock) Leader(context.Context) (string, error) { return "", nil }

func TestComboNames(t *testing.T) {
	for _, bad := range []string{"partition+partition", "partition+", "+clock", "partition+bogus"} {
		_, err := ByName([]string{bad})
		assert.Error(t, err, bad)
	}
	c := combo(t, "partition+clock")
	assert.Equal(t, "partition+clock", c.Name())
	start, end := c.Events()
	assert.Equal(t, "partition+clock", start)
	assert.Equal(t, "heal-partition+clock", end)
	assert.Len(t, c.Parts[1], 3, "clock gives a bump, a skew or a strobe")
}

// In a schedule a combination is one fault: one start and one heal in the history,
// every part in force in between.
func TestScheduleInjectsACombinationAsOneFault(t *testing.T) {
	c := newHookCluster()
	rec := history.NewRecorder(time.Now(), nil)
	s := &Schedule{Faults: []Fault{combo(t, "partition+clock")}, Interval: 20 * time.Millisecond, Cluster: c,
		Rand: rand.New(rand.NewPCG(1, 0)), Rec: rec}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	require.NoError(t, s.Run(ctx))
	starts, heals := 0, 0
	for _, e := range rec.Events() {
		switch {
		case e.F == "partition+clock" && e.Type == history.OK:
			starts++
		case e.F == "heal-partition+clock" && e.Type == history.OK:
			heals++
		}
	}
	assert.Positive(t, starts)
	assert.Equal(t, starts, heals)
	assert.False(t, c.partitioned)
	assert.Empty(t, c.clocks)
}
