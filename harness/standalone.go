package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
)

// Cluster is a plan's nodes started and serving outside a run — no workload, no
// schedule, no history — the way a run starts them (its runtime, its target, its
// readiness): what the bench measures, and what tests of targets drive. Close removes
// everything it made.
type Cluster struct {
	// Target is the cluster's target; its Opener gives clients of the nodes.
	Target sut.Target
	rt     runtime.Runtime
	cl     *cluster
}

// StartCluster prepares p's target (a build), starts its nodes in dir with p's runtime
// and waits until the cluster serves. logf receives the lines a run would log.
func StartCluster(ctx context.Context, p *Plan, dir string, logf func(format string, args ...any)) (c *Cluster, err error) {
	spec := p.Spec
	if err := spec.Options().Prepare(ctx, func(line string) { logf("%s", line) }); err != nil {
		return nil, err
	}
	id := newRunID()
	rt, err := p.Runtime.New(id, dir)
	if err != nil {
		return nil, err
	}
	c = &Cluster{rt: rt}
	defer func() {
		if err != nil {
			_ = c.Close(context.WithoutCancel(ctx))
		}
	}()
	names := make([]string, spec.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	env := sut.Env{Nodes: names, Reach: rt.HostPort, PeerReach: rt.HostPort, RunID: id, Dir: dir, Logf: logf,
		OpTimeout: spec.OpTimeout.D(), LogTail: func(n string) string { return logTail(filepath.Join(dir, "nodes", n), 5) }}
	if c.Target, err = spec.Options().New(env); err != nil {
		return c, err
	}
	if err := rt.Prepare(ctx, names, c.Target.Ports()); err != nil {
		return c, err
	}
	c.cl = newCluster(rt, c.Target, names)
	if err := c.cl.assemble(nemesis.Can()); err != nil {
		return c, err
	}
	for _, n := range names {
		if err := c.cl.launch(ctx, n); err != nil {
			return c, err
		}
	}
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := sut.Poll(rctx, 100*time.Millisecond, c.Target.Ready); err != nil {
		return c, fmt.Errorf("%s cluster not ready: %w", c.Target.Name(), err)
	}
	return c, nil
}

// Nodes lists the cluster's nodes.
func (c *Cluster) Nodes() []string { return c.cl.Nodes() }

// Close stops every node and removes what the cluster made.
func (c *Cluster) Close(ctx context.Context) error {
	var errs []error
	if c.rt != nil {
		errs = append(errs, c.rt.Close(ctx))
	}
	if cl, ok := c.Target.(io.Closer); ok {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}
