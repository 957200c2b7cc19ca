package workload

import (
	"sync"
	"sync/atomic"

	"github.com/faultline/faultline/history"
)

// Stats sums up a run: completions by type, and every key an operation was invoked on,
// in the order first touched (the keys FinalReads should read).
type Stats struct {
	OK, Fail, Info int64
	Keys           []string
}

// Progress is a run's live counters. Workers update it; a renderer may poll it at any
// time from another goroutine. The zero Progress is ready to use.
type Progress struct {
	ok, fail, info atomic.Int64

	mu   sync.Mutex
	keys []string
	seen map[string]struct{}
}

// NewProgress returns empty counters, for Config.Progress.
func NewProgress() *Progress { return &Progress{} }

// Counts returns the completions so far.
func (p *Progress) Counts() (ok, fail, info int64) {
	return p.ok.Load(), p.fail.Load(), p.info.Load()
}

// Keys returns the keys touched so far, in the order first touched.
func (p *Progress) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.keys...)
}

// Stats returns the counts and keys so far.
func (p *Progress) Stats() Stats {
	ok, fail, info := p.Counts()
	return Stats{OK: ok, Fail: fail, Info: info, Keys: p.Keys()}
}

func (p *Progress) touch(key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.seen[key]; ok {
		return
	}
	if p.seen == nil {
		p.seen = make(map[string]struct{})
	}
	p.seen[key] = struct{}{}
	p.keys = append(p.keys, key)
}

func (p *Progress) count(t history.Type) {
	switch t {
	case history.OK:
		p.ok.Add(1)
	case history.Fail:
		p.fail.Add(1)
	case history.Info:
		p.info.Add(1)
	}
}
