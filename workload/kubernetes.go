package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
)

// Keyspacer is what a Client also implements to run the kubernetes workload: etcd's
// keyspace as the Kubernetes API server uses it. Revisions are the server's. Every
// write is conditional on the key's mod revision (0: the key is absent), as the API
// server's optimistic concurrency is; a condition that does not hold is a
// *ConflictError carrying the mod revision the server found. A read of a revision
// compacted away is ErrCompacted.
type Keyspacer interface {
	// Put writes key = value if the key's mod revision is expect (0: a create) and
	// returns the revision it made.
	Put(ctx context.Context, key, value string, expect int64) (rev int64, err error)
	// Delete deletes key if its mod revision is expect, and returns the revision it made.
	Delete(ctx context.Context, key string, expect int64) (rev int64, err error)
	// Get reads key at the latest revision: the store's revision (header), and the
	// key's mod revision and value (mod 0: absent).
	Get(ctx context.Context, key string) (header, mod int64, value string, err error)
	// List reads up to limit keys (0: no limit) of prefix from start on, in key order,
	// at revision rev (0: the latest); header is the store's revision, more whether
	// keys of the range are left after those returned.
	List(ctx context.Context, prefix, start string, rev, limit int64) (header int64, kvs []KV, more bool, err error)
	// Compact compacts the keyspace's history up to rev.
	Compact(ctx context.Context, rev int64) error
	// Watch watches prefix from revision from, with each event's previous value, for
	// d, asking for a progress notification on the way; it returns the events
	// received. A watch the server cancels because from was compacted returns the
	// events before the cancel, then the cancel (history.WatchCompacted at the
	// server's compact revision, when it says), and ErrCompacted.
	Watch(ctx context.Context, prefix string, from int64, d time.Duration) ([]WatchEvent, error)
}

// WatchEvent is one event a watch received: a put or a delete (history.WatchPut,
// WatchDelete) of Key at Rev, with Value and the previous value Prev, a progress
// notification (history.WatchProgress) at Rev, or the watch's cancel for compaction
// (history.WatchCompacted) at the compact revision Rev.
type WatchEvent struct {
	Rev              int64
	Type             string
	Key, Value, Prev string
}

// KV is a key as a list returns it.
type KV struct {
	Key, Value string
	Mod        int64
}

// ConflictError is the definite error of a conditional write whose condition did not
// hold: Found is the key's mod revision the server found (0: absent). It is recorded
// as a fail with Error history.Conflict and Found as its value.
type ConflictError struct{ Found int64 }

func (e *ConflictError) Error() string  { return history.Conflict }
func (e *ConflictError) Definite() bool { return true }

// ErrCompacted is the definite error of a read at, or a compaction to, a revision
// already compacted: recorded as a fail with Error history.Compacted.
var ErrCompacted error = &definiteError{msg: history.Compacted}

// The kubernetes workload's shape.
const (
	k8sLiveKeys  = 10                     // keys kept alive under each prefix (creates refill, deletes thin)
	k8sPageLimit = 4                      // a list page's limit
	k8sWatchFor  = 500 * time.Millisecond // how long a watch watches
	k8sResume    = 20                     // a watch with no list to follow resumes this many revisions back
)

// k8sPrefixes are the resources the kubernetes workload stores, as the API server lays
// them out under /registry.
var k8sPrefixes = []string{"/registry/pods/", "/registry/configmaps/"}

// kubernetesSource makes the kubernetes workload's operations, sharing what the
// answers taught it across workers as the API server's watch cache does: the live keys
// of each prefix with the mod revision last seen (an update or delete expects it, and
// meets a conflict when another client wrote since), the list pages to continue (the
// next page at the first page's revision, from the last key + "\x00"), and the
// revisions to compact to (the one seen at the previous compaction, as the API server
// compacts what was current one interval ago).
type kubernetesSource struct {
	mix   []Weighted
	total int
	every time.Duration // Config.CompactInterval

	nextCompact time.Time // with every: when the next compaction is due

	mu        sync.Mutex
	names     int                // keys made so far
	values    int                // values written so far
	live      []map[string]int64 // per prefix: key → mod revision last seen
	pages     []page             // list pages to continue
	watchFrom []int64            // revisions to watch from: first pages' headers + 1
	seen      int64              // the highest revision seen
	compactTo int64              // the revision to compact to next
	compacted int64              // the highest compaction acknowledged
}

type page struct {
	prefix, start string
	rev           int64
}

// newKubernetesSource is the kubernetes workload's source: its mix names the keyspace
// operations, history.OpCreate … OpCompact and OpWatch.
func newKubernetesSource(d *Def, cfg Config) source {
	s := &kubernetesSource{mix: d.Mix, every: cfg.CompactInterval, live: make([]map[string]int64, len(k8sPrefixes))}
	for _, w := range s.mix {
		s.total += w.Weight
	}
	for i := range s.live {
		s.live[i] = map[string]int64{}
	}
	return s
}

// next draws the same numbers every time: a prefix, an operation, and a pick among
// the prefix's live keys. With a compaction interval, the mix's compactions are lists
// and a compaction comes when the interval is up instead.
func (s *kubernetesSource) next(r *rand.Rand) op {
	p, f, pick := r.IntN(len(k8sPrefixes)), pickOp(s.mix, r.IntN(s.total)), r.IntN(1<<20)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.every > 0 {
		if f == history.OpCompact {
			f = history.OpList
		}
		if now := time.Now(); !now.Before(s.nextCompact) {
			s.nextCompact, f = now.Add(s.every), history.OpCompact
		}
	}
	prefix := k8sPrefixes[p]
	keys := sortedKeys(s.live[p])
	if len(keys) < k8sLiveKeys/2 && (f == history.OpUpdate || f == history.OpDelete) ||
		len(keys) == 0 && f == history.OpGet {
		f = history.OpCreate // too few to update, delete or get
	}
	if f == history.OpDelete && len(keys) <= k8sLiveKeys/2 || f == history.OpCreate && len(keys) >= 2*k8sLiveKeys {
		f = history.OpUpdate
	}
	switch f {
	case history.OpCreate:
		s.names++
		s.values++
		return op{f: f, key: prefix + "obj-" + strconv.Itoa(s.names), arg: "v" + strconv.Itoa(s.values), slot: p}
	case history.OpUpdate, history.OpDelete, history.OpGet:
		k := keys[pick%len(keys)]
		o := op{f: f, key: k, rev: s.live[p][k], slot: p}
		if f == history.OpUpdate {
			s.values++
			o.arg = "v" + strconv.Itoa(s.values)
		}
		return o
	case history.OpWatch:
		from := max(s.seen-k8sResume, 1)
		if len(s.watchFrom) > 0 {
			from, s.watchFrom = s.watchFrom[0], s.watchFrom[1:]
		}
		return op{f: f, key: prefix, rev: from, slot: p}
	case history.OpCompact:
		if s.compactTo > s.compacted {
			o := op{f: f, rev: s.compactTo, slot: p}
			s.compactTo = s.seen
			return o
		}
		s.compactTo = max(s.compactTo, s.seen)
		fallthrough // nothing to compact yet: a list
	default:
		if i := slices.IndexFunc(s.pages, func(pg page) bool { return pg.prefix == prefix }); i >= 0 {
			pg := s.pages[i]
			s.pages = slices.Delete(s.pages, i, i+1)
			return op{f: history.OpList, key: prefix, start: pg.start, rev: pg.rev, limit: k8sPageLimit, slot: p}
		}
		return op{f: history.OpList, key: prefix, start: prefix, limit: k8sPageLimit, slot: p}
	}
}

func sortedKeys(m map[string]int64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// done learns from an answer: revisions, and keys with their mod revisions.
func (s *kubernetesSource) done(o op, t history.Type, result history.Value, errMsg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live := s.live[o.slot]
	rev := func(x string) int64 { n, _ := strconv.ParseInt(x, 10, 64); return n }
	switch {
	case o.f == history.OpCompact:
		if t == history.OK || errMsg == history.Compacted {
			s.compacted = max(s.compacted, o.rev)
		}
	case t == history.Fail && errMsg == history.Conflict && result.Kind == history.Str:
		if m := rev(result.S); m > 0 {
			live[o.key] = m
		} else {
			delete(live, o.key)
		}
	case t != history.OK:
	case o.f == history.OpCreate || o.f == history.OpUpdate:
		live[o.key] = rev(result.S)
		s.seen = max(s.seen, rev(result.S))
	case o.f == history.OpDelete:
		delete(live, o.key)
		s.seen = max(s.seen, rev(result.S))
	case o.f == history.OpGet && len(result.L) >= 2:
		s.seen = max(s.seen, rev(result.L[0]))
		if m := rev(result.L[1]); m > 0 {
			live[o.key] = m
		} else {
			delete(live, o.key)
		}
	case o.f == history.OpList && len(result.L) >= 2:
		h := rev(result.L[0])
		s.seen = max(s.seen, h)
		var last string
		for i := 2; i+2 < len(result.L); i += 3 {
			live[result.L[i]], last = rev(result.L[i+1]), result.L[i]
		}
		if o.rev == 0 && len(s.watchFrom) < 16 { // a first page: watch from after it, as the API server does
			s.watchFrom = append(s.watchFrom, h+1)
		}
		if result.L[1] == "1" && last != "" {
			at := o.rev
			if at == 0 {
				at = h
			}
			s.pages = append(s.pages, page{prefix: o.key, start: last + "\x00", rev: at})
		}
	}
}

// k8sWatchers is how many long watches the kubernetes workload keeps open on each
// prefix for the whole run, beside its workers' half-second ones, as the API server
// keeps a watch per resource open on its etcd member: what a member that falls behind
// and catches up by a snapshot delivers across it is what etcd#15271 got wrong. Their
// processes are watcherProcess + 0, 1, …: consecutive, above every worker's, so that an
// opener that picks the node by process mod nodes puts one on each of up to
// k8sWatchers nodes.
const (
	k8sWatchers    = 5
	watcherProcess = 1_000_000_000
)

// background runs the long watches: each watches its prefix from revision 1, and when
// its watch ends (its member went away, or the server cancelled it for a compaction)
// opens another from the revision after the last it saw (at least the highest
// compaction acknowledged), under the same process, until the deadline. Each watch is
// one operation in the history; a watch changes nothing, so an error ends it as a fail.
func (s *kubernetesSource) background(ctx context.Context, deadline time.Time, open Opener, rec *history.Recorder) {
	var wg sync.WaitGroup
	for p, prefix := range k8sPrefixes {
		for i := range k8sWatchers {
			wg.Go(func() { s.longWatch(ctx, deadline, open, rec, watcherProcess+p*k8sWatchers+i, prefix) })
		}
	}
	wg.Wait()
}

func (s *kubernetesSource) longWatch(ctx context.Context, deadline time.Time, open Opener, rec *history.Recorder, process int, prefix string) {
	from := int64(1)
	for ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
		c, node, err := open(ctx, process)
		if err != nil || c == nil {
			sleep(ctx, errorBackoff, deadline)
			continue
		}
		k, ok := c.(Keyspacer)
		if !ok {
			return
		}
		d := 24 * time.Hour
		if !deadline.IsZero() {
			d = time.Until(deadline)
		}
		ev := history.Event{Process: process, Type: history.Invoke, F: history.OpWatch, Key: prefix,
			Value: history.S1(strconv.FormatInt(from, 10)), Node: node}
		rec.Record(ev)
		evs, err := k.Watch(ctx, prefix, from, d)
		if cl, ok := c.(io.Closer); ok {
			_ = cl.Close()
		}
		l := make([]string, 0, 5*len(evs))
		for _, e := range evs {
			l = append(l, strconv.FormatInt(e.Rev, 10), e.Type, e.Key, e.Value, e.Prev)
			next := e.Rev + 1
			if e.Type == history.WatchCompacted {
				next = e.Rev // the compacted revision itself can still be watched
			}
			from = max(from, next)
		}
		ev.Type, ev.Value, ev.Error = history.OK, history.L(l...), ""
		if err != nil {
			ev.Type, ev.Error = history.Fail, err.Error()
			if errors.Is(err, ErrCompacted) {
				ev.Error = history.Compacted
			}
		}
		rec.Record(ev)
		if err != nil {
			s.mu.Lock()
			from = max(from, s.compacted)
			s.mu.Unlock()
			sleep(ctx, errorBackoff, deadline)
		}
	}
}

// finalGet is a key's final read: a get.
func finalGet(key string) op { return op{f: history.OpGet, key: key} }

// applyKeyspace runs one of the kubernetes workload's operations on c, which must
// implement Keyspacer. A write returns the revision it made (a conflict: the mod
// revision found); a get [header, mod, value] ([header, "0"] when absent); a list
// [header, more, key, mod, value, …].
func applyKeyspace(ctx context.Context, c Client, o op) (history.Value, error) {
	k, ok := c.(Keyspacer)
	if !ok {
		return o.invokeValue(), Definite(fmt.Errorf("the target's client (%T) has no revisioned keyspace", c))
	}
	num := func(n int64) string { return strconv.FormatInt(n, 10) }
	wrote := func(rev int64, err error) (history.Value, error) {
		var ce *ConflictError
		switch {
		case errors.As(err, &ce):
			return history.S1(num(ce.Found)), err
		case err != nil:
			return o.invokeValue(), err
		}
		return history.S1(num(rev)), nil
	}
	switch o.f {
	case history.OpCreate:
		return wrote(k.Put(ctx, o.key, o.arg, 0))
	case history.OpUpdate:
		return wrote(k.Put(ctx, o.key, o.arg, o.rev))
	case history.OpDelete:
		return wrote(k.Delete(ctx, o.key, o.rev))
	case history.OpGet:
		h, m, v, err := k.Get(ctx, o.key)
		switch {
		case err != nil:
			return history.Value{}, err
		case m == 0:
			return history.L(num(h), "0"), nil
		}
		return history.L(num(h), num(m), v), nil
	case history.OpList:
		h, kvs, more, err := k.List(ctx, o.key, o.start, o.rev, int64(o.limit))
		if err != nil {
			return history.Value{}, err
		}
		l := []string{num(h), "0"}
		if more {
			l[1] = "1"
		}
		for _, x := range kvs {
			l = append(l, x.Key, num(x.Mod), x.Value)
		}
		return history.L(l...), nil
	case history.OpWatch:
		evs, err := k.Watch(ctx, o.key, o.rev, k8sWatchFor)
		l := make([]string, 0, 5*len(evs))
		for _, e := range evs {
			l = append(l, num(e.Rev), e.Type, e.Key, e.Value, e.Prev)
		}
		return history.L(l...), err
	default: // compact
		return o.invokeValue(), k.Compact(ctx, o.rev)
	}
}
