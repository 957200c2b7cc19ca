package results

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/faultline/faultline/checker"
)

// BenchmarkReport100k measures the report of a generated 100k-operation register
// history (10 clients, a fault every 5 s, one stale read): the whole of WriteReport,
// and each plot on its own (drawn as SVG and as PNG). The history is checked once,
// outside the timing. Run it with
//
//	go test -run '^$' -bench Report100k -benchmem ./results/
func BenchmarkReport100k(b *testing.B) {
	events := genHistory(genConfig{seed: 11, ops: 100_000, procs: 10, opsPerKey: 200, stale: true, latency: time.Millisecond})
	h := checker.Pair(events)
	res := checker.Check(context.Background(), events, checker.Options{})
	s, _ := spanOf(h, false)
	faults, leaders := faultViews(h)
	b.Run("WriteReport", func(b *testing.B) {
		dir := b.TempDir()
		for b.Loop() {
			if _, err := WriteReport(dir, res, h, ReportOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, p := range []struct {
		name string
		draw func(span, iter.Seq[checker.Operation], *bands) (plotView, error)
	}{{"latency", latencyPlot}, {"rate", ratePlot}} {
		b.Run(p.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.draw(s, h.Operations, &bands{span: s, faults: faults, leaders: leaders}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
