package linkproxy

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Faults are what a link does to the messages on it. The zero value forwards everything
// at once, transparently; any other value makes the link answer every POST 204 at once
// and deliver it on the wire (see the package doc).
type Faults struct {
	// Delay and Jitter: each message waits Delay ± Jitter (uniform, never below 0).
	Delay  time.Duration
	Jitter time.Duration
	// Loss is the probability that a message is dropped (silently: the sender is answered
	// 204 all the same).
	Loss float64
	// Duplicate is the probability that a message is delivered twice; the copy waits a
	// Delay ± Jitter of its own.
	Duplicate float64
	// Reorder is the probability that a message is held back an extra ReorderBy, so that
	// later ones overtake it. ReorderBy must be positive when Reorder is.
	Reorder   float64
	ReorderBy time.Duration
}

// maxWait bounds each of Faults' durations.
const maxWait = time.Hour

// Validate reports why f is not a usable set of faults: a probability outside [0, 1], a
// duration below 0 or above an hour, or a Reorder without a ReorderBy.
func (f Faults) Validate() error {
	var errs []error
	for _, pr := range []struct {
		name string
		v    float64
	}{{"loss", f.Loss}, {"duplicate", f.Duplicate}, {"reorder", f.Reorder}} {
		if math.IsNaN(pr.v) || pr.v < 0 || pr.v > 1 {
			errs = append(errs, fmt.Errorf("%s probability %v is not between 0 and 1", pr.name, pr.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"delay", f.Delay}, {"jitter", f.Jitter}, {"reorder-by", f.ReorderBy}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("negative %s %v", d.name, d.v))
		}
		if d.v > maxWait {
			errs = append(errs, fmt.Errorf("%s %v is above %v (hold a link that long with a partition)", d.name, d.v, maxWait))
		}
	}
	if f.Reorder > 0 && f.ReorderBy <= 0 {
		errs = append(errs, fmt.Errorf("reorder probability %v with no reorder-by duration", f.Reorder))
	}
	return errors.Join(errs...)
}

func (f Faults) String() string {
	if f == (Faults{}) {
		return "none"
	}
	return fmt.Sprintf("delay=%v±%v loss=%g duplicate=%g reorder=%g(+%v)",
		f.Delay, f.Jitter, f.Loss, f.Duplicate, f.Reorder, f.ReorderBy)
}

// Stats count what happened on one link since Start. A message duplicated is two copies;
// every copy is eventually exactly one of Forwarded, Failed or Dropped (while the proxy
// runs; Close drops what is still held).
type Stats struct {
	// Forwarded: copies the destination answered with a 2xx status.
	Forwarded uint64
	// Failed: copies that could not be forwarded (dial or send error, timeout) or that the
	// destination answered with another status. On a transparent link the sender saw the
	// failure too; on a faulty one it did not.
	Failed uint64
	// Dropped: messages lost to Loss, copies over the link's in-flight bound, and copies
	// still held when the proxy closed.
	Dropped uint64
	// Duplicated: messages queued twice by Duplicate.
	Duplicated uint64
	// Delayed: copies held back by a wait above zero (Delay, Jitter or Reorder).
	Delayed uint64
	// Reordered: messages held back an extra ReorderBy.
	Reordered uint64
}

// Set replaces the faults on each of links with f; other links keep theirs. Every link's
// To must be a node, and its From a node or "" (unrecognised senders). Messages already
// held keep their schedule. Set fails, changing nothing, if f is invalid, a link is
// unknown, or the proxy is closed.
func (p *Proxy) Set(links []Link, f Faults) error {
	if err := f.Validate(); err != nil {
		return fmt.Errorf("set link faults: %w", err)
	}
	for _, l := range links {
		if _, ok := p.cfg.Nodes[l.To]; !ok {
			return fmt.Errorf("set link faults on %v: unknown destination %q", l, l.To)
		}
		if _, ok := p.cfg.Nodes[l.From]; !ok && l.From != "" {
			return fmt.Errorf("set link faults on %v: unknown sender %q", l, l.From)
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("set link faults: proxy closed")
	}
	for _, l := range links {
		p.linkLocked(l).faults = f
	}
	if len(links) > 0 {
		p.logf("link faults %v on %v", f, links)
	}
	return nil
}

// Clear puts every link back to the zero Faults (transparent). Messages already held are
// still delivered on their schedule; new messages may overtake them.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, st := range p.links {
		if st.faults != (Faults{}) {
			st.faults = Faults{}
			n++
		}
	}
	if n > 0 {
		p.logf("link faults cleared on %d links", n)
	}
}

// Stats returns the counts of every link that has carried a message or had faults set.
func (p *Proxy) Stats() map[Link]Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[Link]Stats, len(p.links))
	for l, st := range p.links {
		out[l] = st.stats()
	}
	return out
}

// plan is what the random draws decided for one message: dropped, or the waits of its
// copies (one, or two when duplicated), the first possibly reordered.
type plan struct {
	drop      bool
	reordered bool
	waits     []time.Duration
}

// draw makes the random decisions for one message under f, from the proxy's one source.
func (p *Proxy) draw(f Faults) plan {
	p.rngMu.Lock()
	defer p.rngMu.Unlock()
	if f.Loss > 0 && p.rng.Float64() < f.Loss {
		return plan{drop: true}
	}
	pl := plan{waits: []time.Duration{p.waitLocked(f)}}
	if f.Reorder > 0 && p.rng.Float64() < f.Reorder {
		pl.reordered = true
		pl.waits[0] += f.ReorderBy
	}
	if f.Duplicate > 0 && p.rng.Float64() < f.Duplicate {
		pl.waits = append(pl.waits, p.waitLocked(f))
	}
	return pl
}

// waitLocked draws Delay ± Jitter, uniform, clamped at 0. Callers hold rngMu.
func (p *Proxy) waitLocked(f Faults) time.Duration {
	d := f.Delay
	if f.Jitter > 0 {
		d += time.Duration(p.rng.Int64N(2*int64(f.Jitter)+1)) - f.Jitter
	}
	return max(d, 0)
}
