package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
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
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/runtime/process"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Exit codes of `faultline test` and `faultline check` (docs/design.md).
const (
	ExitValid   = 0
	ExitInvalid = 1
	ExitUnknown = 2
	ExitError   = 3
	ExitUsage   = 4
)

// Timeouts of the run's phases that are not in the spec.
const (
	readyTimeout     = 60 * time.Second
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
	// Duration is how long the run took, from start to verdict.
	Duration time.Duration
}

// ExitCode maps the outcome to the exit code: invalid wins over everything (a violation
// found is real even in a run that later broke), then harness errors, then the verdict.
func (o Outcome) ExitCode() int {
	var ue *UsageError
	switch {
	case o.Verdict == checker.Invalid:
		return ExitInvalid
	case errors.As(o.Err, &ue):
		return ExitUsage // found late (a fault the target cannot take), but bad input all the same
	case o.Err != nil || o.Interrupted:
		return ExitError
	case o.Verdict == checker.Valid:
		return ExitValid
	default:
		return ExitUnknown
	}
}

// Env is the run's I/O: where progress and the summary go, and the command line to
// replay it. It is injected so that tests can drive whole runs.
type Env struct {
	Stdout, Stderr io.Writer
	// Progress is called about once a second with a one-line status; nil for none.
	Progress func(Status)
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

// Run executes one test: the lifecycle in docs/design.md. It heals every fault and removes
// every node, namespace and rule it made before it returns, also when ctx is cancelled.
// The history is on disk as the run goes.
func Run(ctx context.Context, spec Spec, env Env) Outcome {
	r := &run{spec: spec, env: env, base: time.Now(), id: newRunID()}
	out := Outcome{Violation: -1}
	if err := r.open(); err != nil {
		out.Err = err
		fmt.Fprintf(env.Stderr, "faultline test: %v\n", err) // there is no run log to say it in
		return out
	}
	out.Dir = r.dir
	defer r.hw.Close()
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
	var cerr error
	out.Verdict, out.Violation, out.Stats, cerr = r.check(context.WithoutCancel(ctx), out)
	out.Err = errors.Join(out.Err, cerr)
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
	r.rt, err = r.newRuntime(ctx)
	if err != nil {
		return err
	}
	nem := "none"
	if len(r.spec.Nemesis) > 0 {
		nem = strings.Join(r.spec.Nemesis, ",")
	}
	fmt.Fprintf(r.env.Stdout, "faultline test %s: %s on %s, %d nodes, workload %s, nemesis %s, %v, seed %d\n",
		r.spec.Name, r.spec.Target, r.rt.Name(), r.spec.Nodes, r.spec.Workload, nem, r.spec.TimeLimit, r.spec.Seed)
	if err := r.newTarget(ctx); err != nil {
		return err
	}
	ctx, stop := stopOnFailure(ctx, r.target) // a target that fails for good ends the run, and says why
	defer func() { err = stop(err) }()
	faults, skipped, err := faultsFor(r.spec.Nemesis, r.cl)
	if err != nil {
		return err
	}
	for k, why := range skipped {
		r.logf("nemesis: %s unavailable, left out of 'all': %s", k, why)
	}
	r.packetFaults = slices.ContainsFunc(faults, func(f nemesis.Fault) bool {
		return f.Name() == "packet" || slices.Contains(nemesis.SplitCombo(f.Name()), "packet")
	})
	if err := r.writeTestJSON(faults, skipped); err != nil {
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
	if err := r.load(ctx, faults); err != nil {
		return err
	}
	return r.recover(ctx)
}

// newRuntime makes the run's runtime: docker when asked, or with auto when a daemon
// answers and this faultline can be put in a scratch image; else local processes.
func (r *run) newRuntime(ctx context.Context) (runtime.Runtime, error) {
	name, why := ResolveRuntime(ctx, r.spec.Runtime)
	r.logf("runtime %s: %s", name, why)
	switch name {
	case "docker":
		if r.spec.Runtime == "docker" {
			if ok, why := docker.Available(ctx); !ok {
				return nil, fmt.Errorf("runtime docker: %s", why)
			}
		}
		return docker.New(r.id, r.dir, "")
	case "process":
		if netns.InUserNS() {
			r.logf("runtime process: in an unprivileged user namespace of its own (%s=%s): namespaces, bridge and rules live and die with it",
				netns.UserNSEnv, os.Getenv(netns.UserNSEnv))
		}
		return process.NewProcessRuntime(r.id, r.dir), nil
	}
	return nil, &UsageError{Msg: "runtime: " + r.spec.Runtime + " is not one of " + strings.Join(Runtimes, ", ")}
}

// ResolveRuntime says which runtime a spec's runtime names and why: auto is docker when
// a Docker daemon answers (DOCKER_HOST and the usual environment are honoured) and this
// faultline is a static binary that a FROM-scratch node image can hold; else process.
func ResolveRuntime(ctx context.Context, runtime string) (name, why string) {
	if runtime != "auto" {
		return runtime, "asked for"
	}
	ok, why := docker.Available(ctx)
	if !ok {
		return "process", "auto: " + why
	}
	self, err := os.Executable()
	if err == nil {
		err = docker.CheckBinary(self)
	}
	if err != nil {
		return "process", "auto: docker answers, but " + err.Error()
	}
	return "docker", "auto: " + why
}

func (r *run) writeTestJSON(faults []nemesis.Fault, skipped map[string]string) error {
	var names []string
	for _, f := range faults {
		if !slices.Contains(names, f.Name()) {
			names = append(names, f.Name())
		}
	}
	return results.WriteJSON(r.dir, "test.json", map[string]any{
		"spec": r.spec, "run_id": r.id, "runtime": r.rt.Name(), "seed": r.spec.Seed,
		"workload": r.spec.Workload, "nemesis_faults": names, "nemesis_unavailable": skipped,
		"runtime_unavailable": r.rt.Unavailable(), "start_time": r.base.UTC().Format(time.RFC3339Nano),
		"target": r.target.Describe(),
		"replay": ReplayCommand(r.spec),
	})
}

// newTarget makes the run's target and the cluster the nemesis acts on (nothing runs
// yet). Peers reach each other's peer port through the link proxy once there is one.
func (r *run) newTarget(ctx context.Context) error {
	names := make([]string, r.spec.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("n%d", i+1)
	}
	env := sut.Env{Nodes: names, Reach: r.rt.HostPort, RunID: r.id, Dir: r.dir, Logf: r.logf}
	env.PeerReach = func(node string, port int) string {
		if r.links != nil && port == r.target.Peers().Port {
			return r.links.PeerAddr(node)
		}
		return r.rt.HostPort(node, port)
	}
	t, err := newTarget(ctx, r.spec, env, r.env.Stderr)
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
	rctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := r.waitReady(rctx, names); err != nil {
		return fmt.Errorf("start %d %s nodes: cluster not ready: %w", len(names), r.spec.Target, err)
	}
	r.logf("cluster of %d ready after %v (runtime %s)", len(names), time.Since(r.base).Round(time.Millisecond), r.rt.Name())
	return nil
}

// load runs the workload and the nemesis schedule together for the time limit.
func (r *run) load(ctx context.Context, faults []nemesis.Fault) error {
	r.phase = "running"
	seed := uint64(r.spec.Seed)
	r.sched = &nemesis.Schedule{Faults: faults, Interval: r.spec.NemesisInterval.D(), Cluster: r.cl,
		Rand: mrand.New(mrand.NewPCG(seed, 0x6e656d65)), Rec: r.rec, Log: r.logf}
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
	r.logf("workload and nemesis stopped; faults injected: %v", r.sched.Counts())
	return err
}

func (r *run) workloadConfig() workload.Config {
	return workload.Config{
		Workload: r.spec.Workload, Concurrency: r.spec.Concurrency, Rate: r.spec.Rate,
		TimeLimit: r.spec.TimeLimit.D(), Keys: r.spec.Keys, OpsPerKey: r.spec.OpsPerKey,
		OpTimeout: r.spec.OpTimeout.D(), Seed: r.spec.Seed, Progress: workload.NewProgress(),
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
	if r.cl != nil && ctx.Err() != nil {
		errs = append(errs, r.cl.HealPartition(tctx))
	}
	// The link proxy goes first: a delivery in flight must not dial into a network
	// already torn down.
	if r.links != nil {
		errs = append(errs, r.links.Close())
	}
	errs = append(errs, r.rt.Close(tctx))
	if c, ok := r.target.(io.Closer); ok {
		errs = append(errs, c.Close())
	}
	err := errors.Join(errs...)
	if err != nil {
		r.logf("teardown: %v", err)
	}
	return err
}
