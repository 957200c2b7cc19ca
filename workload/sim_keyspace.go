package workload

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// SimKeyspace is a revisioned keyspace for simulated stores, as etcd keeps one: every
// write makes a new revision, each key keeps its versions, and reads at a revision at
// or above the compacted one see the keyspace as it was. It is not safe for concurrent
// use: the store's lock guards it.
type SimKeyspace struct {
	// StaleReads makes gets and lists at the latest revision read one revision back,
	// and SkipWatchEvent makes every watch leave out its second event: deliberate
	// bugs, for tests that the keyspace check catches them.
	StaleReads     bool
	SkipWatchEvent bool

	rev       int64 // the latest revision (1: empty, as etcd starts)
	compacted int64
	versions  map[string][]simVersion
}

type simVersion struct {
	rev     int64
	value   string
	deleted bool
}

// at returns key's mod revision and value at rev (mod 0: absent).
func (k *SimKeyspace) at(key string, rev int64) (int64, string) {
	vs := k.versions[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].rev <= rev {
			if vs[i].deleted {
				return 0, ""
			}
			return vs[i].rev, vs[i].value
		}
	}
	return 0, ""
}

func (k *SimKeyspace) latest() int64 {
	if k.rev == 0 {
		k.rev = 1
	}
	return k.rev
}

func (k *SimKeyspace) write(key, value string, deleted bool, expect int64) (int64, error) {
	if mod, _ := k.at(key, k.latest()); mod != expect {
		return 0, &ConflictError{Found: mod}
	}
	if k.versions == nil {
		k.versions = map[string][]simVersion{}
	}
	k.rev++
	k.versions[key] = append(k.versions[key], simVersion{rev: k.rev, value: value, deleted: deleted})
	return k.rev, nil
}

// Put writes key if its mod revision is expect (see Keyspacer).
func (k *SimKeyspace) Put(key, value string, expect int64) (int64, error) {
	return k.write(key, value, false, expect)
}

// Delete deletes key if its mod revision is expect (see Keyspacer).
func (k *SimKeyspace) Delete(key string, expect int64) (int64, error) {
	if expect == 0 {
		return 0, &ConflictError{} // nothing to delete: etcd would make no revision
	}
	return k.write(key, "", true, expect)
}

// Get reads key at the latest revision.
func (k *SimKeyspace) Get(key string) (header, mod int64, value string) {
	h := k.latest()
	at := h
	if k.StaleReads && at > 1 {
		at--
	}
	mod, value = k.at(key, at)
	return h, mod, value
}

// List reads a page of prefix from start at rev (0: the latest).
func (k *SimKeyspace) List(prefix, start string, rev, limit int64) (int64, []KV, bool, error) {
	h := k.latest()
	at := rev
	switch {
	case rev == 0 && k.StaleReads && h > 1:
		at = h - 1
	case rev == 0:
		at = h
	case rev < k.compacted:
		return 0, nil, false, ErrCompacted
	}
	var keys []string
	for key := range k.versions {
		if strings.HasPrefix(key, prefix) && key >= start {
			if mod, _ := k.at(key, at); mod > 0 {
				keys = append(keys, key)
			}
		}
	}
	slices.Sort(keys)
	more := limit > 0 && int64(len(keys)) > limit
	if more {
		keys = keys[:limit]
	}
	kvs := make([]KV, len(keys))
	for i, key := range keys {
		mod, v := k.at(key, at)
		kvs[i] = KV{Key: key, Value: v, Mod: mod}
	}
	return h, kvs, more, nil
}

// Compact compacts to rev.
func (k *SimKeyspace) Compact(rev int64) error {
	if rev <= k.compacted {
		return ErrCompacted
	}
	k.compacted = min(rev, k.latest())
	return nil
}

// Put implements Keyspacer.
func (s *SimStore) Put(ctx context.Context, key, value string, expect int64) (rev int64, err error) {
	err = s.do(ctx, func() (err error) { rev, err = s.Keyspace.Put(key, value, expect); return err })
	return rev, err
}

// Delete implements Keyspacer.
func (s *SimStore) Delete(ctx context.Context, key string, expect int64) (rev int64, err error) {
	err = s.do(ctx, func() (err error) { rev, err = s.Keyspace.Delete(key, expect); return err })
	return rev, err
}

// Get implements Keyspacer.
func (s *SimStore) Get(ctx context.Context, key string) (header, mod int64, value string, err error) {
	err = s.do(ctx, func() error { header, mod, value = s.Keyspace.Get(key); return nil })
	return header, mod, value, err
}

// List implements Keyspacer.
func (s *SimStore) List(ctx context.Context, prefix, start string, rev, limit int64) (header int64, kvs []KV, more bool, err error) {
	err = s.do(ctx, func() (err error) { header, kvs, more, err = s.Keyspace.List(prefix, start, rev, limit); return err })
	return header, kvs, more, err
}

// Compact implements Keyspacer.
func (s *SimStore) Compact(ctx context.Context, rev int64) error {
	return s.do(ctx, func() error { return s.Keyspace.Compact(rev) })
}

// Watch returns the events of prefix from revision from to the latest, each with its
// previous value, then a progress notification at the latest revision. (Whether from
// was compacted when the watch began is the caller's to say: a watch already under
// way is not cancelled by a later compaction.)
func (k *SimKeyspace) Watch(prefix string, from int64) []WatchEvent {
	var evs []WatchEvent
	for key, vs := range k.versions {
		if !strings.HasPrefix(key, prefix) {
			continue
		}
		for i, v := range vs {
			if v.rev < from {
				continue
			}
			e := WatchEvent{Rev: v.rev, Type: history.WatchPut, Key: key, Value: v.value}
			if v.deleted {
				e.Type, e.Value = history.WatchDelete, ""
			}
			if i > 0 && !vs[i-1].deleted {
				e.Prev = vs[i-1].value
			}
			evs = append(evs, e)
		}
	}
	slices.SortFunc(evs, func(a, b WatchEvent) int { return cmp.Compare(a.Rev, b.Rev) })
	if k.SkipWatchEvent && len(evs) > 1 {
		evs = slices.Delete(evs, 1, 2)
	}
	return append(evs, WatchEvent{Rev: k.latest(), Type: history.WatchProgress})
}

// Watch implements Keyspacer: the events from the start of the watch to its end, d
// later (or ctx's end).
func (s *SimStore) Watch(ctx context.Context, prefix string, from int64, d time.Duration) (evs []WatchEvent, err error) {
	s.mu.Lock()
	compacted := s.Keyspace.compacted
	s.mu.Unlock()
	if from < compacted {
		return []WatchEvent{{Rev: compacted, Type: history.WatchCompacted}}, ErrCompacted
	}
	if !sleep(ctx, d, time.Time{}) {
		return nil, ctx.Err()
	}
	err = s.do(ctx, func() error { evs = s.Keyspace.Watch(prefix, from); return nil })
	return evs, err
}
