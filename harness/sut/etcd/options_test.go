package etcd

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUpgradePathIsNewerEachStep(t *testing.T) {
	assert.True(t, newerRelease("v3.6.16", "v3.5.35"))
	assert.True(t, newerRelease("v3.7.3", "v3.7.0"))
	assert.True(t, newerRelease("v3.10.0", "v3.9.9"), "numbers, not strings")
	assert.False(t, newerRelease("v3.6.16", "v3.6.16"))
	assert.False(t, newerRelease("v3.5.35", "v3.6.0"))
}
