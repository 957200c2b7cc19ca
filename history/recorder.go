package history

import (
	"sync"
	"time"
)

// Sink receives every event a Recorder records, in index order.
type Sink interface {
	Append(Event) error
}

// Recorder stamps events with their index and time since the run's base time, hands
// each to its sink (usually a Writer) and, unless it streams, keeps them in memory. It is
// the one place that assigns indices, so the recorded order is the history's order.
//
// Recorder is safe for concurrent use.
type Recorder struct {
	mu     sync.Mutex
	base   time.Time
	sink   Sink
	stream bool // keep nothing: the sink holds the history
	events []Event
	n      int64 // events recorded
	last   int64 // the last event's time
	maxP   int   // the highest client process recorded, -1 for none
	err    error
}

// NewRecorder returns a recorder whose times count from base and that keeps every event
// in memory (Events). sink may be nil.
func NewRecorder(base time.Time, sink Sink) *Recorder {
	return &Recorder{base: base, sink: sink, maxP: -1}
}

// NewStreamRecorder returns a recorder that hands every event to sink and keeps none:
// its memory does not grow with the history (a run of a million operations would
// otherwise hold a gigabyte of events while its nodes run). Events returns nil; the
// history is what the sink wrote (a Writer's file, read back with ReadFile), and Len
// says how many events it must hold.
func NewStreamRecorder(base time.Time, sink Sink) *Recorder {
	return &Recorder{base: base, sink: sink, stream: true, maxP: -1}
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
	e.Index = r.n
	e.Time = max(int64(time.Since(r.base)), r.last) // monotonic, even if the clock reading is not
	r.n, r.last = r.n+1, e.Time
	if !e.IsNemesis() {
		r.maxP = max(r.maxP, e.Process)
	}
	if !r.stream {
		r.events = append(r.events, e)
	}
	if r.sink != nil {
		if err := r.sink.Append(e); err != nil && r.err == nil {
			r.err = err
		}
	}
	return e
}

// Len returns how many events have been recorded.
func (r *Recorder) Len() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// MaxProcess returns the highest client process recorded, or -1 if none.
func (r *Recorder) MaxProcess() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxP
}

// Events returns a copy of everything recorded so far (nil for a stream recorder).
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
