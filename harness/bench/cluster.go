package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/internal/procstat"
	"github.com/faultline/faultline/workload"
)

// startCluster starts a 3-node cluster of the target named by args (the flags of
// `faultline test`: --target etcd --etcd-version v3.7.3) the way a run starts it — the
// same plan, runtime (the process runtime) and target — and returns it.
func startCluster(ctx context.Context, o Options, args []string) (*harness.Cluster, error) {
	spec, err := harness.ParseTestArgs(append([]string{"--runtime", "process", "--nodes", "3", "--nemesis", "none", "--seed", "1"}, args...), io.Discard)
	if err != nil {
		return nil, err
	}
	p, err := harness.NewPlan(ctx, spec)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(o.Dir, spec.Target+"-")
	if err != nil {
		return nil, err
	}
	c, err := harness.StartCluster(ctx, p, dir, func(format string, args ...any) { logf(o, format, args...) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	return c, nil
}

func recorderRows(ctx context.Context, o Options) ([]Row, error) {
	c, err := startCluster(ctx, o, o.Ours)
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	t := c.Target
	// Pairs of runs, the order alternating (a cluster's log and data grow from one loop
	// to the next: the loop that always went second was always on the bigger store),
	// and the ratio the median of the pairs' (one noisy pair does not move it).
	d, conc, rounds := 4*time.Second, 10, 6
	if o.Quick {
		d, rounds = 2*time.Second, 2
	}
	open := t.Opener(2 * time.Second)
	logf(o, "recorder: the harness's clients vs a bare loop, %s, %d clients, %v each, %d pairs, alternating", t.Name(), conc, d, rounds)
	r, b, ratio, err := alternate(rounds, 1, func(round int) (rate, error) {
		dir := filepath.Join(o.Dir, "rec-"+strconv.Itoa(round))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return rate{}, err
		}
		return recordedLoop(ctx, open, conc, d, dir)
	}, func(int) (rate, error) { return bareLoop(ctx, open, conc, d, "register") })
	if err != nil {
		return nil, err
	}
	return []Row{
		{Section: "recorder", Name: fmt.Sprintf("ops/s, %s 3 nodes, %d clients, register mix (ratio: median of %d pairs)", t.Name(), conc, rounds),
			Ours: fmt.Sprintf("%.0f ops/s", r.OpsPerSec), Ref: fmt.Sprintf("%.0f ops/s", b.OpsPerSec), Ratio: ratio, Goal: "≥ 0.95x",
			Command: "workload.Run recording to history.jsonl  vs  the same clients in a loop that records nothing (faultline-bench --only recorder)"},
		{Section: "recorder", Name: "p99 latency (added: " + ms(r.P99-b.P99) + ")", Ours: ms(r.P99), Ref: ms(b.P99),
			Ratio: float64(r.P99) / float64(b.P99), Goal: "≤ +1 ms"},
	}, nil
}

// median is the middle of xs (of an even number, the mean of the middle two).
func median[T ~int64 | ~float64](xs []T) T {
	s := slices.Sorted(slices.Values(xs))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// alternate runs ours and ref in rounds pairs, the order alternating (the pair of round
// r runs ours first when r+start is even), and returns their mean rates and the median of
// the pairs' ratios (ours/ref ops/s). A cluster's log and data grow from one loop to the
// next, and this machine's speed drifts by tens of percent over seconds: one sample each
// measured the drift, and one noisy pair does not move a median.
func alternate(rounds, start int, ours, ref func(round int) (rate, error)) (o, r rate, ratio float64, err error) {
	var oo, rr []rate
	var ratios []float64
	for round := range rounds {
		var a, b rate
		if (round+start)%2 == 0 {
			if a, err = ours(round); err == nil {
				b, err = ref(round)
			}
		} else {
			if b, err = ref(round); err == nil {
				a, err = ours(round)
			}
		}
		if err != nil {
			return rate{}, rate{}, 0, err
		}
		oo, rr = append(oo, a), append(rr, b)
		ratios = append(ratios, a.OpsPerSec/b.OpsPerSec)
	}
	return mean(oo), mean(rr), median(ratios), nil
}

func mean(rs []rate) rate {
	var m rate
	for _, r := range rs {
		m.OpsPerSec += r.OpsPerSec / float64(len(rs))
		m.P50 += r.P50 / time.Duration(len(rs))
		m.P99 += r.P99 / time.Duration(len(rs))
		m.Errors += r.Errors
	}
	return m
}

func nodeRows(ctx context.Context, o Options) ([]Row, error) {
	rc, err := startCluster(ctx, o, o.Ours)
	if err != nil {
		return nil, err
	}
	defer rc.Close(context.WithoutCancel(ctx))
	rt := rc.Target
	ec, err := startCluster(ctx, o, o.Reference)
	if err != nil {
		return []Row{{Section: "node", Name: strings.Join(o.Reference, " "), Ours: "-", Ref: "unavailable: " + err.Error()}}, nil
	}
	defer ec.Close(context.WithoutCancel(ctx))
	et := ec.Target
	ref := et.Describe()
	refName := strings.TrimSpace(ref.Name + " " + ref.Version)
	// Rounds of paired runs (see alternate): a single 5 s sample each made the 1-client
	// rows, a millisecond round trip, swing between 0.92x and 1.12x from one bench to
	// the next.
	d, rounds := 2*time.Second, 5
	concs := []int{1, 16, 64}
	if o.Quick {
		d, rounds, concs = time.Second, 1, []int{1, 16}
	}
	var rows []Row
	i := 0
	for _, kind := range []string{"write", "read"} {
		for _, place := range []string{"spread", "leader"} {
			for _, conc := range concs {
				logf(o, "node: %s, %d clients (%s), %s and %s, %d pairs of %v, alternating", kind, conc, place, rt.Name(), refName, rounds, d)
				ro, err1 := placed(ctx, rc, rt, place)
				eo, err2 := placed(ctx, ec, et, place)
				if err := cmpErr(err1, err2); err != nil {
					return rows, err
				}
				r, e, ratio, err := alternate(rounds, i, func(int) (rate, error) { return bareLoop(ctx, ro, conc, d, kind) },
					func(int) (rate, error) { return bareLoop(ctx, eo, conc, d, kind) })
				i++
				if err != nil {
					return rows, err
				}
				goal := "≥ 1.0x"
				if kind == "read" {
					goal = "(no goal)"
				}
				where := map[string]string{"spread": "client c on member c mod 3", "leader": "all on the leader"}[place]
				rows = append(rows, Row{Section: "node", Name: fmt.Sprintf("%s vs %s: %ss, %d clients, %s", rt.Name(), refName, kind, conc, where),
					Ours: r.String(), Ref: e.String(), Ratio: ratio, Goal: goal,
					Command: "3 nodes on the process runtime, fsync on, a key per client, each system's own client (etcd: clientv3), one per client (a connection each: kvload, which shares a clientv3 per member, gives etcd ~1.4x more at 64), spread over the members from the leader on, or all on the leader; pairs of 2 s runs, the order alternating, the ratio the median of the pairs' (faultline-bench --only node)"})
			}
		}
	}
	return rows, nil
}

// placed returns t's opener with its clients placed: "spread", client c on the c-th
// member from the leader on (so that one client is on the leader in both systems: which
// member leads is the elections' to decide, and a client on a follower pays a
// forwarding hop — it made the one-client rows swing by a third from run to run), the
// others round the members as real clients spread (Kubernetes' API servers over etcd's
// members); "leader", every client on the leader.
func placed(ctx context.Context, c *harness.Cluster, t sut.Target, place string) (workload.Opener, error) {
	open, err := fromLeader(ctx, c, t)
	if err != nil || place == "spread" {
		return open, err
	}
	n := len(c.Nodes())
	return func(ctx context.Context, process int) (workload.Client, string, error) {
		return open(ctx, process*n) // process*n ≡ 0: the leader
	}, nil
}

// fromLeader returns t's opener with the processes shifted so that process 0 talks to
// the current leader, 1 to the next node, and so on (an opener places process p on
// member p mod n).
func fromLeader(ctx context.Context, c *harness.Cluster, t sut.Target) (workload.Opener, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var leader string
	err := sut.Poll(lctx, 100*time.Millisecond, func(ctx context.Context) error {
		l, err := t.Leader(ctx)
		if err == nil && l == "" {
			err = fmt.Errorf("no leader")
		}
		leader = l
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s leader: %w", t.Name(), err)
	}
	names := c.Nodes()
	shift := slices.Index(names, leader)
	if shift < 0 {
		return nil, fmt.Errorf("%s leader %q is not one of %v", t.Name(), leader, names)
	}
	open := t.Opener(2 * time.Second)
	return func(ctx context.Context, process int) (workload.Client, string, error) {
		return open(ctx, process+shift)
	}, nil
}

func cmpErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func bringupRows(ctx context.Context, o Options) ([]Row, error) {
	var rows []Row
	runtimes := []string{"process"}
	if ok, _ := docker.Available(ctx); ok {
		runtimes = append(runtimes, "docker")
	}
	n := 3
	if o.Quick {
		n = 1
	}
	for _, rtName := range runtimes {
		if rtName == "docker" { // warm the image: bring-up is measured with it built
			if _, err := bringup(ctx, o, rtName); err != nil {
				return rows, err
			}
		}
		var ds []time.Duration
		for range n {
			logf(o, "bring-up: %s, 5 nodes", rtName)
			d, err := bringup(ctx, o, rtName)
			if err != nil {
				return rows, err
			}
			ds = append(ds, d)
		}
		goal := map[string]string{"process": "< 1 s", "docker": "< 2 s (warm image)"}[rtName]
		rows = append(rows, Row{Section: "bring-up", Name: fmt.Sprintf("test start to first acknowledged operation, 5 nodes, %s (median of %d)", rtName, n),
			Ours: secs(median(ds)), Ref: "-", Goal: goal,
			Command: "faultline test --runtime " + rtName + " --nodes 5 --nemesis none --time-limit 2s: the first ok event's time"})
	}
	return rows, nil
}

// bringup runs a short test and returns the time of its first acknowledged operation
// since the run's start.
func bringup(ctx context.Context, o Options, rt string) (time.Duration, error) {
	spec := harness.DefaultSpec()
	spec.Runtime, spec.Nodes, spec.Nemesis = rt, 5, harness.List{}
	spec.TimeLimit, spec.Recovery = harness.Duration(2*time.Second), 0
	spec.Results, spec.Name, spec.Seed = filepath.Join(o.Dir, "runs"), "bringup-"+rt, 1
	rs, err := spec.Resolve()
	if err != nil {
		return 0, err
	}
	out := harness.Run(ctx, rs, harness.Env{Stdout: discard{}, Stderr: discard{}})
	if out.Err != nil {
		return 0, fmt.Errorf("bring-up run on %s: %w", rt, out.Err)
	}
	events, _, err := history.ReadFile(filepath.Join(out.Dir, "history.jsonl"))
	if err != nil {
		return 0, err
	}
	for _, e := range events {
		if !e.IsNemesis() && e.Type == history.OK {
			return time.Duration(e.Time), nil
		}
	}
	return 0, fmt.Errorf("bring-up run on %s: no operation was acknowledged (%s)", rt, out.Dir)
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// memoryRows records 1M operations (an invoke and a completion each) through the
// recorder and history writer a run uses, in a process of its own (`faultline-bench
// record`: RSS measured in this one would count what the sections before left), and
// reports its peak RSS above what it had before it began, per operation; beside it, the
// same with a recorder that keeps every event in memory, as runs did before.
func memoryRows(ctx context.Context, o Options) ([]Row, error) {
	n := 1_000_000
	if o.Quick {
		n = 100_000
	}
	logf(o, "memory: %s operations through the recorder, in a process of its own", count(n))
	var per [2]Memory
	for i, mode := range []string{"stream", "keep"} {
		out, err := exec.CommandContext(ctx, o.Self, "record", strconv.Itoa(n), filepath.Join(o.Dir, mode+".jsonl"), mode).Output()
		if err != nil {
			return nil, fmt.Errorf("faultline-bench record %s: %w", mode, err)
		}
		if err := json.Unmarshal(out, &per[i]); err != nil {
			return nil, fmt.Errorf("faultline-bench record %s: %w", mode, err)
		}
	}
	perOp := func(m Memory) string {
		return fmt.Sprintf("%.0f B/op (heap %.0f)", float64(m.PeakRSS-m.RSSBefore)/float64(n), float64(m.Heap)/float64(n))
	}
	return []Row{{Section: "memory", Name: fmt.Sprintf("recorder: peak RSS added per recorded operation, %s operations (reference: keeping every event)", count(n)),
		Ours: perOp(per[0]), Ref: perOp(per[1]), Ratio: float64(per[0].PeakRSS-per[0].RSSBefore) / float64(max(per[1].PeakRSS-per[1].RSSBefore, 1)),
		Goal: "≤ 200 B/op", Command: fmt.Sprintf("faultline-bench record %d FILE stream|keep: history.NewStreamRecorder (as a run records) | NewRecorder, + Writer", n)}}, nil
}

// Memory is what `faultline-bench record` measured: its RSS before recording, its peak
// RSS (VmHWM) after, and the heap the recorder holds at the end (after a GC).
type Memory struct {
	RSSBefore, PeakRSS, Heap int64
}

// RecordMemory records n operations (invoke and ok each) into a history file at path,
// through a stream recorder (mode "stream") or one that keeps every event ("keep"), and
// measures this process's memory: run it in a process of its own.
func RecordMemory(n int, path, mode string) (Memory, error) {
	w, err := history.CreateWriter(path, 0)
	if err != nil {
		return Memory{}, err
	}
	runtime.GC()
	m := Memory{RSSBefore: rss()}
	heapBefore := heap()
	rec := history.NewStreamRecorder(time.Now(), w)
	if mode == "keep" {
		rec = history.NewRecorder(time.Now(), w)
	}
	for i := range n {
		key := "r" + strconv.Itoa(i/200)
		rec.Record(history.Event{Process: i % 10, Type: history.Invoke, F: "write", Key: key, Value: history.S1(strconv.Itoa(i)), Node: "n1"})
		rec.Record(history.Event{Process: i % 10, Type: history.OK, F: "write", Key: key, Value: history.S1(strconv.Itoa(i)), Node: "n1"})
	}
	runtime.GC()
	m.Heap = heap() - heapBefore
	runtime.KeepAlive(rec)
	if err := w.Close(); err != nil {
		return m, err
	}
	m.PeakRSS = peakRSS()
	return m, nil
}

// peakRSS is this process's peak resident set (VmHWM), in bytes.
func peakRSS() int64 { return procstat.PeakRSS(os.Getpid()) << 10 }

// rss is this process's resident set, in bytes.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

func heap() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
