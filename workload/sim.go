package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
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
	// LeaseClock is the clock its leases run on (nil: the wall clock's time.Now): a
	// clock that jumps ahead ends leases early, for tests that the lease check sees it.
	LeaseClock func() time.Time
	// LagReads is a deliberate bug: a register or list read answers with the right
	// value but at the revision before the last write, as a member that had not applied
	// that write (to another key) would — a stale read only the revision check can see.
	LagReads bool

	mu     sync.Mutex
	rnd    *rand.Rand
	regs   map[string]string
	lists  map[string][]string
	rev    int64 // the registers' and lists' revision: one per write, as etcd's
	leases SimLeases
	// Keyspace is its revisioned keyspace (the kubernetes workload's): set its
	// StaleReads before use for a store with that bug.
	Keyspace SimKeyspace
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
		s.readAt(ctx)
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
		s.wrote(ctx)
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
		s.wrote(ctx)
		return nil
	})
}

// Append implements Client.
func (s *SimStore) Append(ctx context.Context, key, value string) error {
	return s.do(ctx, func() error {
		s.lists[key] = append(s.lists[key], value)
		s.wrote(ctx)
		return nil
	})
}

// ReadList implements Client.
func (s *SimStore) ReadList(ctx context.Context, key string) (l []string, err error) {
	err = s.do(ctx, func() error {
		l = append([]string{}, s.lists[key]...)
		s.readAt(ctx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Txn implements Transactor: the micro-operations applied at one instant.
func (s *SimStore) Txn(ctx context.Context, mops []history.Mop) (out []history.Mop, err error) {
	err = s.do(ctx, func() error {
		out = ApplyMops(mops, func(k string) []string { return s.lists[k] }, func(k string, l []string) { s.lists[k] = l })
		return nil
	})
	return out, err
}

// ApplyMops runs a list-append transaction's micro-operations on lists read by get
// and written by set, and returns them with what each read; a read sees the
// transaction's own earlier appends. The simulated stores use it, and so do clients
// that read every key first and write the results in one guarded request (etcd's).
func ApplyMops(mops []history.Mop, get func(string) []string, set func(string, []string)) []history.Mop {
	out := make([]history.Mop, len(mops))
	mine := map[string][]string{} // what this transaction wrote: it reads its own appends
	for i, m := range mops {
		out[i] = m
		cur, ok := mine[m.Key]
		if !ok {
			cur = get(m.Key)
		}
		if m.F == history.MopAppend {
			mine[m.Key] = append(slices.Clone(cur), m.V.S)
			set(m.Key, mine[m.Key])
		} else {
			out[i].V = history.L(slices.Clone(cur)...)
		}
	}
	return out
}

// Grant implements Leaser: leases run on the wall clock.
func (s *SimStore) Grant(ctx context.Context, ttl time.Duration) (id string, granted time.Duration, err error) {
	err = s.do(ctx, func() error {
		id = s.leases.Grant(s.leaseNow(), ttl)
		return nil
	})
	return id, ttl, err
}

// PutWithLease implements Leaser.
func (s *SimStore) PutWithLease(ctx context.Context, key, value, lease string) error {
	return s.do(ctx, func() error {
		if !s.leases.Attach(lease, key) {
			return ErrLeaseNotFound
		}
		s.regs[key] = value
		return nil
	})
}

// KeepAlive implements Leaser.
func (s *SimStore) KeepAlive(ctx context.Context, lease string) (ttl time.Duration, err error) {
	err = s.do(ctx, func() error {
		var ok bool
		if ttl, ok = s.leases.Renew(s.leaseNow(), lease); !ok {
			return ErrLeaseNotFound
		}
		return nil
	})
	return ttl, err
}

// Revoke implements Leaser.
func (s *SimStore) Revoke(ctx context.Context, lease string) error {
	return s.do(ctx, func() error {
		keys, ok := s.leases.Revoke(lease)
		if !ok {
			return ErrLeaseNotFound
		}
		s.drop(keys)
		return nil
	})
}

func (s *SimStore) leaseNow() time.Time {
	if s.LeaseClock != nil {
		return s.LeaseClock()
	}
	return time.Now()
}

func (s *SimStore) drop(keys []string) {
	for _, k := range keys {
		delete(s.regs, k)
	}
}

// do runs apply atomically after a random delay, then waits a random delay more. An
// operation cut off by ctx before it applied returns ctx's error without taking
// effect; one cut off after, returns it having taken effect.
// wrote makes the next revision and reports it (under s.mu).
func (s *SimStore) wrote(ctx context.Context) {
	s.rev++
	ReportRevision(ctx, s.rev)
}

// readAt reports the revision a read answers at (under s.mu): the latest, or with
// LagReads the one before it.
func (s *SimStore) readAt(ctx context.Context) {
	rev := s.rev
	if s.LagReads {
		rev--
	}
	ReportRevision(ctx, rev)
}

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
		s.drop(s.leases.Expire(s.leaseNow()))
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

// SimLeases is a table of leases for simulated stores, timed by whatever clock its
// caller reads (now): a lease granted or renewed at now lives until now + its TTL, as
// a lessor measures it. It holds which keys each lease carries; deleting them is the
// store's. It is not safe for concurrent use: the store's lock guards it.
type SimLeases struct {
	next   int64
	leases map[string]*simLease
}

type simLease struct {
	ttl     time.Duration
	expires time.Time
	keys    []string
}

// Grant creates a lease of ttl at now and returns its id.
func (l *SimLeases) Grant(now time.Time, ttl time.Duration) string {
	if l.leases == nil {
		l.leases = map[string]*simLease{}
	}
	l.next++
	id := fmt.Sprintf("%x", l.next)
	l.leases[id] = &simLease{ttl: ttl, expires: now.Add(ttl)}
	return id
}

// Renew renews lease at now; ok is false when there is no such lease.
func (l *SimLeases) Renew(now time.Time, id string) (ttl time.Duration, ok bool) {
	le := l.leases[id]
	if le == nil {
		return 0, false
	}
	le.expires = now.Add(le.ttl)
	return le.ttl, true
}

// Attach puts key on lease; ok is false when there is no such lease.
func (l *SimLeases) Attach(id, key string) bool {
	le := l.leases[id]
	if le != nil {
		le.keys = append(le.keys, key)
	}
	return le != nil
}

// Revoke ends lease and returns its keys; ok is false when there is no such lease.
func (l *SimLeases) Revoke(id string) (keys []string, ok bool) {
	le := l.leases[id]
	delete(l.leases, id)
	if le == nil {
		return nil, false
	}
	return le.keys, true
}

// Expire ends every lease whose time is up at now and returns their keys.
func (l *SimLeases) Expire(now time.Time) (keys []string) {
	for id, le := range l.leases {
		if !now.Before(le.expires) {
			keys = append(keys, le.keys...)
			delete(l.leases, id)
		}
	}
	return keys
}

// Refresh gives every lease its whole TTL again from now, as a new leader's lessor
// does when it takes over.
func (l *SimLeases) Refresh(now time.Time) {
	for _, le := range l.leases {
		le.expires = now.Add(le.ttl)
	}
}
