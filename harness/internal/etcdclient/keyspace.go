package etcdclient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	grpcstatus "google.golang.org/grpc/status"

	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

var _ workload.Keyspacer = (*Client)(nil)

// Put implements workload.Keyspacer as the Kubernetes API server writes an object
// (client/v3/kubernetes's OptimisticPut): one txn, If(ModRevision(key) == expect)
// Then(Put) Else(Get); expect 0 is a create, etcd's mod revision of an absent key being
// 0. The Else branch's key says what a conflict found.
func (c *Client) Put(ctx context.Context, key, value string, expect int64) (int64, error) {
	return c.guarded(ctx, key, expect, clientv3.OpPut(key, value))
}

// Delete implements workload.Keyspacer: If(ModRevision(key) == expect) Then(Delete)
// Else(Get), as the API server deletes.
func (c *Client) Delete(ctx context.Context, key string, expect int64) (int64, error) {
	return c.guarded(ctx, key, expect, clientv3.OpDelete(key))
}

func (c *Client) guarded(ctx context.Context, key string, expect int64, then clientv3.Op) (int64, error) {
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	resp, err := c.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", expect)).
		Then(then).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return 0, Classify(err, true)
	}
	if resp.Succeeded {
		return resp.Header.Revision, nil
	}
	if len(resp.Responses) != 1 || resp.Responses[0].GetResponseRange() == nil {
		return 0, workload.Definite(fmt.Errorf("conditional write of %q: unexpected Else response %v", key, resp.Responses))
	}
	found := int64(0)
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		found = kvs[0].ModRevision
	}
	return 0, &workload.ConflictError{Found: found}
}

// Get implements workload.Keyspacer: a linearizable get (serializable under
// Config.Serializable, the unsafe mode).
func (c *Client) Get(ctx context.Context, key string) (header, mod int64, value string, err error) {
	ctx, cancel := c.opCtx(ctx, !c.cfg.Serializable)
	defer cancel()
	resp, err := c.cli.Get(ctx, key, c.readOpts()...)
	if err != nil {
		return 0, 0, "", Classify(err, false)
	}
	if len(resp.Kvs) > 0 {
		mod, value = resp.Kvs[0].ModRevision, string(resp.Kvs[0].Value)
	}
	return resp.Header.Revision, mod, value, nil
}

// List implements workload.Keyspacer as the API server pages a list: a range from
// start to the end of prefix's keys, with a limit, at rev (0: the latest,
// linearizable, or serializable under Config.Serializable). A revision compacted away
// is workload.ErrCompacted.
func (c *Client) List(ctx context.Context, prefix, start string, rev, limit int64) (int64, []workload.KV, bool, error) {
	ctx, cancel := c.opCtx(ctx, !c.cfg.Serializable)
	defer cancel()
	opts := append([]clientv3.OpOption{clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(limit)}, c.readOpts()...)
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	resp, err := c.cli.Get(ctx, start, opts...)
	if err != nil {
		if compacted(err) {
			return 0, nil, false, workload.ErrCompacted
		}
		return 0, nil, false, Classify(err, false)
	}
	kvs := make([]workload.KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = workload.KV{Key: string(kv.Key), Value: string(kv.Value), Mod: kv.ModRevision}
	}
	return resp.Header.Revision, kvs, resp.More, nil
}

// Compact implements workload.Keyspacer, as the API server compacts. A revision
// compacted already is workload.ErrCompacted.
func (c *Client) Compact(ctx context.Context, rev int64) error {
	ctx, cancel := c.opCtx(ctx, true)
	defer cancel()
	_, err := c.cli.Compact(ctx, rev) // not physical, as the API server compacts: applied, reads below it fail
	if compacted(err) {
		return workload.ErrCompacted
	}
	return Classify(err, true)
}

// compacted says whether err is etcd's "required revision has been compacted".
func compacted(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, rpctypes.ErrCompacted) {
		return true
	}
	st, ok := grpcstatus.FromError(err)
	return ok && st.Message() == rpctypes.ErrorDesc(rpctypes.ErrGRPCCompacted)
}

// Watch implements workload.Keyspacer as the API server watches a resource: prefix
// from revision from, with previous values and progress notifications, without
// require-leader (a watch stays on its member through a partition, as etcd's
// robustness tests watch). Every second (or half-way through a shorter watch) it asks
// for a progress notification (etcd sends one only when the watch has caught up). It
// ends after d, or when the server cancels
// it: for a compacted revision with workload.ErrCompacted, otherwise with the server's
// error (definite: a watch changes nothing).
func (c *Client) Watch(ctx context.Context, prefix string, from int64, d time.Duration) ([]workload.WatchEvent, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	wch := c.cli.Watch(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(from), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	ask := time.NewTicker(min(d/2, time.Second))
	defer ask.Stop()
	var evs []workload.WatchEvent
	for {
		select {
		case <-ask.C:
			_ = c.cli.RequestProgress(ctx) // best effort: a notification is evidence, not a duty
			continue
		case resp, ok := <-wch:
			if !ok {
				return evs, nil // d is up
			}
			if resp.Canceled {
				if resp.CompactRevision > 0 || compacted(resp.Err()) {
					if resp.CompactRevision > 0 {
						evs = append(evs, workload.WatchEvent{Rev: resp.CompactRevision, Type: history.WatchCompacted})
					}
					return evs, workload.ErrCompacted
				}
				if ctx.Err() != nil {
					return evs, nil
				}
				return evs, workload.Definite(fmt.Errorf("watch cancelled: %w", resp.Err()))
			}
			if err := resp.Err(); err != nil {
				return evs, workload.Definite(err)
			}
			if resp.IsProgressNotify() {
				evs = append(evs, workload.WatchEvent{Rev: resp.Header.Revision, Type: history.WatchProgress})
				continue
			}
			for _, e := range resp.Events {
				we := workload.WatchEvent{Rev: e.Kv.ModRevision, Type: history.WatchPut, Key: string(e.Kv.Key), Value: string(e.Kv.Value)}
				if e.Type == clientv3.EventTypeDelete {
					we.Type, we.Value = history.WatchDelete, ""
				}
				if e.PrevKv != nil {
					we.Prev = string(e.PrevKv.Value)
				}
				evs = append(evs, we)
			}
		}
	}
}
