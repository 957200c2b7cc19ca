package harness

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/faultline/faultline/harness/sut"
)

// The operators' faults through the cluster: releases (nemesis.Upgrader), maintenance
// (nemesis.Maintainer) and snapshot catch-up (nemesis.Snapshotter), each where the
// target has the capability (cluster.Unable says where it does not).

func (c *cluster) upgrader() (sut.Upgrader, error) {
	u, ok := c.target.(sut.Upgrader)
	if !ok {
		return nil, fmt.Errorf("%s cannot run other releases", c.target.Name())
	}
	return u, nil
}

// UpgradePath implements nemesis.Upgrader.
func (c *cluster) UpgradePath() []string {
	if u, err := c.upgrader(); err == nil {
		return u.Versions()
	}
	return nil
}

// MemberVersion implements nemesis.Upgrader.
func (c *cluster) MemberVersion(node string) string {
	if u, err := c.upgrader(); err == nil {
		return u.Version(node)
	}
	return ""
}

// Restart implements nemesis.Upgrader: the node is stopped gracefully (SIGTERM, as an
// operator's rollout does), set to run version, started on its data (the start on a
// context of its own: a member is never left stopped), and the cluster waited for until
// it is healthy again.
func (c *cluster) Restart(ctx context.Context, node, version string) error {
	u, err := c.upgrader()
	if err != nil {
		return err
	}
	c.mark(c.down, node, true) // stopped on purpose: not a crash
	if err := c.rt.Stop(ctx, node); err != nil {
		c.mark(c.down, node, !c.rt.Running(node))
		return fmt.Errorf("stop %s: %w", node, err)
	}
	c.setPaused(node, false)
	if err := u.SetVersion(node, version); err != nil {
		return errors.Join(err, c.Start(context.WithoutCancel(ctx), node))
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	err = c.Start(sctx, node)
	cancel()
	if err != nil {
		return fmt.Errorf("start %s on %s: %w", node, version, err)
	}
	healthy := c.target.Ready
	if m, ok := c.target.(sut.Members); ok {
		healthy = m.Healthy
	}
	for { // a member that dies on its new release will not get healthy: say so at once
		if !c.rt.Running(node) {
			return fmt.Errorf("%s exited after starting on %s; the end of its log:\n%s", node, version, c.tail(node))
		}
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := healthy(hctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			return err
		}
	}
}

// tail returns the end of node's log, if the cluster was given a way to read it.
func (c *cluster) tail(node string) string {
	if c.logTail == nil {
		return "  (no log)"
	}
	return c.logTail(node)
}

// PrepareDowngrade implements nemesis.Upgrader.
func (c *cluster) PrepareDowngrade(ctx context.Context, version string) error {
	u, err := c.upgrader()
	if err != nil {
		return err
	}
	return u.PrepareDowngrade(ctx, version)
}

// ClusterVersion implements nemesis.Upgrader.
func (c *cluster) ClusterVersion(ctx context.Context) (string, error) {
	u, err := c.upgrader()
	if err != nil {
		return "", err
	}
	return u.ClusterVersion(ctx)
}

func (c *cluster) maintainer() (sut.Maintainer, error) {
	m, ok := c.target.(sut.Maintainer)
	if !ok {
		return nil, fmt.Errorf("%s has no maintenance operations", c.target.Name())
	}
	return m, nil
}

// Compact implements nemesis.Maintainer.
func (c *cluster) Compact(ctx context.Context) (int64, error) {
	m, err := c.maintainer()
	if err != nil {
		return 0, err
	}
	return m.Compact(ctx)
}

// Defragment implements nemesis.Maintainer.
func (c *cluster) Defragment(ctx context.Context, node string) error {
	m, err := c.maintainer()
	if err != nil {
		return err
	}
	return m.Defragment(ctx, node)
}

func (c *cluster) snapshots() (sut.Snapshots, error) {
	s, ok := c.target.(sut.Snapshots)
	if !ok {
		return nil, fmt.Errorf("%s cannot tell when a member needs a snapshot", c.target.Name())
	}
	return s, nil
}

// MarkSnapshots implements nemesis.Snapshotter.
func (c *cluster) MarkSnapshots(ctx context.Context, node string) error {
	s, err := c.snapshots()
	if err != nil {
		return err
	}
	return s.MarkSnapshots(ctx, node)
}

// SnapshotDue implements nemesis.Snapshotter.
func (c *cluster) SnapshotDue(ctx context.Context, node string) (bool, error) {
	s, err := c.snapshots()
	if err != nil {
		return false, err
	}
	return s.SnapshotDue(ctx, node)
}

// SnapshotSent implements nemesis.Snapshotter.
func (c *cluster) SnapshotSent(ctx context.Context, node string) (bool, error) {
	s, err := c.snapshots()
	if err != nil {
		return false, err
	}
	return s.SnapshotSent(ctx, node)
}
