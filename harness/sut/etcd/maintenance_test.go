package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestMaintenance (etcd v3.7.3, cached): Compact really discards the history before the
// revision it returns (an old revision's Get is ErrCompacted, on every member), keeps
// the last CompactKeep revisions, and leaves the members' hashes in agreement;
// Defragment shrinks the member's file to what it uses (or keeps it) and the member
// goes on serving.
func TestMaintenance(t *testing.T) {
	t.Parallel()
	c := startTarget(t, Config{Binary: releaseBin(t, "v3.7.3"), Version: "v3.7.3"}, 3, nil)
	ctx := ctxT(t, time.Minute)
	if rev, err := c.tg.Compact(ctx); err != nil || rev != 0 {
		t.Errorf("compact of a short history = %d, %v; want 0 (nothing to do)", rev, err)
	}
	cli, err := c.tg.admin("n1")
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 32<<10)
	var first int64
	for i := range 400 { // ~13 MB of values, most of them overwritten: garbage once compacted
		r, err := cli.Put(ctx, fmt.Sprintf("k%d", i%10), big)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.Header.Revision
		}
	}
	rev, err := c.tg.Compact(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := cli.Get(ctx, "k0")
	if err != nil {
		t.Fatal(err)
	}
	if want := cur.Header.Revision - CompactKeep; rev != want {
		t.Errorf("compacted to %d, want the current revision %d minus %d", rev, cur.Header.Revision, CompactKeep)
	}
	for _, n := range c.names {
		ncli, err := c.tg.admin(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ncli.Get(ctx, "k0", clientv3.WithRev(first)); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Errorf("%s: get at revision %d after compacting to %d = %v, want ErrCompacted", n, first, rev, err)
		}
	}
	if _, err := cli.Get(ctx, "k0", clientv3.WithRev(rev)); err != nil {
		t.Errorf("get at the compaction revision %d: %v", rev, err)
	}
	// Compacting again with nothing new keeps the same revision: ErrCompacted counts as done.
	if again, err := c.tg.Compact(ctx); err != nil || again != rev {
		t.Errorf("compact again = %d, %v; want %d", again, err, rev)
	}
	if res := c.tg.Consistent(ctx); res.Valid == nil || !*res.Valid || !strings.Contains(res.Detail, fmt.Sprintf("compacted at %d", rev)) {
		t.Errorf("consistent after compaction: %+v", res)
	}

	before, err := c.tg.status(ctx, "n2", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.tg.Defragment(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	after, err := c.tg.status(ctx, "n2", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("n2 defragmented in %v: db %d B (%d in use) → %d B (%d in use)", took.Round(time.Millisecond),
		before.dbSize, before.dbSizeInUse, after.dbSize, after.dbSizeInUse)
	if after.dbSize > before.dbSize {
		t.Errorf("defragmentation grew n2's db from %d to %d bytes", before.dbSize, after.dbSize)
	}
	if before.dbSize-before.dbSizeInUse > 1<<20 && after.dbSize >= before.dbSize {
		t.Errorf("defragmentation reclaimed nothing of n2's %d free bytes", before.dbSize-before.dbSizeInUse)
	}
	if slack := after.dbSize - after.dbSizeInUse; slack > 1<<20 {
		t.Errorf("after defragmentation n2's db has %d bytes it does not use", slack)
	}
	other, err := c.tg.status(ctx, "n1", time.Second)
	if err == nil && other.dbSize < before.dbSize {
		t.Logf("n1 (not defragmented) has %d B: compaction alone does not shrink the file", other.dbSize)
	}
	n2, err := c.tg.admin("n2")
	if err != nil {
		t.Fatal(err)
	}
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if r, err := n2.Get(gctx, "k0"); err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != big {
		t.Errorf("n2 after defragmentation: %v", err)
	}
	if err := c.tg.Ready(ctx); err != nil {
		t.Errorf("ready after defragmentation: %v", err)
	}
}
