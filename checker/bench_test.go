package checker

import (
	"context"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/history"
)

// rawOperations is what a caller of porcupine would hand it for the same history:
// every ok and info operation (info with an open end), fails left out, partitioned by
// key, with the same register model.
func rawOperations(events []history.Event) (porcupine.Model, []porcupine.Operation) {
	p := pairOps(events)
	var pops []porcupine.Operation
	for i := range p.ops {
		o := &p.ops[i]
		if o.status == history.Fail {
			continue
		}
		in, out, err := registerOp(o)
		if err != nil {
			panic(err)
		}
		in.next = in.to
		pops = append(pops, porcupine.Operation{ClientId: o.process, Input: &in, Call: o.call, Output: &out, Return: o.end(), Metadata: o.key})
	}
	m := registerModel
	m.Partition = func(h []porcupine.Operation) [][]porcupine.Operation {
		idx := map[string]int{}
		var parts [][]porcupine.Operation
		for _, op := range h {
			k := op.Metadata.(string)
			i, ok := idx[k]
			if !ok {
				i = len(parts)
				idx[k] = i
				parts = append(parts, nil)
			}
			parts[i] = append(parts[i], op)
		}
		return parts
	}
	return m, pops
}

// peakHeap samples the live heap every millisecond until stop is called, and returns
// the largest sample in MiB.
func peakHeap() (stop func() float64) {
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() float64 {
		close(done)
		<-finished
		return float64(peak.Load()) / (1 << 20)
	}
}

// BenchmarkRegister checks register histories with Check and with porcupine called
// directly on the same operations, and reports both times, their ratio and the peak
// live heap of each.
func BenchmarkRegister(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  simConfig
	}{
		{"10k-ops-100-per-key", simConfig{Seed: 7, Ops: 10_000, Procs: 10, Info: 0.05, OpsPerKey: 100}},
		{"100k-ops-100-per-key", simConfig{Seed: 8, Ops: 100_000, Procs: 10, Info: 0.05, OpsPerKey: 100}},
		{"10k-ops-one-key", simConfig{Seed: 9, Ops: 10_000, Procs: 10, Info: 0.05}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			events := simulate(bc.cfg)
			model, pops := rawOperations(events)
			b.ReportAllocs()
			b.ResetTimer()
			var checkT, rawT time.Duration
			var checkPeak, rawPeak float64
			for range b.N {
				stop := peakHeap()
				t0 := time.Now()
				res := Check(context.Background(), events, Options{Model: "register", Timeout: 5 * time.Minute})
				checkT += time.Since(t0)
				checkPeak = max(checkPeak, stop())
				if res.Verdict != Valid {
					b.Fatalf("check: %s", res.Summary())
				}
				stop = peakHeap()
				t0 = time.Now()
				raw := porcupine.CheckOperationsTimeout(model, pops, 5*time.Minute)
				rawT += time.Since(t0)
				rawPeak = max(rawPeak, stop())
				if raw != porcupine.Ok {
					b.Fatalf("porcupine: %s", raw)
				}
			}
			n := float64(b.N)
			b.ReportMetric(float64(checkT.Milliseconds())/n, "check-ms/op")
			b.ReportMetric(float64(rawT.Milliseconds())/n, "porcupine-ms/op")
			b.ReportMetric(float64(checkT)/float64(rawT), "ratio")
			b.ReportMetric(checkPeak, "check-peak-MiB")
			b.ReportMetric(rawPeak, "porcupine-peak-MiB")
		})
	}
}

// BenchmarkTxn checks simulated list-append histories (every one valid) of 100k and 1M
// transactions. Elle's published rate on the JVM is 100-160k transactions a second.
func BenchmarkTxn(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("%dk-txns", n/1000), func(b *testing.B) {
			events := simulate(simConfig{Seed: 11, Ops: n, Procs: 10, Info: 0.01, Keys: 8, OpsPerKey: 64, Workload: "txn"})
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "history-MiB")
			b.ReportAllocs()
			b.ResetTimer()
			var took time.Duration
			var peak float64
			for range b.N {
				stop := peakHeap()
				t0 := time.Now()
				res := Check(context.Background(), events, Options{Model: Txn})
				took += time.Since(t0)
				peak = max(peak, stop())
				if res.Verdict != Valid {
					b.Fatalf("check: %s", res.Summary())
				}
			}
			b.ReportMetric(float64(took.Milliseconds())/float64(b.N), "check-ms/op")
			b.ReportMetric(float64(n)/(took.Seconds()/float64(b.N)), "txns/s")
			b.ReportMetric(peak, "peak-MiB")
		})
	}
}
