package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrSimLost is the indeterminate error SimStore returns for an operation whose reply
// it "lost": the operation may or may not have taken effect.
var ErrSimLost = errors.New("sim: connection lost")

// SimStore is a linearizable in-memory key-value store for tests: registers and lists,
// each operation taking effect atomically at one instant between its call and its
// return. It implements Client; all processes share it.
//
// Set Latency and Lost before use.
type SimStore struct {
	// Latency bounds each operation's random delay, split around the instant it takes
	// effect. Zero: none.
	Latency time.Duration
	// Lost is the probability that an operation returns ErrSimLost; such an operation
	// takes effect with probability 1/2.
	Lost float64

	mu    sync.Mutex
	rnd   *rand.Rand
	regs  map[string]string
	lists map[string][]string
}

// NewSimStore returns an empty store whose delays and losses are drawn from seed.
func NewSimStore(seed int64) *SimStore {
	return &SimStore{rnd: rand.New(rand.NewPCG(uint64(seed), 0x73696d)),
		regs: make(map[string]string), lists: make(map[string][]string)}
}

// Opener returns an Opener handing every process the store itself, named as node
// "n<process mod nodes + 1>".
func (s *SimStore) Opener(nodes int) Opener {
	return func(_ context.Context, process int) (Client, string, error) {
		return s, fmt.Sprintf("n%d", process%max(nodes, 1)+1), nil
	}
}

// Read implements Client.
func (s *SimStore) Read(ctx context.Context, key string) (v string, found bool, err error) {
	err = s.do(ctx, func() error {
		v, found = s.regs[key]
		return nil
	})
	if err != nil {
		return "", false, err
	}
	return v, found, nil
}

// Write implements Client.
func (s *SimStore) Write(ctx context.Context, key, value string) error {
	return s.do(ctx, func() error {
		s.regs[key] = value
		return nil
	})
}

// CAS implements Client; a mismatch is ErrMismatch.
func (s *SimStore) CAS(ctx context.Context, key, from, to string) error {
	return s.do(ctx, func() error {
		if v, ok := s.regs[key]; !ok || v != from {
			return ErrMismatch
		}
		s.regs[key] = to
		return nil
	})
}

// Append implements Client.
func (s *SimStore) Append(ctx context.Context, key, value string) error {
	return s.do(ctx, func() error {
		s.lists[key] = append(s.lists[key], value)
		return nil
	})
}

// ReadList implements Client.
func (s *SimStore) ReadList(ctx context.Context, key string) (l []string, err error) {
	err = s.do(ctx, func() error {
		l = append([]string{}, s.lists[key]...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// do runs apply atomically after a random delay, then waits a random delay more. An
// operation cut off by ctx before it applied returns ctx's error without taking
// effect; one cut off after, returns it having taken effect.
func (s *SimStore) do(ctx context.Context, apply func() error) error {
	s.mu.Lock()
	var before, after time.Duration
	if s.Latency > 0 {
		before, after = time.Duration(s.rnd.Int64N(int64(s.Latency)))/2, time.Duration(s.rnd.Int64N(int64(s.Latency)))/2
	}
	lost := s.Lost > 0 && s.rnd.Float64() < s.Lost
	applies := !lost || s.rnd.IntN(2) == 0
	s.mu.Unlock()

	if !sleep(ctx, before, time.Time{}) {
		return ctx.Err()
	}
	var err error
	if applies {
		s.mu.Lock()
		err = apply()
		s.mu.Unlock()
	}
	if !sleep(ctx, after, time.Time{}) {
		return ctx.Err()
	}
	if lost {
		return ErrSimLost
	}
	return err
}
