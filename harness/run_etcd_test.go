package harness

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness/runtime/vclock"
	"github.com/faultline/faultline/harness/sut/etcd"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/results"
)

// Whole runs against real etcd: the newest 3.7 (built once from the module proxy and
// cached), and Debian's 3.4.23 when it is installed.

func etcdSpec(t *testing.T, runtime string, args ...string) Spec {
	t.Helper()
	etcdBinary(t) // builds (once) before the run's clock starts, and skips in -short mode
	return e2eSpec(t, runtime, append([]string{"--target", "etcd"}, args...)...)
}

func TestRunEtcdIsValidUnderFaults(t *testing.T) {
	t.Parallel()
	needNetns(t)
	spec := etcdSpec(t, "process", "--nemesis", "partition,kill,pause,packet", "--seed", "3")
	o, out := runE2E(t, context.Background(), spec)
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	fs := nemesisFs(readEvents(t, o.Dir))
	assert.True(t, fs["start-partition"] && fs["kill"] && fs["pause"] && fs["start-packet"], "every kind was injected: %v", fs)
	info, ok, err := results.ReadTestInfo(o.Dir)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, etcd.DefaultVersion, info.Target.Version, "test.json records the etcd version")
	assert.FileExists(t, filepath.Join(o.Dir, "nodes", "n1", "etcd.log"))
	assert.Contains(t, out, "etcd on process")
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestRunEtcdSerializableReadsAreCaught(t *testing.T) {
	t.Parallel()
	needNetns(t)
	var o Outcome
	for _, seed := range []string{"41", "42", "43"} {
		spec := etcdSpec(t, "process", "--etcd-serializable-reads", "--nemesis", "partition", "--seed", seed)
		if o, _ = runE2E(t, context.Background(), spec); o.ExitCode() == results.ExitInvalid {
			break
		}
	}
	require.Equal(t, results.ExitInvalid, o.ExitCode(), "serializable reads under partitions were not caught in 3 runs")
	assert.FileExists(t, filepath.Join(o.Dir, "linearizability.html"))
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestRunEtcdOnDocker(t *testing.T) {
	t.Parallel()
	spec := etcdSpec(t, "docker", "--nemesis", "partition,kill,pause", "--seed", "4")
	o, out := runE2E(t, context.Background(), spec)
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	assert.Contains(t, out, "etcd on docker")
	assert.Empty(t, leftovers(t, o.Dir))
}

func TestRunDebianEtcd(t *testing.T) {
	t.Parallel()
	needNetns(t)
	const bin = "/usr/bin/etcd"
	if _, err := os.Stat(bin); err != nil {
		t.Skip("needs Debian's etcd-server (CI installs it): " + err.Error())
	}
	spec := e2eSpec(t, "process", "--target", "etcd", "--etcd-binary", bin, "--nemesis", "partition,kill,packet", "--seed", "5")
	o, _ := runE2E(t, context.Background(), spec)
	require.NoError(t, o.Err)
	assert.Equal(t, checker.Valid, o.Verdict)
	assert.Empty(t, leftovers(t, o.Dir))
}

func readEvents(t *testing.T, dir string) []history.Event {
	t.Helper()
	events, _, err := history.ReadFile(filepath.Join(dir, "history.jsonl"))
	require.NoError(t, err)
	return events
}

// The lease workload on etcd: valid under partitions and kills (leases end no earlier
// than their TTL, whoever leads); under clock faults through the per-process clocks, a
// leader whose clock runs fast or jumps ends leases early, and the run says which clock
// fault it was.
//
// Not under pauses: etcd v3.7.3 is not valid there, and this test found it (once in ten
// runs of this package). A leader paused past an election, once resumed, answered a
// keepalive for a lease granted through the new leader meanwhile with "not found",
// 4.6 s into the lease's guaranteed life. Its raft ticks are fresh within a tick of the
// resume, so LeaseRenew's ensureLeadership skips its leadership check (isActive), and
// its lessor, not yet demoted, does not know the lease.
func TestRunEtcdLeases(t *testing.T) {
	t.Parallel()
	needNetns(t)
	t.Run("valid under partitions and kills", func(t *testing.T) {
		t.Parallel()
		o, out := runE2E(t, context.Background(), etcdSpec(t, "process", "--workload", "lease", "--nemesis", "partition,kill", "--seed", "6"))
		require.NoError(t, o.Err)
		assert.Equal(t, checker.Valid, o.Verdict)
		assert.Regexp(t, `lease: valid — \d+ leases, \d+ keys attached, [1-9]\d* reads within a lease's guaranteed life`, out)
		assert.Empty(t, leftovers(t, o.Dir))
	})
	t.Run("early ends under clock faults are caught and explained", func(t *testing.T) {
		t.Parallel()
		if err := vclock.Supported(); err != nil {
			t.Skip("no per-process clocks here: " + err.Error())
		}
		o, out := caughtWithin(t, "leases under clock faults", "--workload", "lease", "--nemesis", "clock")
		assert.Contains(t, out, "the clock of n")
		assert.Contains(t, out, "was faulted: lease-based systems assume clocks that keep real time's rate")
		assert.Empty(t, leftovers(t, o.Dir))
	})
}

// The txn workload on etcd: its multi-key transactions (read, then a write guarded on
// every key's mod revision) are strict serializable under partitions, kills and pauses;
// serializable reads under partitions are caught with a named anomaly.
func TestRunEtcdTransactions(t *testing.T) {
	t.Parallel()
	needNetns(t)
	t.Run("valid under partitions, kills and pauses", func(t *testing.T) {
		t.Parallel()
		o, out := runE2E(t, context.Background(), etcdSpec(t, "process", "--workload", "txn", "--nemesis", "partition,kill,pause", "--seed", "4"))
		require.NoError(t, o.Err)
		assert.Equal(t, checker.Valid, o.Verdict)
		assert.Regexp(t, `txn: valid — [1-9]\d* committed txns`, out)
		assert.Empty(t, leftovers(t, o.Dir))
	})
	t.Run("serializable reads caught with a named anomaly", func(t *testing.T) {
		t.Parallel()
		o, out := caughtWithin(t, "serializable reads", "--workload", "txn", "--etcd-serializable-reads", "--nemesis", "partition")
		assert.Regexp(t, `G-single-realtime|G1c-realtime|G2-item-realtime|G-single|G2-item`, out)
		assert.Empty(t, leftovers(t, o.Dir))
	})
}

// caughtWithin runs etcd on processes with args under seeds 21, 22, 23 until a run is
// invalid, and returns it; the test fails if none is.
func caughtWithin(t *testing.T, what string, args ...string) (Outcome, string) {
	t.Helper()
	var o Outcome
	var out string
	for _, seed := range []string{"21", "22", "23"} {
		if o, out = runE2E(t, context.Background(), etcdSpec(t, "process", append(args, "--seed", seed)...)); o.ExitCode() == results.ExitInvalid {
			return o, out
		}
		t.Logf("%s, seed %s: %s: not caught this time", what, seed, o.Verdict)
	}
	require.Equal(t, results.ExitInvalid, o.ExitCode(), "%s were not caught in 3 runs", what)
	return o, out
}
