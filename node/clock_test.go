package node

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func countTicks(c *Clock, interval, over time.Duration) int {
	ctx, cancel := context.WithTimeout(context.Background(), over)
	defer cancel()
	out := make(chan struct{}, 1)
	n := 0
	go c.Tick(ctx, interval, out)
	for {
		select {
		case <-out:
			n++
		case <-ctx.Done():
			return n
		}
	}
}

func TestClockRateAndOffset(t *testing.T) {
	c := NewClock()
	before := c.Now()
	c.Set(ClockSetting{OffsetMS: 60_000, Rate: 1})
	assert.WithinDuration(t, before.Add(time.Minute), c.Now(), 5*time.Second)
	c.Set(ClockSetting{OffsetMS: 0, Rate: 0})
	stopped := c.Now()
	time.Sleep(20 * time.Millisecond)
	assert.Equal(t, stopped, c.Now(), "rate 0 stops the clock")
	assert.Equal(t, ClockSetting{OffsetMS: 0, Rate: 0}, c.Setting())
}

func TestClockTicks(t *testing.T) {
	// Loose bounds: the machine may be loaded.
	normal := countTicks(NewClock(), 20*time.Millisecond, 600*time.Millisecond)
	assert.InDelta(t, 30, normal, 15)

	fast := NewClock()
	fast.Set(ClockSetting{Rate: 2})
	assert.Greater(t, countTicks(fast, 20*time.Millisecond, 600*time.Millisecond), normal+10)

	back := NewClock()
	go func() {
		time.Sleep(100 * time.Millisecond)
		back.Set(ClockSetting{OffsetMS: -10_000, Rate: 1})
	}()
	assert.LessOrEqual(t, countTicks(back, 20*time.Millisecond, 600*time.Millisecond), 7,
		"a backward jump stalls ticks")
}

func TestClockForwardJumpGivesOneTick(t *testing.T) {
	// Like a SIGSTOP/SIGCONT: node time leaps ahead; the ticker must not catch up.
	c := NewClock()
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Set(ClockSetting{OffsetMS: 60_000, Rate: 1})
	}()
	assert.Less(t, countTicks(c, 20*time.Millisecond, 600*time.Millisecond), 60,
		"a forward jump of 3000 intervals gives one tick, not thousands")
}
