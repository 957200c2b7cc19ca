package checker

import (
	"context"
	"fmt"
	"time"

	"github.com/faultline/faultline/history"
)

// Options says how to check a history.
type Options struct {
	// Workload is "register", "append" or "set"; empty guesses it from the operations.
	Workload string
	// Timeout bounds the linearizability search (zero: no bound but ctx). Keys not
	// decided in time make the verdict unknown.
	Timeout time.Duration
}

// maxNotes bounds Result.Notes; a history malformed throughout says so soon enough.
const maxNotes = 100

// Workloads are the workloads Check knows.
var Workloads = []string{"register", "append", "set"}

// Check judges a history. It never fails: what it cannot judge makes the verdict
// unknown, and what it had to forgive is in Result.Notes.
func Check(ctx context.Context, events []history.Event, opts Options) (res Result) {
	start := time.Now()
	p := pairOps(events)
	res = Result{Workload: opts.Workload, Notes: p.notes}
	if res.Workload == "" {
		res.Workload = guessWorkload(p.ops)
	}
	stats := make(chan Stats, 1) // the stats are independent of the checks: overlap them
	go func() { stats <- computeStats(p) }()
	defer func() { res.Stats = <-stats }()
	var verdicts []Verdict
	switch res.Workload {
	case "register", "append":
		model := "register"
		if res.Workload == "append" {
			model = "list"
			res.Append = checkAppend(p.ops)
			verdicts = append(verdicts, res.Append.Verdict)
		}
		keys := keyHistories(model, p.ops)
		lin, viz := linearizable(ctx, linJob{model: model, keys: keys, timeout: opts.Timeout, faults: faultWindows(p.nemesis)})
		for _, k := range keys {
			res.Notes = append(res.Notes, k.notes...)
		}
		res.Linearizability = lin
		verdicts = append(verdicts, lin.Verdict)
		if viz != nil {
			viz.info.AddAnnotations(annotations(p.nemesis))
			res.viz = viz
		}
	case "set":
		res.Set = checkSet(p.ops)
		verdicts = append(verdicts, res.Set.Verdict)
	default:
		res.Notes = append(res.Notes, fmt.Sprintf("unknown workload %q: nothing checked", res.Workload))
	}
	if len(p.ops) == 0 {
		res.Notes = append(res.Notes, "no client operations in the history")
		verdicts = append(verdicts, Unknown)
	}
	if len(res.Notes) > maxNotes {
		res.Notes = append(res.Notes[:maxNotes], fmt.Sprintf("… and %d more notes like these", len(res.Notes)-maxNotes))
	}
	res.Verdict = Compose(verdicts...)
	res.Elapsed = time.Since(start)
	return res
}

// guessWorkload names the workload whose operations the history holds.
func guessWorkload(ops []op) string {
	for _, o := range ops {
		switch o.f {
		case "add":
			return "set"
		case "append":
			return "append"
		}
	}
	return "register"
}

// keyHistories groups the operations by key, for the model; each key's porcupine
// history is built by prepare, in checkKeys's workers.
func keyHistories(model string, ops []op) []keyHistory {
	keys, m := byKey(ops)
	out := make([]keyHistory, 0, len(keys))
	for _, k := range keys {
		out = append(out, keyHistory{key: k, model: model, raw: m[k]})
	}
	return out
}

// prepare builds the key's porcupine history from its operations.
func (kh *keyHistory) prepare() {
	if kh.model == "list" {
		order, ordered, contradiction := listOrder(kh.raw)
		kh.pops, kh.ops, kh.dropped, kh.notes = listOps(kh.raw, order, ordered)
		kh.contradiction = contradiction
	} else {
		kh.pops, kh.ops, kh.dropped, kh.notes = registerOps(kh.raw)
	}
	kh.ignored = len(kh.notes)
}
