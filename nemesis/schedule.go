package nemesis

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
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

// Schedule runs faults one after another. Interval is the mean time from one fault's
// start to the next one's: each fault is held for a random 50-90% of Interval and
// followed by a quiet time of 20-40% of Interval, in which the cluster may recover. The
// faults (the --nemesis entries) are taken in rounds, each round a seeded shuffle of all
// of them, so that every fault asked for is injected early, also in a short run (with k
// faults, all k have started within k·Interval·(0.4+0.9)), and each equally often; a
// fault that may take several variants (clock: bump, slow, fast, strobe) draws one each
// turn, by the variants' weights.
type Schedule struct {
	Faults   []*Fault
	Interval time.Duration
	Cluster  Cluster
	Powers   Powers
	Rand     *rand.Rand
	Rec      Recorder
	// Log receives one line per fault injected and healed; may be nil.
	Log func(format string, args ...any)

	bag    []*Fault // the faults left in the current round
	mu     sync.Mutex
	active string
	counts map[string]int
}

// step is one fault of a schedule: wait quiet, inject the turn, hold it, heal it.
type step struct {
	quiet, hold time.Duration
	turn        turn
}

// faultStream is the PCG stream of a fault's own random numbers.
const faultStream = 0x6661756c74

// next draws the next step from the schedule's random source (and nothing else, so the
// same seed gives the same steps). The fault draws its own numbers (nodes, variants) from
// a stream seeded by the step: however many it takes, and whatever the cluster answers
// it, the steps after it are the same.
func (s *Schedule) next() step {
	if len(s.bag) == 0 {
		s.bag = slices.Clone(s.Faults)
		s.Rand.Shuffle(len(s.bag), func(i, j int) { s.bag[i], s.bag[j] = s.bag[j], s.bag[i] })
	}
	f := s.bag[0]
	s.bag = s.bag[1:]
	quiet, hold := s.fraction(0.2, 0.4), s.fraction(0.5, 0.9)
	return step{quiet: quiet, hold: hold, turn: f.draw(s.Rand)}
}

// fraction returns a duration uniformly in [lo·Interval, hi·Interval).
func (s *Schedule) fraction(lo, hi float64) time.Duration {
	return time.Duration((lo + (hi-lo)*s.Rand.Float64()) * float64(s.Interval))
}

// Run injects faults until ctx is done, then heals the one in force and returns. It
// returns the first error from injecting or healing: after it, no further fault is
// injected (the fault that failed to apply was undone and recorded as fail). The fault
// in force is healed in a defer, so also when the goroutine panics; a panic in a
// fault's Inject or Heal is an error of that fault, not a crash.
//
// Faults keep to a timeline drawn from the seed alone, measured from the schedule's
// start (recorded as the nemesis info event history.NemesisStart): fault i starts at
// the sum of the quiet and hold times drawn before it, however long injecting and
// healing took, so a replay of the seed starts each fault at the same offset. Only a
// fault whose heal ends more than half a quiet time late (a rolling upgrade that outlasts
// its hold, say) moves the rest of the timeline: the cluster always gets at least half
// its quiet time after a heal.
func (s *Schedule) Run(ctx context.Context) error {
	if len(s.Faults) == 0 {
		<-ctx.Done()
		return nil
	}
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Info, F: history.NemesisStart})
	start := time.Now()
	var at time.Duration // the planned time, since start, of where the schedule is
	for {
		st := s.next()
		at += st.quiet
		if late := time.Since(start) - at; late > st.quiet/2 {
			at += late - st.quiet/2 // the last heal overran: move the timeline, keep half the quiet
		}
		if !Sleep(ctx, time.Until(start.Add(at))) {
			return nil
		}
		inj, err := s.inject(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				return nil // cancelled mid-injection: inject undid it
			}
			return err
		}
		at += st.hold
		if err := s.hold(ctx, st, inj, start.Add(at)); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// hold keeps the injected fault until the time until (or until ctx ends) and heals it,
// in a defer: whatever happens while it is held, the heal runs.
func (s *Schedule) hold(ctx context.Context, st step, inj Injection, until time.Time) (err error) {
	defer func() {
		if herr := s.heal(st.turn, inj); herr != nil && err == nil {
			err = herr
		}
	}()
	Sleep(ctx, time.Until(until))
	return nil
}

// guard turns a panic in f into its error.
func guard(what string, f func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%s panicked: %v", what, p)
		}
	}()
	return f()
}

func (s *Schedule) inject(ctx context.Context, st step) (Injection, error) {
	t := st.turn
	name := t.fault.Name
	start, _ := t.events()
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: start, Value: history.S1(t.value())})
	ictx, cancel := context.WithTimeout(ctx, t.timeout(len(s.Cluster.Nodes())))
	defer cancel()
	note := func(f, node, value string) {
		e := history.Event{Process: history.NemesisProcess, Type: history.Info, F: f, Node: node}
		if value != "" {
			e.Value = history.S1(value)
		}
		s.Rec.Record(e)
		s.logf("nemesis: %s %s %s", f, node, value)
	}
	var inj Injection
	err := guard("inject "+name, func() (err error) {
		inj, err = t.inject(ictx, Env{Cluster: s.Cluster, Powers: s.Powers, Note: note})
		return err
	})
	if err != nil {
		s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Fail, F: start, Error: err.Error()})
		return inj, fmt.Errorf("inject %s: %w", name, err)
	}
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.OK, F: start,
		Value: inj.Value, Node: joinNodes(inj.Nodes)})
	s.setActive(name, inj)
	s.logf("nemesis: %s %v on %s", start, inj.Value, joinNodes(inj.Nodes))
	return inj, nil
}

func (s *Schedule) heal(t turn, inj Injection) error {
	name := t.fault.Name
	_, end := t.events()
	s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Invoke, F: end, Node: joinNodes(inj.Nodes)})
	hctx, cancel := context.WithTimeout(context.Background(), t.healTimeout())
	defer cancel()
	err := errors.New("no heal")
	if inj.Heal != nil {
		err = guard("heal "+name, func() error { return inj.Heal(hctx) })
	}
	s.setActive("", Injection{})
	if err != nil {
		s.Rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Fail, F: end, Error: err.Error()})
		return fmt.Errorf("heal %s: %w", name, err)
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

// Summary says how many times each fault was injected, sorted: "kill:all×2, pause×1";
// "none" for none.
func (s *Schedule) Summary() string {
	counts := s.Counts()
	if len(counts) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, counts[k]))
	}
	return strings.Join(parts, ", ")
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

// Sleep waits d (none when d is not positive) or until ctx is done; it reports whether
// the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
