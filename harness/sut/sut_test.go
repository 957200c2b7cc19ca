package sut

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestMostNamed(t *testing.T) {
	assert.Equal(t, uint64(0), MostNamed(nil))
	assert.Equal(t, uint64(0), MostNamed([]uint64{0, 0}), "nobody named a leader")
	assert.Equal(t, uint64(3), MostNamed([]uint64{3, 0, 3, 2}))
	assert.Equal(t, uint64(2), MostNamed([]uint64{3, 2}), "a tie goes to the lowest id")
}
