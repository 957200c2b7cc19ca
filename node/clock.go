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

	// changes counts Set calls; the ticker acts on the last one it has not seen: a reset
	// re-arms it, a forward jump fires what fell due (see Tick).
	changes uint64
	reset   bool          // the last Set returned the clock to true time
	jump    time.Duration // node time after the last Set minus before it
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
// by the caller; rate 0 stops the clock. Offset 0 and rate 1 is a reset: node time is
// true time again (wherever it had drifted to) and the ticker is re-armed from it.
func (c *Clock) Set(s ClockSetting) {
	c.mu.Lock()
	defer c.mu.Unlock()
	real := time.Now()
	before := c.nowLocked(real)
	c.acc += time.Duration(float64(real.Sub(c.anchor)) * c.rate)
	c.anchor = real
	c.rate = s.Rate
	c.offset = time.Duration(s.OffsetMS) * time.Millisecond
	c.reset = s.OffsetMS == 0 && s.Rate == 1
	if c.reset {
		c.acc = real.Sub(c.base) // drift from a past rate is forgotten too
	}
	c.jump = c.nowLocked(real).Sub(before)
	c.changes++
}

// change returns the count of Set calls and what the last one did.
func (c *Clock) change() (n uint64, reset bool, jump time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changes, c.reset, c.jump
}

// currentRate returns the current rate.
func (c *Clock) currentRate() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rate
}

// maxSleep bounds one wait of the ticker, so that clock changes take effect promptly.
const maxSleep = 20 * time.Millisecond

// MaxBurst bounds the ticks a forward jump fires at once: enough for any raft timeout
// (ElectionTick·2) to expire.
const MaxBurst = 2 * ElectionTick

// Tick sends on out every interval of node time, like a time.Ticker on the node's clock:
//
//   - a faster rate ticks faster, a slower one slower, rate 0 never;
//   - missed ticks are dropped when time merely passed (after a SIGSTOP the node gets one
//     tick, not hundreds: its timers did not run while it was stopped);
//   - a backward jump stalls ticks until node time catches up with the next one;
//   - a forward jump fires the ticks that fell due, up to MaxBurst, at once, like a timer
//     wheel whose deadlines all passed;
//   - a reset (Set to offset 0, rate 1) re-arms the ticker: the next tick is an interval
//     from now, however far time moved, so healing a clock fault ends it at once.
//
// A tick the consumer has not taken yet absorbs the next one, except in a burst, whose
// ticks each wait for the consumer. Tick returns when ctx is done.
func (c *Clock) Tick(ctx context.Context, interval time.Duration, out chan<- struct{}) {
	next := c.Now().Add(interval)
	seen, _, _ := c.change()
	for {
		if n, reset, jump := c.change(); n != seen {
			seen = n
			switch {
			case reset:
				next = c.Now().Add(interval)
			case jump > 0:
				burst := min(int(jump/interval), MaxBurst)
				for range burst {
					select {
					case out <- struct{}{}:
					case <-ctx.Done():
						return
					}
				}
				if burst > 0 {
					next = c.Now().Add(interval)
				}
			}
		}
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
