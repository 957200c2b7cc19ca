package etcd

import (
	"testing"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/stretchr/testify/assert"
)

func TestUpgradePathIsNewerEachStep(t *testing.T) {
	assert.True(t, newerRelease("v3.6.16", "v3.5.35"))
	assert.True(t, newerRelease("v3.7.3", "v3.7.0"))
	assert.True(t, newerRelease("v3.10.0", "v3.9.9"), "numbers, not strings")
	assert.False(t, newerRelease("v3.6.16", "v3.6.16"))
	assert.False(t, newerRelease("v3.5.35", "v3.6.0"))
}

// --etcd-failpoints alone means the default points the binary has; named points must
// all be the binary's, or the error lists those it has; terms need a failpoint build.
func TestFailpointOptions(t *testing.T) {
	var v failpointsValue
	for in, want := range map[string]string{"true": "all", "all": "all", "false": "", "raftBeforeSave,defragBeforeCopy": "raftBeforeSave,defragBeforeCopy"} {
		assert.NoError(t, v.Set(in))
		assert.Equal(t, want, string(v), in)
	}
	assert.True(t, v.IsBoolFlag())

	have := []string{"afterCommit", "defragBeforeCopy", "raftBeforeSave", "someOtherPoint"}
	fps, err := resolveFailpoints("all", "v3.5.4", have)
	assert.NoError(t, err)
	var names []string
	for _, fp := range fps {
		names = append(names, fp.Name)
	}
	assert.Equal(t, []string{"raftBeforeSave", "afterCommit", "defragBeforeCopy"}, names, "the defaults it has, in the defaults' order")
	assert.Equal(t, nemesis.TriggerDefrag, fps[2].Trigger)

	fps, err = resolveFailpoints("someOtherPoint, defragBeforeCopy", "v3.5.4", have)
	assert.NoError(t, err)
	assert.Equal(t, []nemesis.Failpoint{{Name: "someOtherPoint"}, {Name: "defragBeforeCopy", Trigger: nemesis.TriggerDefrag}}, fps)

	_, err = resolveFailpoints("raftBeforeSave,nope", "v3.5.4", have)
	var u *results.UsageError
	assert.ErrorAs(t, err, &u)
	assert.ErrorContains(t, err, `"nope" is no failpoint of etcd v3.5.4; it has: afterCommit, defragBeforeCopy, raftBeforeSave, someOtherPoint`)
	_, err = resolveFailpoints("all", "v3.5.4", []string{"x"})
	assert.ErrorContains(t, err, "has none of the failpoints a run reaches")

	o := &Options{Version: "v3.7.3", FailpointTerms: "raftBeforeLeaderSend=sleep(10)"}
	assert.ErrorContains(t, o.Resolve(sut.Common{Nodes: 1}), "needs --etcd-failpoints")
	o = &Options{Version: "v3.7.3", Failpoints: "raftBeforeSave", FailpointTerms: "a=sleep(1)"}
	assert.NoError(t, o.Resolve(sut.Common{Nodes: 1}))
	assert.Equal(t, []string{"--etcd-version", "v3.7.3", "--etcd-failpoint-terms", "a=sleep(1)", "--etcd-failpoints=raftBeforeSave"}, o.Args())
	ok, why := o.Caps().Has(nemesis.CapFailpoints)
	assert.True(t, ok, why)
	ok, why = (&Options{Version: "v3.7.3"}).Caps().Has(nemesis.CapFailpoints)
	assert.False(t, ok)
	assert.Contains(t, why, "--etcd-failpoints")
}
