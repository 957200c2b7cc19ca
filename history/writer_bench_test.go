package history

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppendWhileSyncing measures what a client's Record pays for the history:
// 10 appenders against a writer that syncs (write + fsync) every 20 ms, on a real file.
// It reports the p99 and the worst Append latency; before the writer swapped buffers
// out for its fsync, every sync stalled every appender for the whole fsync.
func BenchmarkAppendWhileSyncing(b *testing.B) {
	w, err := CreateWriter(filepath.Join(b.TempDir(), "history.jsonl"), 20*time.Millisecond)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	const appenders = 10
	lat := make([][]time.Duration, appenders)
	var wg sync.WaitGroup
	b.ResetTimer()
	for a := range appenders {
		wg.Go(func() {
			for i := range b.N {
				e := Event{Index: int64(i), Process: a, Type: OK, F: "write", Key: "k", Value: S1("some value of a usual size")}
				t0 := time.Now()
				_ = w.Append(e)
				lat[a] = append(lat[a], time.Since(t0))
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(all[len(all)-1].Microseconds()), "max-µs")
}
