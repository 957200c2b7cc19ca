package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestSummarize(t *testing.T) {
	lat := []time.Duration{5, 1, 4, 2, 3}
	r := summarize(lat, time.Second, 1)
	assert.InDelta(t, 5, r.OpsPerSec, 1e-9)
	assert.Equal(t, time.Duration(3), r.P50)
	assert.Equal(t, time.Duration(5), r.P99)
	assert.Equal(t, 1, r.Errors)
}
