package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// openBackoff is how long a worker waits after its Opener failed before trying again.
const openBackoff = 100 * time.Millisecond

// errorBackoff is how long a worker waits after an operation failed with an error (not a
// cas mismatch) or ended indeterminate: a node that refuses at once (down, removed, no
// leader) would otherwise be hammered in a tight loop, starving the nodes of the CPU
// and swamping the history with failures that say nothing new.
const errorBackoff = 50 * time.Millisecond

// Run drives cfg's workload through clients from open, recording every operation in
// rec, until the time limit passes or ctx ends. It returns once every operation in
// flight has completed and been recorded: an operation cut off by ctx is info.
// Stopping at the time limit or on ctx is not an error; Run fails only on a bad
// config, or when a worker panicked (the others go on to the end).
func Run(ctx context.Context, cfg Config, open Opener, rec *history.Recorder) (Stats, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return Stats{}, err
	}
	if open == nil || rec == nil {
		return Stats{}, errors.New("workload: run needs an opener and a recorder")
	}
	prog := cfg.Progress
	if prog == nil {
		prog = NewProgress()
	}
	var deadline time.Time
	if cfg.TimeLimit > 0 {
		deadline = time.Now().Add(cfg.TimeLimit)
	}
	gen := newSource(cfg)
	pace := newPacer(cfg.Rate)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for w := range cfg.Concurrency {
		wk := &worker{id: w, cfg: cfg, rnd: workerRand(cfg.Seed, w), gen: gen, pace: pace,
			open: open, rec: rec, prog: prog, sess: session{process: w}}
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil { // a bug of ours: stop this worker, say so
					mu.Lock()
					errs = append(errs, fmt.Errorf("workload: worker %d panicked: %v", w, p))
					mu.Unlock()
				}
			}()
			wk.run(ctx, deadline)
		})
	}
	if bg, ok := gen.(backgrounder); ok {
		wg.Go(func() {
			defer func() {
				if p := recover(); p != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("workload: %s's background operations panicked: %v", cfg.Workload, p))
					mu.Unlock()
				}
			}()
			bg.background(ctx, deadline, open, rec)
		})
	}
	wg.Wait()
	return prog.Stats(), errors.Join(errs...)
}

// backgrounder is a source that also runs operations of its own beside the workers,
// until the deadline or ctx's end (the kubernetes workload's long watches).
type backgrounder interface {
	background(ctx context.Context, deadline time.Time, open Opener, rec *history.Recorder)
}

// worker is one logical client: it issues one operation at a time, under process ids
// w, w+Concurrency, w+2·Concurrency, … — a new one after each info.
type worker struct {
	id   int
	cfg  Config
	rnd  *rand.Rand
	gen  source
	pace *pacer
	open Opener
	rec  *history.Recorder
	prog *Progress
	sess session
}

func (w *worker) run(ctx context.Context, deadline time.Time) {
	defer w.sess.close()
	for w.pace.wait(ctx, deadline) && w.connect(ctx, deadline) {
		o := w.gen.next(w.rnd)
		for _, k := range o.keys() {
			w.prog.touch(k)
		}
		t, result, errMsg := w.sess.do(ctx, w.rec, w.cfg.OpTimeout, o)
		w.prog.count(t)
		w.gen.done(o, t, result, errMsg)
		if t == history.Info {
			w.sess.retire(w.sess.process + w.cfg.Concurrency)
		}
		if t == history.Info || t == history.Fail && !normalFail(errMsg) {
			sleep(ctx, errorBackoff, deadline)
		}
	}
}

// connect opens the worker's client if it has none, retrying until it succeeds, the
// deadline passes or ctx ends. It reports whether the worker may go on.
func (w *worker) connect(ctx context.Context, deadline time.Time) bool {
	for w.sess.client == nil {
		c, node, err := w.open(ctx, w.sess.process)
		if err == nil && c != nil {
			w.sess.client, w.sess.node = c, node
			return true
		}
		if !sleep(ctx, openBackoff, deadline) {
			return false
		}
	}
	return true
}

// session is a process with its open client.
type session struct {
	process int
	client  Client
	node    string
}

// do records o's invoke, runs it with the op timeout, and records its completion, which
// it returns: the type, the result and the error (if any).
func (s *session) do(ctx context.Context, rec *history.Recorder, timeout time.Duration, o op) (history.Type, history.Value, string) {
	ev := history.Event{Process: s.process, Type: history.Invoke, F: o.f, Key: o.key,
		Value: o.invokeValue(), Node: s.node}
	rec.Record(ev)
	octx, cancel := context.WithTimeout(ctx, timeout)
	octx, rev := WithRevision(octx)
	result, err := apply(octx, s.client, o)
	cancel()
	ev.Type, ev.Error = classify(err)
	if ev.Type == history.OK || o.f != history.OpRead {
		ev.Value = result
	}
	if ev.Type == history.OK {
		ev.Rev = rev.Load()
	}
	rec.Record(ev)
	return ev.Type, result, ev.Error
}

// retire closes the session's client; the next one opens under process.
func (s *session) retire(process int) {
	s.close()
	s.process, s.client, s.node = process, nil, ""
}

func (s *session) close() {
	if c, ok := s.client.(io.Closer); ok {
		_ = c.Close()
	}
}

// apply runs o on c and returns its result: what a read read, else o's argument.
//
// A client that panics has answered nothing: its operation is indeterminate (the error
// is not definite), and the run goes on.
func apply(ctx context.Context, c Client, o op) (v history.Value, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = history.Value{}, fmt.Errorf("client panicked: %v", p)
		}
	}()
	switch o.f {
	case history.OpRead:
		if o.list {
			l, err := c.ReadList(ctx, o.key)
			if err != nil {
				return history.Value{}, err
			}
			return history.L(l...), nil
		}
		v, found, err := c.Read(ctx, o.key)
		if err != nil || !found {
			return history.Value{}, err
		}
		return history.S1(v), nil
	case history.OpWrite:
		return o.invokeValue(), c.Write(ctx, o.key, o.arg)
	case history.OpCAS:
		return o.invokeValue(), c.CAS(ctx, o.key, o.from, o.arg)
	case history.OpGrant, history.OpPut, history.OpKeepAlive, history.OpRevoke:
		return applyLease(ctx, c, o)
	case history.OpTxn:
		return applyTxn(ctx, c, o)
	case history.OpCreate, history.OpUpdate, history.OpDelete, history.OpGet, history.OpList, history.OpCompact, history.OpWatch:
		return applyKeyspace(ctx, c, o)
	default: // append, add
		return o.invokeValue(), c.Append(ctx, o.key, o.arg)
	}
}

// pacer spaces operations across all workers at most one per interval (no burst).
// A nil pacer does not limit.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func newPacer(rate float64) *pacer {
	if rate <= 0 {
		return nil
	}
	return &pacer{interval: time.Duration(float64(time.Second) / rate)}
}

// wait blocks until the caller's turn and reports whether it may issue an operation:
// false once ctx has ended or the turn falls after the deadline (zero: none).
func (p *pacer) wait(ctx context.Context, deadline time.Time) bool {
	if p == nil {
		return ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline))
	}
	p.mu.Lock()
	now := time.Now()
	turn := p.next
	if turn.Before(now) {
		turn = now
	}
	p.next = turn.Add(p.interval)
	p.mu.Unlock()
	if !deadline.IsZero() && !turn.Before(deadline) {
		return false
	}
	return sleep(ctx, turn.Sub(now), deadline)
}

// sleep waits for d and reports whether ctx is still live and the deadline (zero:
// none) not yet passed.
func sleep(ctx context.Context, d time.Duration, deadline time.Time) bool {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline))
}
