package harness

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/faultline/faultline/checker"
)

func TestZooRowsAndVerdict(t *testing.T) {
	stale := ZooRow{ZooCase: ZooCases[0]}
	for i, v := range []checker.Verdict{checker.Invalid, checker.Invalid, checker.Valid, checker.Invalid} {
		stale.add(Outcome{Verdict: v, Violation: time.Duration(i+1) * time.Second, Dir: "d"})
	}
	stale.Median = median(stale.Detections)
	assert.Equal(t, 4, stale.Runs)
	assert.Equal(t, 3, stale.Invalid)
	assert.Equal(t, 2*time.Second, stale.Median, "median of 1 s, 2 s, 4 s")

	correct := ZooRow{ZooCase: ZooCases[len(ZooCases)-1]}
	correct.add(Outcome{Verdict: checker.Valid, Violation: -1})
	correct.add(Outcome{Verdict: checker.Unknown, Violation: -1})
	ok, why := ZooPassed([]ZooRow{stale, correct}, 3)
	assert.True(t, ok, "%v", why)
	ok, why = ZooPassed([]ZooRow{stale, correct}, 4)
	assert.False(t, ok)
	assert.Contains(t, why[0], "stale-read was caught in 3 of 4 runs")

	correct.add(Outcome{Verdict: checker.Invalid, Violation: time.Second})
	correct.add(Outcome{Verdict: checker.Valid, Err: errors.New("boom")})
	ok, why = ZooPassed([]ZooRow{correct}, 0)
	assert.False(t, ok)
	assert.Len(t, why, 1, "invalid is reported first: %v", why)
	assert.Contains(t, why[0], "correct node was judged invalid")
	assert.Equal(t, 1, correct.Errors)
}
