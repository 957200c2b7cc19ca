package history

import (
	"sync"
	"time"
)

// Sink receives every event a Recorder records, in index order.
type Sink interface {
	Append(Event) error
}

// Recorder stamps events with their index and time since the run's base time, keeps
// them in memory and hands each to its sink (usually a Writer). It is the one place
// that assigns indices, so the recorded order is the history's order.
//
// Recorder is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	base   time.Time
	sink   Sink
	events []Event
	err    error
}

// NewRecorder returns a recorder whose times count from base. sink may be nil.
func NewRecorder(base time.Time, sink Sink) *Recorder {
	return &Recorder{base: base, sink: sink}
}

// Base returns the run's base time.
func (r *Recorder) Base() time.Time { return r.base }

// Since returns the time since the base, as event times are counted.
func (r *Recorder) Since() time.Duration { return time.Since(r.base) }

// Record stamps e with the next index and the current time, stores it and passes it to
// the sink. It returns the stamped event. A sink error is kept (see Err) and does not
// stop recording: the in-memory history stays complete.
func (r *Recorder) Record(e Event) Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.Index = int64(len(r.events))
	e.Time = int64(time.Since(r.base))
	if n := len(r.events); n > 0 && e.Time < r.events[n-1].Time {
		e.Time = r.events[n-1].Time // monotonic, even if the clock reading is not
	}
	r.events = append(r.events, e)
	if r.sink != nil {
		if err := r.sink.Append(e); err != nil && r.err == nil {
			r.err = err
		}
	}
	return e
}

// Events returns a copy of everything recorded so far.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Err returns the first error the sink returned, if any.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
