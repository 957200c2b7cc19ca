package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// HealTimeout bounds the healing of one fault.
const HealTimeout = 30 * time.Second

// Recorder is where the schedule writes its events (a *history.Recorder).
type Recorder interface {
	Record(history.Event) history.Event
}

// Schedule runs faults one after another, each held for a random time around Interval
// and separated by a random time around Interval.
type Schedule struct {
	Faults   []Fault
	Interval time.Duration
	Cluster  Cluster
	Rand     *rand.Rand
	Rec      Recorder
	// Log receives one line per fault injected and healed; may be nil.
	Log func(format string, args ...any)

	mu     sync.Mutex
	active string
	counts map[string]int
}

// Run injects faults until ctx is done, then heals the one in force and returns. It
// returns the first error from injecting or healing: after it, no further fault is
// injected (the fault that failed to apply was undone and recorded as fail).
func (s *Schedule) Run(ctx context.Context) error {
	if len(s.Faults) == 0 {
		<-ctx.Done()
		return nil
	}
	for {
		if !sleep(ctx, s.jitter()) {
			return nil
		}
		f := s.Faults[s.Rand.IntN(len(s.Faults))]
		inj, err := s.inject(ctx, f)
		if err != nil {
			if ctx.Err() != nil {
				return nil // cancelled mid-injection: inject undid it
			}
			return err
		}
		sleep(ctx, s.jitter())
		if err := s.heal(f, inj); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

func (s *Schedule) inject(ctx context.Context, f Fault) (Injection, error) {
	start, _ := f.Events()
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: start})
	ictx, cancel := context.WithTimeout(ctx, HealTimeout)
	defer cancel()
	inj, err := f.Inject(ictx, Env{Cluster: s.Cluster, Rand: s.Rand})
	if err != nil {
		s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Fail, F: start, Error: err.Error()})
		return inj, fmt.Errorf("inject %s: %w", f.Name(), err)
	}
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.OK, F: start,
		Value: inj.Value, Node: joinNodes(inj.Nodes)})
	s.setActive(f.Name(), inj)
	s.logf("nemesis: %s %v on %s", start, inj.Value, joinNodes(inj.Nodes))
	return inj, nil
}

func (s *Schedule) heal(f Fault, inj Injection) error {
	_, end := f.Events()
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: end, Node: joinNodes(inj.Nodes)})
	hctx, cancel := context.WithTimeout(context.Background(), HealTimeout)
	defer cancel()
	err := inj.Heal(hctx)
	s.setActive("", Injection{})
	if err != nil {
		s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Fail, F: end, Error: err.Error()})
		return fmt.Errorf("heal %s: %w", f.Name(), err)
	}
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.OK, F: end, Node: joinNodes(inj.Nodes)})
	s.logf("nemesis: %s on %s", end, joinNodes(inj.Nodes))
	return nil
}

// Active returns the fault in force ("" for none), for progress lines.
func (s *Schedule) Active() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.active
}

// Counts returns how many times each fault was injected.
func (s *Schedule) Counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.counts))
	for k, v := range s.counts {
		out[k] = v
	}
	return out
}

func (s *Schedule) setActive(name string, inj Injection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		s.active = ""
		return
	}
	if s.counts == nil {
		s.counts = map[string]int{}
	}
	s.counts[name]++
	s.active = fmt.Sprintf("%s %s", name, joinNodes(inj.Nodes))
}

func (s *Schedule) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log(format, args...)
	}
}

// jitter returns a duration uniformly in [Interval/2, 3*Interval/2).
func (s *Schedule) jitter() time.Duration {
	return s.Interval/2 + time.Duration(s.Rand.Int64N(int64(s.Interval)))
}

// sleep waits d or until ctx is done; it reports whether the whole d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func joinNodes(nodes []string) string {
	out := ""
	for i, n := range nodes {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}
