package workload

import (
	"context"
	"sync/atomic"
)

// revisionSlot is the context key of an operation's revision (see ReportRevision).
type revisionSlot struct{}

// WithRevision returns ctx with a slot for the revision of the operation run under it,
// which ReportRevision fills: the workload gives every operation one; a client's tests
// use it to see what the client reports.
func WithRevision(ctx context.Context) (context.Context, *atomic.Int64) {
	var rev atomic.Int64
	return context.WithValue(ctx, revisionSlot{}, &rev), &rev
}

// ReportRevision tells the workload the store's revision at which the current
// operation's answer was made (etcd's response header revision: for a write, the
// revision it made), with the ctx the operation was given. A client of a store with
// one revision counter calls it before it returns an answer; the workload records it in
// the completion (history.Event.Rev) and the revision check holds it to real time
// across keys. Outside an operation it does nothing.
func ReportRevision(ctx context.Context, rev int64) {
	if slot, ok := ctx.Value(revisionSlot{}).(*atomic.Int64); ok && rev > 0 {
		slot.Store(rev)
	}
}
