package node

import (
	"context"
	"sync"
	"time"
)

// Clock is the node's notion of time: base + offset + rate·(monotonic time elapsed),
// where rate changes are continuous (the elapsed part is re-anchored) and offset changes
// are jumps. Raft ticks, and so every timeout and lease raft has, run on it.
type Clock struct {
	mu     sync.Mutex
	base   time.Time     // wall time at start
	acc    time.Duration // node-time elapsed up to anchor
	anchor time.Time     // monotonic reading where acc was taken
	offset time.Duration
	rate   float64
}

// ClockSetting is the adjustable part of a Clock (the /clock API's body).
type ClockSetting struct {
	OffsetMS int64   `json:"offset_ms"`
	Rate     float64 `json:"rate"`
}

// NewClock returns a clock that runs like the wall clock.
func NewClock() *Clock {
	now := time.Now()
	return &Clock{base: now, anchor: now, rate: 1}
}

// Now returns the node's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nowLocked(time.Now())
}

func (c *Clock) nowLocked(real time.Time) time.Time {
	el := time.Duration(float64(real.Sub(c.anchor)) * c.rate)
	return c.base.Add(c.acc + el + c.offset)
}

// Setting returns the current offset and rate.
func (c *Clock) Setting() ClockSetting {
	c.mu.Lock()
	defer c.mu.Unlock()
	return ClockSetting{OffsetMS: c.offset.Milliseconds(), Rate: c.rate}
}

// Set changes the offset (a jump) and the rate (from now on). A negative rate is refused
// by the caller; rate 0 stops the clock.
func (c *Clock) Set(s ClockSetting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Now()
	c.acc += time.Duration(float64(real.Sub(c.anchor)) * c.rate)
	c.anchor = real
	c.rate = s.Rate
	c.offset = time.Duration(s.OffsetMS) * time.Millisecond
}

// currentRate returns the current rate.
func (c *Clock) currentRate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// maxSleep bounds one wait of the ticker, so that clock changes take effect promptly.
const maxSleep = 20 * time.Millisecond

// Tick sends on out every interval of node time, like a time.Ticker: at most one tick
// per wake-up, missed ticks dropped (after a SIGSTOP the node gets one tick, not
// hundreds), a faster rate ticks faster, a backward jump stalls ticks until node time
// catches up with the next tick. The send never blocks: a tick the consumer has not
// taken yet absorbs the next one. Tick returns when ctx is done.
func (c *Clock) Tick(ctx context.Context, interval time.Duration, out chan<- struct{}) {
	next := c.Now().Add(interval)
	for {
		wait := maxSleep
		if r := c.currentRate(); r > 0 {
			if d := time.Duration(float64(next.Sub(c.Now())) / r); d < wait {
				wait = d
			}
		}
		if wait < time.Millisecond {
			wait = time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		now := c.Now()
		if now.Before(next) {
			continue
		}
		select {
		case out <- struct{}{}:
		default:
		}
		next = next.Add(interval)
		if !next.After(now) {
			next = now.Add(interval)
		}
	}
}
