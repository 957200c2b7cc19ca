package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

// rate is what a client loop achieved: acknowledged operations per second and the
// latency quantiles of those operations.
type rate struct {
	OpsPerSec float64
	P50, P99  time.Duration
	Errors    int
}

func (r rate) String() string {
	return fmt.Sprintf("%.0f ops/s, p50 %s, p99 %s", r.OpsPerSec, ms(r.P50), ms(r.P99))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }

// bareLoop drives conc clients from open, each on a key of its own, for d, without
// recording anything: kind is "write", "read", or "register" (the register workload's
// mix: 50% read, 30% write, 20% cas of the last value written).
func bareLoop(ctx context.Context, open workload.Opener, conc int, d time.Duration, kind string) (rate, error) {
	// Every client is opened (and has written its key once) before the clock starts,
	// all at once: the loops time operations, not dials, and the two systems' clients
	// differ in what a dial costs.
	clients := make([]workload.Client, conc)
	lasts := make([]string, conc)
	errs := make([]int, conc)
	openErrs := make([]error, conc)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			c, _, err := open(ctx, w)
			if err != nil {
				openErrs[w] = err
				return
			}
			clients[w] = c
			if err := c.Write(ctx, "bare-"+strconv.Itoa(w), "0"); err == nil {
				lasts[w] = "0"
			}
		})
	}
	wg.Wait()
	defer func() {
		for _, c := range clients {
			if cl, ok := c.(io.Closer); ok {
				_ = cl.Close()
			}
		}
	}()
	if err := errors.Join(openErrs...); err != nil {
		return rate{}, err
	}
	lat := make([][]time.Duration, conc)
	start := time.Now()
	deadline := start.Add(d)
	for w, c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			key, last := "bare-"+strconv.Itoa(w), lasts[w]
			l := make([]time.Duration, 0, 1<<14)
			for i := 1; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				v := strconv.Itoa(i)
				f := kind
				if kind == "register" {
					f = [...]string{"read", "read", "read", "read", "read", "write", "write", "write", "cas", "cas"}[r.IntN(10)]
				}
				t0 := time.Now()
				var err error
				switch f {
				case "read":
					_, _, err = c.Read(ctx, key)
				case "write":
					err = c.Write(ctx, key, v)
					last = v
				case "cas":
					err = c.CAS(ctx, key, last, v)
					last = v
				}
				if err != nil && f != "cas" {
					errs[w]++
					continue
				}
				l = append(l, time.Since(t0))
			}
			lat[w] = l
		})
	}
	wg.Wait()
	return summarize(slices.Concat(lat...), time.Since(start), sum(errs)), nil
}

// recordedLoop runs the harness's own workload (workload.Run, the register mix) with a
// recorder writing the history to a file in dir, as a run records (the stream recorder,
// which keeps no event, and the history writer), and measures the same, from the file
// read back afterwards.
func recordedLoop(ctx context.Context, open workload.Opener, conc int, d time.Duration, dir string) (rate, error) {
	path := filepath.Join(dir, "history.jsonl")
	w, err := history.CreateWriter(path, 0)
	if err != nil {
		return rate{}, err
	}
	rec := history.NewStreamRecorder(time.Now(), w)
	_, err = workload.Run(ctx, workload.Config{Workload: "register", Concurrency: conc, TimeLimit: d, Seed: 1,
		OpTimeout: 2 * time.Second}, open, rec)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return rate{}, err
	}
	events, _, err := history.ReadFile(path)
	if err != nil {
		return rate{}, err
	}
	calls := map[int]int64{}
	var lat []time.Duration
	errs := 0
	for _, e := range events {
		switch {
		case e.Type == history.Invoke:
			calls[e.Process] = e.Time
		case e.Type == history.OK || e.Type == history.Fail && e.Error == history.Mismatch:
			lat = append(lat, time.Duration(e.Time-calls[e.Process]))
		default:
			errs++
		}
	}
	return summarize(lat, d, errs), nil
}

func summarize(lat []time.Duration, d time.Duration, errs int) rate {
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return rate{OpsPerSec: float64(len(lat)) / d.Seconds(), P50: q(0.5), P99: q(0.99), Errors: errs}
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
