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

func TestClockForwardJumpFiresWhatFellDue(t *testing.T) {
	c := NewClock()
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Set(ClockSetting{OffsetMS: 60_000, Rate: 1})
	}()
	n := countTicks(c, 20*time.Millisecond, 600*time.Millisecond)
	assert.GreaterOrEqual(t, n, MaxBurst+15, "a forward jump fires a burst on top of the ~30 normal ticks")
	assert.Less(t, n, MaxBurst+60, "a jump of 3000 intervals fires at most MaxBurst at once, not thousands")
}

func TestClockResetRearmsTheTicker(t *testing.T) {
	c := NewClock()
	c.Set(ClockSetting{OffsetMS: 60_000, Rate: 1}) // before the ticker starts: no burst
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Set(ClockSetting{OffsetMS: 0, Rate: 1}) // a minute back: without the re-arm, a stall
	}()
	assert.InDelta(t, 30, countTicks(c, 20*time.Millisecond, 600*time.Millisecond), 15,
		"healing a forward bump does not stall the node for a minute")
	assert.WithinDuration(t, time.Now(), c.Now(), 50*time.Millisecond, "a reset is true time")
}

func TestClockPauseGivesOneTick(t *testing.T) {
	// Time passing with nobody ticking (a SIGSTOPped process) is not a jump.
	c := NewClock()
	out := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Tick(ctx, 20*time.Millisecond, out)
	time.Sleep(300 * time.Millisecond) // 15 intervals; the consumer takes none
	n := 0
	for drain := time.After(30 * time.Millisecond); ; {
		select {
		case <-out:
			n++
			continue
		case <-drain:
		}
		break
	}
	assert.LessOrEqual(t, n, 3, "missed ticks are dropped, not delivered late")
}
