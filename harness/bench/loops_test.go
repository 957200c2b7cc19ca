package bench

import (
	"errors"
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

// alternate runs the pairs in alternating order, so that neither side always runs on
// the warmer or the bigger store, and its ratio is the median of the pairs': one pair
// taken in a slow spell does not move it, as it would a mean.
func TestAlternate(t *testing.T) {
	var order []string
	oursRates := []float64{100, 100, 30, 100, 100} // round 2 ran in a slow spell
	ours := func(r int) (rate, error) {
		order = append(order, "ours")
		return rate{OpsPerSec: oursRates[r]}, nil
	}
	ref := func(int) (rate, error) { order = append(order, "ref"); return rate{OpsPerSec: 50}, nil }
	o, r, ratio, err := alternate(5, 1, ours, ref)
	assert.NoError(t, err)
	assert.Equal(t, []string{"ref", "ours", "ours", "ref", "ref", "ours", "ours", "ref", "ref", "ours"}, order)
	assert.Equal(t, 2.0, ratio, "the median of the pairs' ratios")
	assert.Equal(t, 86.0, o.OpsPerSec)
	assert.Equal(t, 50.0, r.OpsPerSec)

	boom := errors.New("boom")
	_, _, _, err = alternate(3, 0, ours, func(int) (rate, error) { return rate{}, boom })
	assert.ErrorIs(t, err, boom)
}
