package checker

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/history"
)

// leaseHistory builds a lease workload's history from operations, each an invoke and
// its completion; times in milliseconds.
type leaseHistory struct{ events []history.Event }

func (h *leaseHistory) add(e history.Event) {
	e.Index = int64(len(h.events))
	h.events = append(h.events, e)
}

// op records process p's f on key from `from` to `to` ms: invoked with in, completed as
// typ with out (and errMsg).
func (h *leaseHistory) op(p int, f, key string, from, to int, in history.Value, typ history.Type, out history.Value, errMsg string) {
	h.add(history.Event{Time: int64(from) * 1e6, Process: p, Type: history.Invoke, F: f, Key: key, Value: in, Node: "n1"})
	h.add(history.Event{Time: int64(to) * 1e6, Process: p, Type: typ, F: f, Key: key, Value: out, Node: "n1", Error: errMsg})
}

func (h *leaseHistory) nemesis(at int, typ history.Type, f, node string, v history.Value) {
	h.add(history.Event{Time: int64(at) * 1e6, Process: history.NemesisProcess, Type: typ, F: f, Node: node, Value: v})
}

// base is a lease a (TTL 5 s) granted at 0, its key l0 put by 30 ms, read at 1 s, and
// renewed by a keepalive invoked at 3 s: guaranteed alive until 3 s + 5 s·(1−LeaseDrift)
// = 7.95 s.
func base() *leaseHistory {
	h := &leaseHistory{}
	h.op(0, history.OpGrant, "l0", 0, 10, history.S1("5"), history.OK, history.L("a", "5"), "")
	h.op(0, history.OpPut, "l0", 20, 30, history.L("1", "a"), history.OK, history.L("1", "a"), "")
	h.op(1, history.OpRead, "l0", 1000, 1010, history.Value{}, history.OK, history.S1("1"), "")
	h.op(2, history.OpKeepAlive, "l0", 3000, 3010, history.S1("a"), history.OK, history.L("a", "5"), "")
	return h
}

func (h *leaseHistory) read(p, from, to int, v history.Value) {
	h.op(p, history.OpRead, "l0", from, to, history.Value{}, history.OK, v, "")
}

func checkLeases(t *testing.T, h *leaseHistory) Result {
	t.Helper()
	res := Check(context.Background(), h.events, Options{Model: Lease})
	require.NotNil(t, res.Lease, res.Summary())
	assert.Empty(t, res.Notes)
	return res
}

func TestLeaseCheck(t *testing.T) {
	absent := history.Value{}
	t.Run("a lease that expires after its guaranteed life is valid", func(t *testing.T) {
		h := base()
		h.read(3, 7000, 7010, history.S1("1"))
		h.read(3, 7950, 7960, absent) // 10 ms into the 1% drift allowed: may be gone
		res := checkLeases(t, h)
		assert.Equal(t, Valid, res.Verdict, res.Summary())
		assert.Equal(t, 2, res.Lease.Guarded, "the reads at 1 s and 7 s")
		assert.Equal(t, 1, res.Lease.Expired)
		assert.Equal(t, 1, res.Lease.Leases)
		assert.Equal(t, 1, res.Lease.Attached)
	})
	t.Run("a key deleted before its lease's TTL is caught, with the faults and leader of the time", func(t *testing.T) {
		h := base()
		h.nemesis(500, history.Info, history.LeaderChange, "n2", history.Value{})
		h.nemesis(5500, history.Invoke, "clock-bump", "", history.S1("leader"))
		h.nemesis(5510, history.OK, "clock-bump", "n2", history.S1("+1m0s"))
		h.read(3, 7890, 7900, absent)
		h.nemesis(8000, history.Invoke, "clock-reset", "n2", history.Value{})
		h.nemesis(8010, history.OK, "clock-reset", "n2", history.Value{})
		res := checkLeases(t, h)
		require.Equal(t, Invalid, res.Verdict, res.Summary())
		assert.Equal(t, 1, res.Lease.Early)
		assert.Equal(t, 1, res.Lease.EarlyClocked)
		assert.InDelta(t, 50, res.Lease.EarliestMS, 0.01)
		require.Len(t, res.Explanations(), 1)
		x := res.Explanations()[0]
		for _, want := range []string{`key "l0" deleted early`, "read by process 3 at 7.890s–7.900s", "the keepalive invoked at 3.000s (TTL 5s)",
			"guaranteed alive until 7.950s — 50ms before that", `clock-bump "+1m0s" on n2 (5.500s–8.010s)`, "Leader meanwhile: n2.",
			"the clock of n2 was faulted: lease-based systems assume clocks that keep real time's rate"} {
			assert.Contains(t, x, want)
		}
	})
	t.Run("a revoke invoked first excuses the absence, even in doubt", func(t *testing.T) {
		h := base()
		h.op(4, history.OpRevoke, "l0", 5000, 7000, history.S1("a"), history.Info, history.S1("a"), "timeout")
		h.read(3, 6000, 6010, absent)
		assert.Equal(t, Valid, checkLeases(t, h).Verdict)
	})
	t.Run("a key read after its lease's revoke was acknowledged is caught", func(t *testing.T) {
		h := base()
		h.op(4, history.OpRevoke, "l0", 4000, 4010, history.S1("a"), history.OK, history.S1("a"), "")
		h.read(3, 4100, 4110, history.S1("1"))
		res := checkLeases(t, h)
		assert.Equal(t, Invalid, res.Verdict)
		assert.Equal(t, 1, res.Lease.Revived)
		assert.Contains(t, res.Explanations()[0], "although the revoke of its lease a was acknowledged at 4.010s")
	})
	t.Run("a keepalive told the lease is gone before its time is caught", func(t *testing.T) {
		h := base()
		h.nemesis(500, history.Info, history.LeaderChange, "n2", history.Value{})
		h.op(5, history.OpKeepAlive, "l0", 4000, 4010, history.S1("a"), history.Fail, history.S1("a"), history.LeaseNotFound)
		res := checkLeases(t, h)
		assert.Equal(t, Invalid, res.Verdict)
		assert.Contains(t, res.Explanations()[0], "lease a ended early: keepalive by process 5 at 4.000s–4.010s on n1 was told it was not found")
		assert.Contains(t, res.Explanations()[0], "No clock fault touched the leader: clocks do not explain this.")
		assert.Equal(t, 1, res.Lease.Early)
		assert.Zero(t, res.Lease.EarlyClocked)
	})
	t.Run("a lease gone after its time is valid", func(t *testing.T) {
		h := base()
		h.op(5, history.OpKeepAlive, "l0", 8000, 8010, history.S1("a"), history.Fail, history.S1("a"), history.LeaseNotFound)
		assert.Equal(t, Valid, checkLeases(t, h).Verdict)
	})
	t.Run("a value no put wrote is caught", func(t *testing.T) {
		h := base()
		h.read(3, 2000, 2010, history.S1("9"))
		res := checkLeases(t, h)
		assert.Equal(t, Invalid, res.Verdict)
		assert.Equal(t, 1, res.Lease.Unexpected)
	})
	t.Run("a read that began before the put was known done proves nothing", func(t *testing.T) {
		h := &leaseHistory{}
		h.op(0, history.OpGrant, "l0", 0, 10, history.S1("5"), history.OK, history.L("a", "5"), "")
		h.op(0, history.OpPut, "l0", 20, 300, history.L("1", "a"), history.OK, history.L("1", "a"), "")
		h.read(1, 25, 35, absent)
		h.read(1, 400, 410, history.S1("1"))
		res := checkLeases(t, h)
		assert.Equal(t, Valid, res.Verdict, res.Summary())
		assert.Equal(t, 1, res.Lease.Guarded)
	})
	t.Run("without a read inside a lease's life, unknown", func(t *testing.T) {
		h := &leaseHistory{}
		h.op(0, history.OpGrant, "l0", 0, 10, history.S1("5"), history.OK, history.L("a", "5"), "")
		h.op(0, history.OpPut, "l0", 20, 30, history.L("1", "a"), history.OK, history.L("1", "a"), "")
		h.read(1, 9000, 9010, absent)
		res := checkLeases(t, h)
		assert.Equal(t, Unknown, res.Verdict)
		require.NotEmpty(t, res.UnknownBecause)
		assert.Equal(t, ReasonNoEvidence, res.UnknownBecause[0].Code)
		assert.Contains(t, res.Why(), "guaranteed life")
	})
	t.Run("a history without times is unknown", func(t *testing.T) {
		h := base()
		for i := range h.events {
			h.events[i].Time = h.events[i].Index
		}
		res := Check(context.Background(), h.events, Options{Model: Lease})
		assert.Equal(t, Unknown, res.Verdict)
		assert.Contains(t, res.Why(), "no times")
	})
	t.Run("operations of another shape are never valid", func(t *testing.T) {
		h := base()
		h.op(6, history.OpPut, "l0", 100, 110, history.S1("x"), history.OK, history.S1("x"), "")
		res := Check(context.Background(), h.events, Options{Model: Lease})
		assert.Equal(t, Unknown, res.Verdict)
		assert.Equal(t, 1, res.Lease.Ignored)
	})
	t.Run("the model is guessed from the grants", func(t *testing.T) {
		res := Check(context.Background(), base().events, Options{})
		assert.Equal(t, Lease, res.Model)
	})
}
