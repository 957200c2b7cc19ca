package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Timeouts of the run's phases that are not in the spec.
const (
	readyTimeout     = 60 * time.Second
	readyGrace       = 5 * time.Second // past a target's own readiness budget (sut.ReadyBudget)
	finalReadTimeout = 30 * time.Second
	// healAllTimeout bounds the final heal: a member that never rejoins must not hang
	// the run (an interrupt ends the heal at once).
	healAllTimeout = 2 * time.Minute
	// consistencyTimeout bounds the target's end-of-run check across members.
	consistencyTimeout = time.Minute
)

// Outcome is what a run ended with.
type Outcome struct {
	Dir     string
	Verdict checker.Verdict
	// Err is a harness or infrastructure failure (exit 3), if any.
	Err error
	// Interrupted is set when the run was cancelled before it finished.
	Interrupted bool
	// Violation is when the earliest operation blamed for a violation was invoked (time
	// since the run's start), when the verdict is invalid and names one; else negative.
	Violation time.Duration
	// Stats are the checked history's counts, rates and latencies (zero when the run
	// recorded nothing).
	Stats checker.Stats
	// Anomalies are the kinds of anomaly the check found (checker.Result.AnomalyKinds);
	// Warnings the codes of its warnings (checker.WarnLowAvailability).
	Anomalies []string
	Warnings  []string
	// Duration is how long the run took, from start to verdict.
	Duration time.Duration
}

// ExitCode maps the outcome to the exit code: invalid wins over everything (a violation
// found is real even in a run that later broke), then bad usage, then harness errors,
// then the verdict.
func (o Outcome) ExitCode() results.ExitCode {
	var ue *UsageError
	switch {
	case o.Verdict == checker.Invalid:
		return results.ExitInvalid
	case errors.As(o.Err, &ue):
		return results.ExitUsage
	case o.Err != nil || o.Interrupted:
		return results.ExitError
	default:
		return results.ExitFor(o.Verdict)
	}
}

// Env is the run's I/O: where progress and the summary go. It is injected so that
// tests can drive whole runs.
type Env struct {
	Stdout, Stderr io.Writer
	// Progress is called about once a second with a one-line status; nil for none.
	Progress func(Status)
	// Version is the faultline version test.json records ("" for none).
	Version string
}

// Status is the live view of a run, polled by the progress renderer.
type Status struct {
	Elapsed, Limit time.Duration
	OK, Fail, Info int64
	OpsPerSec      float64
	Fault          string
	Leader         string
	Phase          string
}

// run holds one run's state while it goes.
type run struct {
	plan   *Plan
	spec   Spec
	env    Env
	base   time.Time
	id     string
	dir    string
	logger *log.Logger
	detail *log.Logger // faultline.log only: lines too many for the terminal
	rec    *history.Recorder
	hw     *history.Writer
	rt     runtime.Runtime
	target sut.Target
	cl     *cluster
	links  *linkFaults // the link proxy, when the run has packet faults
	// consistency is the target's end-of-run check across members, if it has one
	// and the run got that far.
	consistency *sut.ConsistencyResult
	sched       *nemesis.Schedule
	prog        *workload.Progress
	phase       string
	// packetFaults: the nemesis degrades links, so peers talk through the link proxy.
	packetFaults bool
}

// Run executes one test: it makes the test's plan (NewPlan) and runs it (RunPlan). A
// spec that cannot run is an Outcome whose Err says why, and nothing is made: no
// directory, build or process.
func Run(ctx context.Context, spec Spec, env Env) Outcome {
	p, err := NewPlan(ctx, spec)
	if err != nil {
		return Outcome{Err: err, Violation: -1}
	}
	return RunPlan(ctx, p, env)
}

// RunPlan executes a planned test: the lifecycle in docs/design.md. It gets the target
// ready (a build) before it makes the run's directory, heals every fault and removes
// every node, namespace and rule it made before it returns, also when ctx is cancelled.
// The history is on disk as the run goes.
func RunPlan(ctx context.Context, p *Plan, env Env) Outcome {
	spec := p.Spec
	out := Outcome{Violation: -1}
	var prepared []string
	if err := spec.Options().Prepare(ctx, func(line string) {
		prepared = append(prepared, line)
		fmt.Fprintln(env.Stderr, line)
	}); err != nil {
		out.Err = err
		return out
	}
	r := &run{plan: p, spec: spec, env: env, base: time.Now(), id: newRunID()}
	if err := r.open(); err != nil {
		out.Err = err
		return out
	}
	out.Dir = r.dir
	defer r.hw.Close()
	for _, l := range prepared {
		r.detailf("%s", l)
	}
	r.logf("faultline test %s: seed %d, run %s, results %s", spec.Name, spec.Seed, r.id, r.dir)

	err := r.execute(ctx)
	if ctx.Err() != nil {
		out.Interrupted = true
		r.logf("run interrupted: %v", context.Cause(ctx))
	}
	if err != nil {
		var ue *UsageError
		if errors.As(err, &ue) {
			out.Err = ue
		} else {
			out.Err = err
		}
		r.logf("run error: %v", err)
	}
	if cerr := r.hw.Close(); cerr != nil && out.Err == nil {
		out.Err = cerr
	}
	out = r.check(context.WithoutCancel(ctx), out)
	out.Duration = time.Since(r.base)
	return out
}

// recovered, deferred in a goroutine the run starts, turns a panic into *err: every
// goroutine of a run ends in an error the run reports and heals after, never in a crash
// that leaves faults and nodes behind.
func recovered(err *error, what string) {
	if p := recover(); p != nil {
		*err = errors.Join(*err, fmt.Errorf("%s panicked: %v", what, p))
	}
}

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// open makes the run directory, test.json, faultline.log and the history writer.
func (r *run) open() error {
	dir, err := results.NewRunDir(r.spec.Results, r.spec.Name, r.base)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOTDIR) {
			return usagef("results: %s cannot hold a run: %v", r.spec.Results, err) // the user's path
		}
		return fmt.Errorf("results: %w", err) // a full disk, say: the machine's
	}
	r.dir = dir
	lf, err := os.OpenFile(filepath.Join(dir, "faultline.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("faultline.log: %w", err)
	}
	r.logger = log.New(io.MultiWriter(lf, r.env.Stderr), "", log.Ltime|log.Lmicroseconds)
	r.detail = log.New(lf, "", log.Ltime|log.Lmicroseconds)
	r.hw, err = history.CreateWriter(filepath.Join(dir, "history.jsonl"), 0)
	if err != nil {
		return err
	}
	r.rec = history.NewStreamRecorder(r.base, r.hw)
	return nil
}

func (r *run) logf(format string, args ...any) { r.logger.Printf(format, args...) }

// detailf logs to faultline.log only.
func (r *run) detailf(format string, args ...any) { r.detail.Printf(format, args...) }

// execute runs the phases from starting the nodes to stopping them. Every phase after
// the runtime is prepared ends in teardown, whatever happens.
func (r *run) execute(ctx context.Context) (err error) {
	r.rt, err = r.newRuntime()
	if err != nil {
		return err
	}
	nem := "none"
	if len(r.plan.Faults) > 0 {
		nem = strings.Join(r.plan.FaultNames(), ",")
	}
	fmt.Fprintf(r.env.Stdout, "faultline test %s: %s on %s, %d nodes, workload %s, nemesis %s, %v, seed %d\n",
		r.spec.Name, r.spec.Target, r.rt.Name(), r.spec.Nodes, r.spec.Workload, nem, r.spec.TimeLimit, r.spec.Seed)
	if err := r.newTarget(); err != nil {
		return err
	}
	ctx, stop := stopOnFailure(ctx, r.target) // a target that fails for good ends the run, and says why
	defer func() { err = stop(err) }()
	for _, k := range slices.Sorted(maps.Keys(r.plan.Skipped)) {
		r.logf("nemesis: %s unavailable, left out: %s", k, r.plan.Skipped[k])
	}
	r.packetFaults = r.plan.has(nemesis.Packet)
	if err := r.writeTestJSON(); err != nil {
		return err
	}
	defer func() {
		if cerr := r.teardown(ctx); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("harness panic: %v", p)
		}
	}()
	if err := r.start(ctx); err != nil {
		return err
	}
	if err := r.load(ctx); err != nil {
		return err
	}
	return r.recover(ctx)
}

// newRuntime makes the run's runtime, the plan's.
func (r *run) newRuntime() (runtime.Runtime, error) {
	r.logf("runtime %s: %s", r.plan.Runtime.Name, r.plan.Why)
	if r.plan.Runtime.Name == "process" && netns.InUserNS() {
		r.logf("runtime process: in an unprivileged user namespace of its own (%s=%s): namespaces, bridge and rules live and die with it",
			netns.UserNSEnv, os.Getenv(netns.UserNSEnv))
	}
	return r.plan.Runtime.New(r.id, r.dir)
}

// ResolveRuntime says which runtime a spec's runtime names and why: auto is the
// registered runtime of highest rank that can run here (docker when a daemon answers
// and this faultline can be put in a scratch image), else process.
func ResolveRuntime(ctx context.Context, name string) (string, string) {
	n, why, err := runtime.Resolve(ctx, name)
	if err != nil {
		return name, err.Error()
	}
	return n, why
}

// writeTestJSON writes test.json: the plan, before any node starts.
func (r *run) writeTestJSON() error {
	spec, err := json.Marshal(r.spec)
	if err != nil {
		return fmt.Errorf("test.json: %w", err)
	}
	seed := r.spec.Seed
	return results.WriteTestInfo(r.dir, results.TestInfo{
		Name: r.spec.Name, RunID: r.id, Start: r.base.UTC(), Faultline: r.env.Version, Seed: &seed,
		Runtime: r.rt.Name(), Workload: string(r.spec.Workload), Nodes: r.spec.Nodes,
		Faults: r.plan.FaultNames(), Unavailable: r.plan.Skipped, Target: r.target.Describe(),
		Replay: ReplayCommand(r.spec), Spec: spec,
	})
}

// newTarget makes the run's target and the cluster the nemesis acts on (nothing runs
// yet). Peers reach each other's peer port through the link proxy once there is one.
func (r *run) newTarget() error {
	names := make([]string, r.spec.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	env := sut.Env{Nodes: names, Reach: r.rt.HostPort, RunID: r.id, Dir: r.dir, Logf: r.logf,
		OpTimeout: r.spec.OpTimeout.D(), LogTail: func(n string) string { return logTail(filepath.Join(r.dir, "nodes", n), 5) }}
	env.PeerReach = func(node string, port int) string {
		if r.links != nil && port == r.target.Peers().Port {
			return r.links.PeerAddr(node)
		}
		return r.rt.HostPort(node, port)
	}
	t, err := r.spec.Options().New(env)
	if err != nil {
		return err
	}
	r.target = t
	r.cl = newCluster(r.rt, r.target, names)
	r.cl.logf, r.cl.since = r.logf, r.rec.Since
	r.cl.logTail = func(n string) string { return logTail(filepath.Join(r.dir, "nodes", n), 5) }
	return nil
}

// start prepares the network, launches every node and waits until the cluster serves.
func (r *run) start(ctx context.Context) error {
	names := r.cl.Nodes()
	r.phase = "starting"
	if err := r.rt.Prepare(ctx, names, r.target.Ports()); err != nil {
		return err
	}
	if r.packetFaults {
		lf, err := startLinkFaults(ctx, r.rt, r.target.Peers(), names, r.spec.Seed, r.detailf)
		if err != nil {
			return err
		}
		r.links, r.cl.links = lf, lf
	}
	if ok, _ := r.plan.needs().Has(nemesis.CapDisks); ok {
		d, err := mountDisks(r.rt, r.id, names, DiskWriteback)
		if err != nil {
			return err
		}
		r.cl.disks = d
	}
	r.cl.clockVia = r.plan.Spec.Clock
	if err := r.cl.assemble(r.plan.needs()); err != nil {
		return err
	}
	// All at once: a container's create and start take a docker daemon a few hundred
	// milliseconds each, most of a docker run's bring-up when done one after another.
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Go(func() { errs[i] = r.cl.launch(ctx, n) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	budget := readyTimeout
	if b, ok := r.target.(sut.ReadyBudget); ok && b.ReadyTimeout() > 0 {
		budget = b.ReadyTimeout() + readyGrace
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := r.waitReady(rctx, names); err != nil {
		return fmt.Errorf("start %d %s nodes: cluster not ready: %w", len(names), r.spec.Target, err)
	}
	r.logf("cluster of %d ready after %v (runtime %s)", len(names), time.Since(r.base).Round(time.Millisecond), r.rt.Name())
	// The cluster the run tests has been up a while: what it wrote to come up is on its
	// disks, synced or not, before the first power loss.
	r.cl.disks.writeback()
	return nil
}

// load runs the workload and the nemesis schedule together for the time limit.
func (r *run) load(ctx context.Context) error {
	r.phase = "running"
	seed := uint64(r.spec.Seed)
	r.sched = &nemesis.Schedule{Faults: r.plan.Faults, Interval: r.spec.NemesisInterval.D(), Cluster: r.cl,
		Powers: r.cl.powers, Rand: mrand.New(mrand.NewPCG(seed, 0x6e656d65)), Rec: r.rec, Log: r.logf}
	cfg := r.workloadConfig()
	r.prog = cfg.Progress
	stopProgress := r.progressLoop(ctx)
	defer stopProgress()
	stopWatch := r.watchExits(ctx)
	defer stopWatch()
	// The workload enforces the time limit itself and lets operations in flight finish
	// (within their op timeout); only the nemesis gets a context that ends at the limit.
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		defer recovered(&err, "workload")
		_, err = workload.Run(gctx, cfg, r.target.Opener(cfg.OpTimeout), r.rec)
		return err
	})
	g.Go(func() (err error) {
		defer recovered(&err, "nemesis")
		nctx, cancel := context.WithTimeout(gctx, r.spec.TimeLimit.D())
		defer cancel()
		return r.sched.Run(nctx)
	})
	err := g.Wait()
	r.logf("workload and nemesis stopped; faults injected: %s", r.sched.Summary())
	return err
}

func (r *run) workloadConfig() workload.Config {
	return workload.Config{
		Workload: r.spec.Workload, Concurrency: r.spec.Concurrency, Rate: r.spec.Rate,
		TimeLimit: r.spec.TimeLimit.D(), Keys: r.spec.Keys, OpsPerKey: r.spec.OpsPerKey,
		OpTimeout: r.spec.OpTimeout.D(), Seed: r.spec.Seed, Progress: workload.NewProgress(),
		CompactInterval: r.spec.CompactInterval.D(),
	}
}

// recover heals every fault, gives the cluster its recovery window, and reads every key
// once more.
func (r *run) recover(ctx context.Context) error {
	if ctx.Err() != nil {
		return nil // interrupted: the teardown stops every node and removes every fault
	}
	r.phase = "healing"
	hctx, cancel := context.WithTimeout(ctx, healAllTimeout)
	err := r.cl.HealAll(hctx)
	cancel()
	if err != nil {
		return fmt.Errorf("heal (within %v): %w", healAllTimeout, err)
	}
	r.rec.Record(history.Event{Process: history.NemesisProcess, Type: history.Info, F: history.HealAll})
	if !nemesis.Sleep(ctx, r.spec.Recovery.D()) {
		return ctx.Err()
	}
	r.waitRecovered(ctx)
	r.phase = "final reads"
	fctx, cancel2 := context.WithTimeout(ctx, finalReadTimeout)
	defer cancel2()
	cfg := r.workloadConfig()
	if err := workload.FinalReads(fctx, cfg, r.target.Opener(cfg.OpTimeout), r.rec, r.prog.Keys()); err != nil {
		return err
	}
	if c, ok := r.target.(sut.Consistency); ok {
		r.phase = "consistency"
		cctx, cancel := context.WithTimeout(ctx, consistencyTimeout)
		res := c.Consistent(cctx)
		cancel()
		r.consistency = &res
		r.logf("consistency (%s): %s", res.Name, res.Detail)
	}
	return nil
}

// waitRecovered waits, at most readyTimeout, until the healed cluster serves again. It
// gives up early when a node has exited by itself since the heal: the cluster will not be
// whole again, and the final reads go on with the nodes that serve.
func (r *run) waitRecovered(ctx context.Context) {
	deadline := time.Now().Add(readyTimeout)
	for {
		err := r.target.Ready(ctx)
		if err == nil {
			return
		}
		for _, n := range r.cl.Nodes() {
			if !r.rt.Running(n) {
				r.cl.CheckExits()
				r.logf("cluster not whole after healing: %s is down again; final reads go on without it", n)
				return
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.logf("cluster did not recover within %v of healing: %v", readyTimeout, err)
			return
		}
		nemesis.Sleep(ctx, 200*time.Millisecond)
	}
}

// teardown heals, stops every node and removes the run's network. It runs on a context
// of its own: an interrupted run must still clean up.
func (r *run) teardown(ctx context.Context) error {
	r.phase = "stopping"
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	var errs []error
	if r.cl != nil && r.cl.net != nil && ctx.Err() != nil {
		errs = append(errs, r.cl.net.HealPartition(tctx))
	}
	// The link proxy goes first: a delivery in flight must not dial into a network
	// already torn down.
	if r.links != nil {
		errs = append(errs, r.links.Close())
	}
	errs = append(errs, r.rt.Close(tctx))
	if r.cl != nil {
		errs = append(errs, r.cl.disks.Close(tctx)) // after every node has stopped
	}
	if c, ok := r.target.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		r.logf("teardown: %v", err)
	}
	return err
}
