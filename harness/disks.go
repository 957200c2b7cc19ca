package harness

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/internal/powerfs"
)

// disks are a run's nodes' data directories put on disks that can lose power
// (powerfs), mounted before any node starts when the run's faults need them, and
// unmounted after every node has stopped. The data stays in the directories.
type disks struct {
	mu     sync.Mutex
	byNode map[string]*powerfs.Disk
}

// diskTag names a node's disk in the mount table (with the pid of the harness serving
// it, which Clean reads: it releases only the disks of dead harnesses).
func diskTag(runID, node string) string { return runID + "/" + node }

// DiskWriteback is the writeback of a run's disks (powerfs.Options.Writeback): what a
// node wrote and did not sync is durable after it, as the kernel's writeback and ext4's
// 5-second journal commit make it on a real machine. Under LazyFS's strict model
// (nothing unsynced ever survives), an etcd that never fsyncs loses even the membership
// it bootstrapped with at the first power loss of every member, never serves again, and
// a run can only say "unknown"; with a writeback it loses the last seconds of
// acknowledged writes and serves on, which the checker names.
const DiskWriteback = 5 * time.Second

// mountDisks puts every node's data directory on a disk that writes back what was not
// synced after writeback (0: never). A runtime without host data directories cannot
// have them (the plan does not ask it to).
func mountDisks(rt runtime.Runtime, runID string, names []string, writeback time.Duration) (*disks, error) {
	hd, ok := rt.(runtime.HostDirs)
	if !ok {
		return nil, fmt.Errorf("the %s runtime keeps no node data on this host", rt.Name())
	}
	d := &disks{byNode: map[string]*powerfs.Disk{}}
	for _, n := range names {
		disk, err := powerfs.Mount(hd.HostDataDir(n), powerfs.Options{Tag: diskTag(runID, n), Writeback: writeback})
		if err != nil {
			_ = d.Close(context.Background())
			return nil, fmt.Errorf("%s's disk: %w", n, err)
		}
		d.byNode[n] = disk
	}
	return d, nil
}

func (d *disks) disk(node string) *powerfs.Disk {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byNode[node]
}

// PowerLoss drops what node's disk holds unsynced (node is down), and says what.
func (d *disks) PowerLoss(ctx context.Context, node string) (string, error) {
	disk := d.disk(node)
	if disk == nil {
		return "", fmt.Errorf("%s has no disk that can lose power", node)
	}
	loss, err := disk.PowerLoss(ctx)
	if err != nil {
		return "", err
	}
	return loss.String(), nil
}

// writeback makes everything written to the disks so far durable (the kernel's
// writeback, done now).
func (d *disks) writeback() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, disk := range d.byNode {
		disk.Writeback()
	}
}

// Close unmounts every disk, leaving each node's data in its directory as it is.
func (d *disks) Close(ctx context.Context) error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for n, disk := range d.byNode {
		if err := disk.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s's disk: %w", n, err))
		}
		delete(d.byNode, n)
	}
	return errors.Join(errs...)
}

// cleanDisks releases the disks of harnesses that died (their mounts answer nothing
// and block whatever touches them), giving each directory its files back.
func cleanDisks() ([]string, error) {
	ms, err := powerfs.Mounts()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, m := range ms {
		if m.Pid == 0 || runtime.Alive(m.Pid) {
			continue // not served by a process of ours that died
		}
		if err := powerfs.Release(m); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "disk "+m.Dir)
	}
	return removed, errors.Join(errs...)
}
