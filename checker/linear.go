package checker

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
)

// LinResult is the linearizability checker's result.
type LinResult struct {
	Verdict Verdict `json:"valid"`
	// Model is "register" or "list".
	Model string `json:"model"`
	Keys  int    `json:"keys"`
	// Ops is the number of operations given to porcupine; Dropped the indeterminate
	// ones left out because they could not matter.
	Ops     int `json:"ops"`
	Dropped int `json:"dropped"`
	// Ignored counts the operations of the keys that the checker could not interpret
	// (see Result.Notes): left out, or their outcome guessed.
	Ignored int `json:"ignored"`
	// Failures lists the keys with no linearization, each explained.
	Failures []KeyFailure `json:"failures,omitempty"`
	// UnknownKeys are the keys not decided: their search ran out of time, or some of
	// their operations could not be interpreted (an ignored operation may be the
	// violation, or explain one away), so they are judged neither valid nor invalid.
	UnknownKeys []string `json:"unknown_keys,omitempty"`
	// UnreadKeys are the keys with updates but no acknowledged read: their search
	// succeeds, and proves nothing.
	UnreadKeys []string `json:"unread_keys,omitempty"`
	Elapsed    Millis   `json:"elapsed_ms"`

	reasons []Reason // why the verdict is unknown, for Result.UnknownBecause
}

// KeyFailure is one key whose history has no linearization.
type KeyFailure struct {
	Key string `json:"key"`
	// Explanation says in plain words which operation cannot be ordered, and why.
	Explanation string `json:"explanation"`
	// Op is the event index of the invoke of the operation blamed (-1 if none).
	Op int64 `json:"op_index"`
	// Ops is the number of operations of the key that were checked.
	Ops int `json:"ops"`
}

// Millis is a duration encoded in JSON as fractional milliseconds.
type Millis time.Duration

// MarshalJSON encodes the duration in milliseconds.
func (m Millis) MarshalJSON() ([]byte, error) {
	return []byte(formatFloat(ms(time.Duration(m)))), nil
}

// keyHistory is one key's porcupine operations and the ops they came from.
type keyHistory struct {
	key   string
	model string
	raw   []*op // every operation of the key
	notes []string
	// pops are Porcupine's operations: the list model's always; the register model's
	// only when its search found no order (reg are then what it searched).
	pops []porcupine.Operation
	reg  []regOp
	ops  []*op // the operations searched, as pops or reg hold them
	n    int   // their number
	// bad counts the key's operations the model could not interpret; ignored is their
	// number plus the pairing's (pairIgnored): a key with any is never decided.
	bad         ignoredOps
	pairIgnored int
	ignored     int
	// unread is set when the key has updates but no acknowledged read.
	unread bool
	// contradiction is set when the key's reads disagree in a way no order explains
	// (see listOrder): it fails without a search.
	contradiction bool
	// unconfirmed is set when the register search found no order and Porcupine has not
	// searched the key yet: its Illegal is the register search's alone (see confirm).
	unconfirmed bool
	dropped     int // indeterminate operations that could not matter, left out
}

// checkKeys runs porcupine on every key, a few at once, under one deadline (zero: none)
// and ctx. A key not decided in time is porcupine.Unknown.
func checkKeys(ctx context.Context, model porcupine.Model, keys []keyHistory, deadline time.Time) []porcupine.CheckResult {
	out := make([]porcupine.CheckResult, len(keys))
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	step := model.Step
	model.Step = func(state, input, output any) (bool, any) {
		if stop.Load() {
			return false, state
		}
		return step(state, input, output)
	}
	order := make([]int, len(keys)) // largest first, so the long pole starts early
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return len(keys[order[a]].raw) > len(keys[order[b]].raw) })
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf regBuf
			var search regSearch
			for i := range next {
				out[i] = checkKey(ctx, model, &keys[i], deadline, &stop, &buf, &search)
			}
		}()
	}
	for _, i := range order {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

// checkKey prepares and searches one key, with a worker's memory (buf, search).
func checkKey(ctx context.Context, model porcupine.Model, k *keyHistory, deadline time.Time, stop *atomic.Bool, buf *regBuf, search *regSearch) porcupine.CheckResult {
	k.prepare(buf)
	// reg and ops are buf's: the next key's. Only a failing key keeps its operations,
	// for Porcupine and the explanations.
	defer func() { k.reg = nil }()
	switch {
	case k.ignored > 0: // undecided whatever the search says: skip it
		k.ops = nil
		return porcupine.Unknown
	case k.contradiction:
		return porcupine.Illegal
	case k.model == "register":
		// The register search decides; a key it finds illegal is searched again by
		// Porcupine, whose answer stands (see searchRegister).
		if r := search.run(k.reg, deadline, stop); r != porcupine.Illegal {
			k.ops = nil
			return r
		}
		k.ops = slices.Clone(k.ops)
		k.pops = registerPops(k.ops)
		if len(k.pops) <= maxDrawnOps {
			// A key that can be drawn is confirmed by the verbose search that draws it
			// (see confirm): one search of Porcupine's for it, not two.
			k.unconfirmed = true
			return porcupine.Illegal
		}
		return confirmOne(ctx, model, k, deadline, stop)
	}
	return checkOne(ctx, model, k.pops, deadline, stop)
}

// confirmOne searches with Porcupine a key the register search found illegal; its answer
// stands, and a disagreement is noted.
func confirmOne(ctx context.Context, model porcupine.Model, k *keyHistory, deadline time.Time, stop *atomic.Bool) porcupine.CheckResult {
	k.unconfirmed = false
	r := checkOne(ctx, model, k.pops, deadline, stop)
	if r == porcupine.Ok {
		k.notes = append(k.notes, searchDisagreed(k.key))
	}
	return r
}

// searchDisagreed notes a key the register search failed and Porcupine passed: a fault
// of the register search's, said so that it is seen.
func searchDisagreed(key string) string {
	return fmt.Sprintf("key %q: the register search found no order and Porcupine found one; Porcupine's answer stands (please report this history)", key)
}

func checkOne(ctx context.Context, model porcupine.Model, pops []porcupine.Operation, deadline time.Time, stop *atomic.Bool) porcupine.CheckResult {
	if stop.Load() || ctx.Err() != nil {
		return porcupine.Unknown
	}
	var timeout time.Duration
	if !deadline.IsZero() {
		if timeout = time.Until(deadline); timeout <= 0 {
			return porcupine.Unknown
		}
	}
	res := porcupine.CheckOperationsTimeout(model, pops, timeout)
	if stop.Load() || ctx.Err() != nil { // a cancelled search answers Illegal for want of steps
		return porcupine.Unknown
	}
	return res
}

// linJob is one linearizability check: the model's name ("register" or "list"), the
// keys, the time limit, and the faults in force, for the explanations.
type linJob struct {
	model   string
	keys    []keyHistory
	timeout time.Duration
	faults  []window
	// deadline is when the whole check must end (zero: never), explanations included:
	// linearizable sets it from timeout and ctx.
	deadline time.Time
}

// linearizable checks the keys against the model and explains the keys that fail. The
// failing keys' verbose check is kept in the returned vizData for Visualize.
func linearizable(ctx context.Context, job linJob) (*LinResult, *vizData) {
	start := time.Now()
	modelName, keys, timeout := job.model, job.keys, job.timeout
	model := registerModel
	if modelName == "list" {
		model = listModel
	}
	var deadline time.Time
	if timeout > 0 {
		deadline = start.Add(timeout)
	}
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	job.deadline = deadline
	res := &LinResult{Model: modelName, Keys: len(keys)}
	outcomes := checkKeys(ctx, model, keys, deadline)
	drawing := confirm(ctx, job, model, keys, outcomes)
	for _, k := range keys {
		res.Ops += k.n
		res.Dropped += k.dropped
	}
	var failed []keyHistory
	verdicts := []Verdict{Valid}
	undecided := 0
	for i, r := range outcomes {
		k := &keys[i]
		res.Ignored += k.ignored
		switch {
		case k.ignored > 0:
			res.UnknownKeys = append(res.UnknownKeys, k.key) // the reason is Result's: malformed_ops
			verdicts = append(verdicts, Unknown)
		case r == porcupine.Illegal:
			failed = append(failed, *k)
			verdicts = append(verdicts, Invalid)
		case r == porcupine.Ok && k.unread:
			res.UnreadKeys = append(res.UnreadKeys, k.key)
			verdicts = append(verdicts, Unknown)
		case r == porcupine.Ok:
		default:
			res.UnknownKeys = append(res.UnknownKeys, k.key)
			undecided++
			verdicts = append(verdicts, Unknown)
		}
	}
	if res.Ops == 0 {
		verdicts = append(verdicts, Unknown) // nothing was checked (the evidence floor says why)
	}
	if undecided > 0 {
		why := "the search ran out of time"
		if errors.Is(ctx.Err(), context.Canceled) {
			why = "the check was cancelled"
		}
		res.reasons = append(res.reasons, Reason{Code: ReasonUndecidedKeys,
			Detail: fmt.Sprintf("%d %s not decided: %s", undecided, plural(undecided, "key was", "keys were"), why)})
	}
	if len(res.UnreadKeys) > 0 {
		res.reasons = append(res.reasons, unreadReason(res.UnreadKeys))
	}
	res.Verdict = Compose(verdicts...)
	var viz *vizData
	if len(failed) > 0 {
		viz = explainFailures(ctx, job, model, failed, res, drawing)
		sort.SliceStable(res.Failures, func(a, b int) bool { return res.Failures[a].Key < res.Failures[b].Key })
	}
	res.Elapsed = Millis(time.Since(start))
	return res, viz
}
