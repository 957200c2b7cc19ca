package nemesis

import (
	"errors"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every row of the registry is whole: the choice, the schedule, the history and the
// report all read it, and a kind without its events or colour would show as nothing.
func TestEveryKindIsDefinedWhole(t *testing.T) {
	seen := map[string]Kind{}
	for _, d := range Kinds() {
		assert.NotEmpty(t, d.Doc, d.Kind)
		assert.NotEmpty(t, d.Start, d.Kind)
		assert.NotEmpty(t, d.End, d.Kind)
		assert.NotEmpty(t, d.Verb, d.Kind)
		assert.NotEmpty(t, d.Healed, d.Kind)
		assert.NotEmpty(t, d.Family, d.Kind)
		assert.Regexp(t, `^#[0-9a-f]{6}$`, d.Color, d.Kind)
		assert.NotNil(t, d.Inject, d.Kind)
		require.NotEmpty(t, d.Variants, d.Kind)
		weighed := false
		for _, v := range d.Variants {
			assert.NotEmpty(t, v.Doc, "%s:%s", d.Kind, v.Name)
			weighed = weighed || v.Weight > 0
		}
		assert.True(t, weighed, "%s: some variant is drawn when none is named", d.Kind)
		names := d.VariantNames()
		assert.Len(t, slices.Compact(slices.Sorted(slices.Values(names))), len(names), "%s: variant names are unique", d.Kind)
		for _, f := range []string{d.Start, d.End} {
			if k, ok := seen[f]; ok && k != d.Kind && d.Family != "upgrade" {
				t.Errorf("event %s is both %s's and %s's", f, k, d.Kind)
			}
			seen[f] = d.Kind
			got, start, ok := ByEvent(f)
			require.True(t, ok, f)
			assert.Equal(t, d.Kind, got.Kind, f)
			assert.Equal(t, f == d.Start, start, f)
		}
	}
	_, _, ok := ByEvent("nemesis-start")
	assert.False(t, ok, "the run's marks are no fault's")
}

func TestChooseNamesWhatIsWrong(t *testing.T) {
	c := newFake()
	for entry, want := range map[string]string{
		"bogus":                  "one of none, all, partition, kill",
		"kill:bogus":             "its variants are one, leader, minority, majority, all",
		"partition:leader+bogus": `"bogus" is not a fault kind`,
		"kill+kill":              "each kind once",
	} {
		_, _, err := Choose([]string{entry}, 5, c.caps())
		require.Error(t, err, entry)
		assert.Contains(t, err.Error(), want, entry)
	}

	// What the cluster lacks is refused with the reason it declared.
	caps := c.caps().Lacks(CapClock, "no clock hook here")
	_, _, err := Choose([]string{"partition+clock"}, 5, caps)
	var u *Unavailable
	require.True(t, errors.As(err, &u), "%v", err)
	assert.Equal(t, "partition+clock is unavailable: clock: no clock hook here", err.Error())

	// A kind named alone draws only the variants the cluster can take; naming one it
	// cannot is refused.
	c.isolating, c.snapshots = true, true
	fs, skipped, err := Choose([]string{"partition"}, 5, c.caps())
	require.NoError(t, err)
	var names []string
	for _, v := range fs[0].Parts[0].Variants {
		names = append(names, v.Name)
	}
	assert.Equal(t, []string{"one", "leader", "snapshot"}, names)
	assert.Equal(t, "only isolation", skipped["partition:halves"])
	_, _, err = Choose([]string{"partition:bridge"}, 5, c.caps())
	assert.EqualError(t, err, "partition:bridge is unavailable: only isolation")

	// A cluster too small.
	_, _, err = Choose([]string{"partition:snapshot"}, 2, newFake().caps())
	assert.ErrorContains(t, err, "needs at least 3 nodes")
	_, _, err = Choose([]string{"packet"}, 1, newFake().caps())
	assert.ErrorContains(t, err, "needs at least 2 nodes")
}

func TestChooseAllTakesWhatTheClusterCan(t *testing.T) {
	c := newFake()
	caps := c.caps().Lacks(CapClock, "no hook").Lacks(CapUpgrade, "one release")
	fs, skipped := ChooseAll(5, caps)
	var names []string
	for _, f := range fs {
		names = append(names, f.Name)
	}
	assert.Equal(t, []string{"partition", "kill", "stop", "pause", "packet", "member", "rolling-replace", "maintenance"}, names)
	assert.Equal(t, "no hook", skipped["clock"])
	assert.Equal(t, "one release", skipped["rolling-upgrade"])
	assert.Equal(t, "one release", skipped["rolling-downgrade"])
	assert.Equal(t, "the links carry messages", skipped["packet:rate"])
}
