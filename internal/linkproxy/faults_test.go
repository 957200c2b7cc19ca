package linkproxy_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/linkproxy"
)

var ab = linkproxy.Link{From: "a", To: "b"}

func TestDelay(t *testing.T) {
	const delay = 200 * time.Millisecond
	f := newFixture(t, 1, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Delay: delay}))

	var answered []time.Duration
	sent := map[string]time.Time{}
	for i := range 10 {
		body := string(rune('0' + i))
		sent[body] = time.Now()
		a, err := f.post(nodeAddrs["a"], "b", "/raft", body)
		require.NoError(t, err)
		require.Equal(t, http.StatusNoContent, a.status)
		answered = append(answered, a.took)
	}
	st := f.settled(ab, 10)
	assert.Equal(t, linkproxy.Stats{Forwarded: 10, Delayed: 10}, st)

	for _, took := range answered {
		assert.Less(t, took, delay/2, "the sender waited for the delay")
	}
	got := f.dst["b"].arrivals()
	require.Len(t, got, 10)
	for _, ar := range got {
		lat := ar.at.Sub(sent[ar.body])
		assert.GreaterOrEqual(t, lat, delay, "message %q arrived early", ar.body)
		assert.Less(t, lat, delay+300*time.Millisecond, "message %q arrived late", ar.body)
		assert.Equal(t, nodeAddrs["a"], ar.from, "the delayed forward was not dialled as the sender")
	}
	// Messages sent one after another with no jitter keep their order on the wire.
	assert.Equal(t, []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}, f.dst["b"].bodies())
}

func TestJitterStaysInBand(t *testing.T) {
	f := newFixture(t, 7, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Delay: 60 * time.Millisecond, Jitter: 40 * time.Millisecond}))
	_, sent := f.send("a", "b", 40)
	f.settled(ab, 40)
	var lats []time.Duration
	for _, ar := range f.dst["b"].arrivals() {
		lat := ar.at.Sub(sent[ar.body])
		assert.GreaterOrEqual(t, lat, 20*time.Millisecond, "%q", ar.body)
		lats = append(lats, lat)
	}
	require.Len(t, lats, 40)
	assert.Less(t, slices.Min(lats), 50*time.Millisecond, "jitter never took a message below the delay")
	assert.Greater(t, slices.Max(lats), 70*time.Millisecond, "jitter never took a message above the delay")
}

func TestLoss(t *testing.T) {
	for _, tc := range []struct {
		name     string
		loss     float64
		n        int
		min, max int // dropped
	}{
		{"none", 0.0001, 100, 0, 2},
		{"all", 1, 100, 100, 100},
		{"half", 0.5, 400, 140, 260},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 42, nil)
			require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Loss: tc.loss}))
			f.send("a", "b", tc.n)
			st := f.settled(ab, uint64(tc.n))
			assert.GreaterOrEqual(t, int(st.Dropped), tc.min)
			assert.LessOrEqual(t, int(st.Dropped), tc.max)
			assert.Equal(t, tc.n, int(st.Dropped+st.Forwarded))
			assert.Len(t, f.dst["b"].arrivals(), int(st.Forwarded))
			assert.Zero(t, st.Failed)
		})
	}
}

func TestDuplicate(t *testing.T) {
	f := newFixture(t, 1, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Duplicate: 1}))
	bodies, _ := f.send("a", "b", 20)
	st := f.settled(ab, 40)
	assert.Equal(t, linkproxy.Stats{Forwarded: 40, Duplicated: 20}, st)

	count := map[string]int{}
	for _, b := range f.dst["b"].bodies() {
		count[b]++
	}
	for _, b := range bodies {
		assert.Equal(t, 2, count[b], "message %q", b)
	}
	assert.Len(t, count, 20)
}

func TestReorder(t *testing.T) {
	f := newFixture(t, 3, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Reorder: 0.3, ReorderBy: 50 * time.Millisecond}))
	bodies, _ := f.send("a", "b", 50)
	st := f.settled(ab, 50)
	assert.Equal(t, uint64(50), st.Forwarded)
	assert.Positive(t, st.Reordered)
	assert.Equal(t, st.Reordered, st.Delayed, "only the reordered ones waited")

	got := f.dst["b"].bodies()
	assert.NotEqual(t, bodies, got, "arrival order is send order")
	assert.ElementsMatch(t, bodies, got, "each message arrives once")
}

func TestFaultsArePerDirectedLink(t *testing.T) {
	f := newFixture(t, 1, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Loss: 1}))

	f.send("a", "b", 5)
	ba, _ := f.send("b", "a", 5)
	ac, _ := f.send("a", "c", 5)
	cb, _ := f.send("c", "b", 5)

	assert.Equal(t, uint64(5), f.p.Stats()[ab].Dropped)
	assert.Equal(t, ba, f.dst["a"].bodies(), "b->a was touched")
	assert.Equal(t, ac, f.dst["c"].bodies(), "a->c was touched")
	assert.Equal(t, cb, f.dst["b"].bodies(), "c->b was touched")
	for _, l := range []linkproxy.Link{{From: "b", To: "a"}, {From: "a", To: "c"}, {From: "c", To: "b"}} {
		assert.Equal(t, linkproxy.Stats{Forwarded: 5}, f.p.Stats()[l], "%v", l)
	}
}

func TestClearRestoresPassThroughAndDeliversHeld(t *testing.T) {
	const delay = 300 * time.Millisecond
	f := newFixture(t, 1, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Delay: delay}))

	// On a faulty link even /echo is answered 204 at once, with nothing.
	sentHeld := time.Now()
	a, err := f.post(nodeAddrs["a"], "b", "/echo", "held")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, a.status)
	assert.Empty(t, a.body)

	f.p.Clear()
	a, err = f.post(nodeAddrs["a"], "b", "/echo", "after clear")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, "echo:after clear", a.body, "Clear did not restore pass-through")

	// The message held before Clear is still delivered, on its schedule, after the one
	// that overtook it.
	st := f.settled(ab, 2)
	assert.Equal(t, linkproxy.Stats{Forwarded: 2, Delayed: 1}, st)
	got := f.dst["b"].arrivals()
	require.Len(t, got, 2)
	assert.Equal(t, "after clear", got[0].body)
	assert.Equal(t, "held", got[1].body)
	assert.GreaterOrEqual(t, got[1].at.Sub(sentHeld), delay)
}

func TestInFlightBound(t *testing.T) {
	f := newFixture(t, 1, nil)
	require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Delay: time.Minute}))
	const n = 1100 // above the bound of 1024 held messages per link
	f.send("a", "b", n)
	st := f.p.Stats()[ab]
	assert.Equal(t, uint64(n-1024), st.Dropped)
	assert.Equal(t, uint64(1024), st.Delayed)
	assert.Empty(t, f.dst["b"].arrivals())
}
