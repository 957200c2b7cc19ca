package node_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkCluster measures a 3-node cluster of real processes on this machine: writes
// (PUT, linearizable) and reads (GET through ReadIndex), spread over all nodes, at 1,
// 16 and 64 concurrent clients. It reports ops/s and p50/p99 latency in ms.
//
//	go test -run '^$' -bench . -benchtime 2000x ./node/
func BenchmarkCluster(b *testing.B) {
	c := newCluster(b, 3)
	c.waitLeader(30 * time.Second)
	ctx := context.Background()
	for i := 0; i < 64; i++ {
		if err := eventually(10*time.Second, func(ctx context.Context) error {
			return c.client(1).Put(ctx, fmt.Sprintf("k%d", i), "init")
		}); err != nil {
			b.Fatal(err)
		}
	}
	ops := map[string]func(ctx context.Context, node uint64, i int) error{
		"write": func(ctx context.Context, node uint64, i int) error {
			return c.client(node).Put(ctx, fmt.Sprintf("k%d", i%64), fmt.Sprintf("v%d", i))
		},
		"read": func(ctx context.Context, node uint64, i int) error {
			_, _, err := c.client(node).Get(ctx, fmt.Sprintf("k%d", i%64))
			return err
		},
	}
	for _, op := range []string{"write", "read"} {
		for _, conc := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d", op, conc), func(b *testing.B) {
				runLoad(ctx, b, conc, ops[op])
			})
		}
	}
}

func runLoad(ctx context.Context, b *testing.B, conc int, op func(context.Context, uint64, int) error) {
	var next, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(ctx, uint64(w%3+1), i); err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		b.Fatalf("no operation succeeded (%d errors)", errs.Load())
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	q := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))]) / 1e6 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "ops/s")
	b.ReportMetric(q(0.50), "p50_ms")
	b.ReportMetric(q(0.99), "p99_ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	b.ReportMetric(0, "ns/op")
}
