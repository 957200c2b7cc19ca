package bench

import (
	"context"
	"testing"
)

// A child's peak memory is its own. Go starts a child with vfork, and Linux carries the
// parent's peak RSS into the child's rusage at exec: a small process measured by a big
// bench read as big as the bench (the reference checker's 1M-operation row said
// 1538 MiB; run alone it peaks at 690 MiB).
func TestMeasureIsTheChildsOwnPeak(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 400 MiB to measure the bench's measure: skipped in -short mode")
	}
	ballast := make([]byte, 400<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1 // touched: resident in this process
	}
	p, err := measure(context.Background(), "sleep", "0.3")
	if err != nil {
		t.Skipf("cannot run sleep: %v", err)
	}
	if p.maxRSS <= 0 || p.maxRSS > 100<<10 {
		t.Errorf("sleep's peak RSS read as %d KiB (this process holds 400 MiB)", p.maxRSS)
	}
	_ = ballast[len(ballast)-1]
}
