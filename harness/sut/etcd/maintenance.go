package etcd

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The maintenance operators run while etcd serves: nemesis.Maintainer.

// CompactKeep is how many of the latest revisions Compact keeps.
const CompactKeep = 100

// Compact implements nemesis.Maintainer: it compacts the key-value history to the
// current revision minus CompactKeep, through the leader (else the first member that
// answers), physically (clientv3.WithCompactPhysical: the call returns once the
// compaction is applied to that member's backend, not only scheduled), and returns that
// revision. A history no longer than CompactKeep is left alone (revision 0). A revision
// already compacted by someone else counts as done. With an error, the revision is the
// highest one asked for (0: none), which may have been compacted.
func (t *Target) Compact(ctx context.Context) (int64, error) {
	order, err := t.changeOrder(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("compact: %w", err)
	}
	var errs []error
	asked := int64(0)
	for _, via := range order {
		rev, err := t.compactVia(ctx, via)
		if err == nil {
			return rev, nil
		}
		asked = max(asked, rev)
		errs = append(errs, fmt.Errorf("via %s: %w", via, err))
		if ctx.Err() != nil {
			break
		}
	}
	return asked, fmt.Errorf("compact: %w", errors.Join(errs...))
}

func (t *Target) compactVia(ctx context.Context, via string) (int64, error) {
	c, err := t.admin(via)
	if err != nil {
		return 0, err
	}
	// A linearizable read's header carries the cluster's current revision.
	r, err := c.Get(ctx, "faultline-compact", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("current revision: %w", err)
	}
	rev := r.Header.Revision - CompactKeep
	if rev <= 1 {
		return 0, nil
	}
	if _, err := c.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !errors.Is(err, rpctypes.ErrCompacted) {
		return rev, fmt.Errorf("compact to %d: %w", rev, err) // asked: it may have happened
	}
	return rev, nil
}

// Defragment implements nemesis.Maintainer: etcd's defragmentation of node's backend,
// through node's own endpoint only. The member serves nothing while it defragments (the
// point of the fault); the call returns when it is done, or ctx ends.
func (t *Target) Defragment(ctx context.Context, node string) error {
	c, err := t.admin(node)
	if err != nil {
		return err
	}
	if _, err := c.Defragment(ctx, t.clientAddr(node)); err != nil {
		return fmt.Errorf("defragment %s: %w", node, err)
	}
	return nil
}
