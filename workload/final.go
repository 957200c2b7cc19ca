package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/faultline/faultline/history"
)

// finalBackoff is how long a final read waits after an attempt that did not succeed.
const finalBackoff = 200 * time.Millisecond

// FinalReads reads each key once more, after the faults are healed: a register read
// for the register workload, a list read for set and append. A read that does not
// succeed is retried under a new process, until one is ok or ctx ends. Up to
// cfg.Concurrency keys are read at once, under process ids above every one rec has
// seen, and counted in cfg.Progress if set. It returns an error naming the keys left
// unread when ctx ends first.
func FinalReads(ctx context.Context, cfg Config, open Opener, rec *history.Recorder, keys []string) error {
	cfg, err := cfg.normalize()
	if err != nil {
		return err
	}
	if open == nil || rec == nil {
		return errors.New("workload: final reads need an opener and a recorder")
	}
	var next atomic.Int64
	next.Store(int64(rec.MaxProcess()))
	newProcess := func() int { return int(next.Add(1)) }

	var mu sync.Mutex
	var unread []string
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	for _, key := range keys {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			read := false
			func() {
				defer func() { _ = recover() }() // an opener that panics read nothing
				read = finalRead(ctx, cfg, open, rec, key, newProcess)
			}()
			if !read {
				mu.Lock()
				unread = append(unread, key)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(unread) > 0 {
		return fmt.Errorf("workload: final reads: %d of %d keys unread (%v): %w",
			len(unread), len(keys), abbreviate(unread, 10), context.Cause(ctx))
	}
	return nil
}

// finalRead reads key until a read is ok, each attempt on a new process. It reports
// whether one was.
func finalRead(ctx context.Context, cfg Config, open Opener, rec *history.Recorder, key string, newProcess func() int) bool {
	d, _ := Lookup(cfg.Workload)
	o := op{f: history.OpRead, key: key, list: d != nil && d.List}
	if d != nil && d.final != nil {
		o = d.final(key)
	}
	for ctx.Err() == nil {
		sess := session{process: newProcess()}
		c, node, err := open(ctx, sess.process)
		if err == nil && c != nil {
			sess.client, sess.node = c, node
			t, _, _ := sess.do(ctx, rec, cfg.OpTimeout, o)
			sess.close()
			if cfg.Progress != nil {
				cfg.Progress.count(t)
			}
			if t == history.OK {
				return true
			}
		}
		sleep(ctx, finalBackoff, time.Time{})
	}
	return false
}

func abbreviate(keys []string, n int) string {
	if len(keys) <= n {
		return fmt.Sprint(keys)
	}
	return fmt.Sprintf("%v and %d more", keys[:n], len(keys)-n)
}
