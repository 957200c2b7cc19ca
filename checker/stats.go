package checker

import (
	"math"
	"slices"
	"strconv"

	"github.com/faultline/faultline/history"
)

// answered says whether a definite failure was an answer about the data (a cas that
// found another value, a conditional write that found another revision, a read of a
// compacted revision, a lease found gone), not a refusal to serve.
func answered(err string) bool {
	switch err {
	case history.Mismatch, history.Conflict, history.Compacted, history.LeaseNotFound:
		return true
	}
	return false
}

// Stats describe how the system under test behaved; they never decide a verdict.
type Stats struct {
	// Counts is the number of client operations by f and by how they ended.
	Counts map[string]map[history.Type]int `json:"counts"`
	// Availability is the share of completed client operations that the system answered:
	// ok, or a definite answer about the data (a cas mismatch, a conflict, a compacted
	// revision, a lease not found).
	Availability float64 `json:"availability"`
	// During and Outside split availability by whether the operation was invoked while
	// a fault was in force (-1 when there was no such operation).
	AvailabilityDuringFaults  float64 `json:"availability_during_faults"`
	AvailabilityOutsideFaults float64 `json:"availability_outside_faults"`
	// Latency quantiles of ok operations, in milliseconds.
	Latency   Quantiles `json:"latency_ms"`
	OpsPerSec float64   `json:"ops_per_sec"`
	Faults    int       `json:"faults"`
	// Untimed is set for a history without clock readings (Jepsen logs): it has no
	// latencies or rates.
	Untimed bool `json:"untimed,omitempty"`
}

// Quantiles of a latency distribution, in milliseconds.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

func computeStats(p pairing) Stats {
	st := Stats{Counts: map[string]map[history.Type]int{}}
	windows := faultWindows(p.nemesis)
	st.Faults = len(windows)
	lat := make([]float64, 0, len(p.ops))
	var ok, total, okIn, totalIn int
	first, last := int64(math.MaxInt64), int64(math.MinInt64)
	type fs struct {
		f      string
		status history.Type
	}
	counts := map[fs]int{}
	count := func(o *op) {
		counts[fs{o.f, o.status}]++
		first, last = min(first, o.call), max(last, o.call)
		if o.done >= 0 {
			last = max(last, o.done)
		}
		if o.done < 0 {
			return // never completed: not counted in availability
		}
		total++
		during := inWindow(windows, o.call)
		if during {
			totalIn++
		}
		if o.status == history.OK || o.status == history.Fail && answered(o.err) {
			ok++
			if during {
				okIn++
			}
		}
		if o.status == history.OK {
			lat = append(lat, float64(o.ret-o.call)/1e6)
		}
	}
	for i := range p.ops {
		count(&p.ops[i])
	}
	for k, n := range counts {
		if st.Counts[k.f] == nil {
			st.Counts[k.f] = map[history.Type]int{}
		}
		st.Counts[k.f][k.status] = n
	}
	st.Availability = ratio(ok, total)
	st.AvailabilityDuringFaults = ratio(okIn, totalIn)
	st.AvailabilityOutsideFaults = ratio(ok-okIn, total-totalIn)
	if p.untimed {
		st.Untimed = true
		return st // latencies and rates of event numbers would mean nothing
	}
	st.Latency = quantiles(lat)
	if total > 0 && last > first {
		st.OpsPerSec = float64(total) / (float64(last-first) / 1e9)
	}
	return st
}

func inWindow(ws []window, t int64) bool {
	for _, w := range ws {
		if t >= w.start && t <= w.end {
			return true
		}
	}
	return false
}

func ratio(a, b int) float64 {
	if b == 0 {
		return -1
	}
	return float64(a) / float64(b)
}

func quantiles(xs []float64) Quantiles {
	if len(xs) == 0 {
		return Quantiles{}
	}
	slices.Sort(xs)
	q := func(p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	return Quantiles{P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: xs[len(xs)-1]}
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }
