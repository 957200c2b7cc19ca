package linkproxy_test

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/linkproxy"
)

func TestPassThroughRelaysAnswer(t *testing.T) {
	f := newFixture(t, 1, nil)

	a, err := f.post(nodeAddrs["a"], "b", "/echo", "hello")
	require.NoError(t, err)
	assert.Equal(t, http.StatusOK, a.status)
	assert.Equal(t, "echo:hello", a.body)
	assert.Equal(t, "yes", a.header.Get("X-Echo"))

	a, err = f.post(nodeAddrs["a"], "b", "/raft", "m1")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, a.status)

	a, err = f.post(nodeAddrs["a"], "b", "/other", "m2")
	require.NoError(t, err)
	assert.Equal(t, http.StatusTeapot, a.status, "a non-2xx status is relayed as is")

	got := f.dst["b"].arrivals()
	require.Len(t, got, 3)
	for _, ar := range got {
		assert.Equal(t, nodeAddrs["a"], ar.from, "the forward was not dialled as the sender")
	}
	assert.Positive(t, f.dialsFor("a"))
	assert.Equal(t, linkproxy.Stats{Forwarded: 2, Failed: 1}, f.p.Stats()[linkproxy.Link{From: "a", To: "b"}])
	assert.Empty(t, f.dst["a"].arrivals())
	assert.Empty(t, f.dst["c"].arrivals())
}

func TestPassThroughUnreachableIsAnError(t *testing.T) {
	// A port that nothing listens on: connection refused.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := l.Addr().String()
	require.NoError(t, l.Close())
	f := newFixture(t, 1, map[string]string{"b": closed})

	a, err := f.post(nodeAddrs["a"], "b", "/raft", "m")
	require.NoError(t, err)
	assert.Equal(t, http.StatusBadGateway, a.status, "the sender must see its POST fail: %s", a.body)
	assert.Equal(t, linkproxy.Stats{Failed: 1}, f.p.Stats()[linkproxy.Link{From: "a", To: "b"}])

	// On a faulty link the sender is answered at once and the failure is only counted.
	require.NoError(t, f.p.Set([]linkproxy.Link{{From: "a", To: "b"}}, linkproxy.Faults{Delay: time.Millisecond}))
	f.send("a", "b", 1)
	st := f.settled(linkproxy.Link{From: "a", To: "b"}, 2)
	assert.Equal(t, uint64(2), st.Failed)
	assert.Zero(t, st.Forwarded)
}

func TestUnrecognisedSender(t *testing.T) {
	f := newFixture(t, 1, nil)
	stranger := linkproxy.Link{From: "", To: "c"}

	a, err := f.post(strangerAddr, "c", "/raft", "m")
	require.NoError(t, err)
	assert.Equal(t, http.StatusNoContent, a.status)
	require.Equal(t, []string{"m"}, f.dst["c"].bodies())
	assert.Positive(t, f.dialsFor(""), "the proxy must dial on behalf of \"\"")
	assert.Equal(t, linkproxy.Stats{Forwarded: 1}, f.p.Stats()[stranger])

	require.NoError(t, f.p.Set([]linkproxy.Link{stranger}, linkproxy.Faults{Loss: 1}))
	_, err = f.post(strangerAddr, "c", "/raft", "lost")
	require.NoError(t, err)
	_, err = f.post(nodeAddrs["a"], "c", "/raft", "from a")
	require.NoError(t, err)
	assert.Equal(t, []string{"m", "from a"}, f.dst["c"].bodies())
	assert.Equal(t, uint64(1), f.p.Stats()[stranger].Dropped)
}

func TestSetRejects(t *testing.T) {
	f := newFixture(t, 1, nil)
	ab := []linkproxy.Link{{From: "a", To: "b"}}
	for name, tc := range map[string]struct {
		links  []linkproxy.Link
		faults linkproxy.Faults
	}{
		"negative delay":        {ab, linkproxy.Faults{Delay: -time.Millisecond}},
		"negative jitter":       {ab, linkproxy.Faults{Jitter: -time.Millisecond}},
		"negative reorder-by":   {ab, linkproxy.Faults{ReorderBy: -time.Millisecond}},
		"delay above an hour":   {ab, linkproxy.Faults{Delay: 2 * time.Hour}},
		"loss below 0":          {ab, linkproxy.Faults{Loss: -0.1}},
		"loss above 1":          {ab, linkproxy.Faults{Loss: 1.1}},
		"loss NaN":              {ab, linkproxy.Faults{Loss: nan()}},
		"duplicate above 1":     {ab, linkproxy.Faults{Duplicate: 2}},
		"reorder below 0":       {ab, linkproxy.Faults{Reorder: -1, ReorderBy: time.Second}},
		"reorder with no by":    {ab, linkproxy.Faults{Reorder: 0.5}},
		"unknown destination":   {[]linkproxy.Link{{From: "a", To: "z"}}, linkproxy.Faults{Loss: 1}},
		"unknown sender":        {[]linkproxy.Link{{From: "z", To: "a"}}, linkproxy.Faults{Loss: 1}},
		"no destination at all": {[]linkproxy.Link{{From: "a"}}, linkproxy.Faults{Loss: 1}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Error(t, f.p.Set(tc.links, tc.faults))
		})
	}
	// A rejected Set changed nothing: a->b is still transparent.
	a, err := f.post(nodeAddrs["a"], "b", "/echo", "x")
	require.NoError(t, err)
	assert.Equal(t, "echo:x", a.body)

	assert.NoError(t, f.p.Set(ab, linkproxy.Faults{Loss: 1, Duplicate: 0, Reorder: 1, ReorderBy: time.Hour}))
}

func nan() float64 { var z float64; return z / z }

func TestStartRejectsAndLeavesNothingOpen(t *testing.T) {
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	any0 := netip.MustParseAddrPort("127.0.0.1:0")
	ep := func(addr string) linkproxy.Endpoint {
		return linkproxy.Endpoint{Listen: any0, Target: "127.0.0.1:1", Addr: netip.MustParseAddr(addr)}
	}
	for name, cfg := range map[string]linkproxy.Config{
		"no dial":        {Nodes: map[string]linkproxy.Endpoint{"a": ep("127.0.0.11")}},
		"no nodes":       {Dial: dial},
		"empty name":     {Dial: dial, Nodes: map[string]linkproxy.Endpoint{"": ep("127.0.0.11")}},
		"shared address": {Dial: dial, Nodes: map[string]linkproxy.Endpoint{"a": ep("127.0.0.11"), "b": ep("127.0.0.11")}},
		"no address":     {Dial: dial, Nodes: map[string]linkproxy.Endpoint{"a": {Listen: any0, Target: "127.0.0.1:1"}}},
		"bad target":     {Dial: dial, Nodes: map[string]linkproxy.Endpoint{"a": {Listen: any0, Target: "nope", Addr: nodeAddrs["a"]}}},
		"no listen":      {Dial: dial, Nodes: map[string]linkproxy.Endpoint{"a": {Target: "127.0.0.1:1", Addr: nodeAddrs["a"]}}},
	} {
		t.Run(name, func(t *testing.T) {
			p, err := linkproxy.Start(context.Background(), cfg)
			assert.Error(t, err)
			assert.Nil(t, p)
		})
	}

	t.Run("listen fails half way", func(t *testing.T) {
		// a listens on a port known to be free, b on one that is taken: Start must fail
		// and give a's port back.
		free, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		freeAddr := netip.MustParseAddrPort(free.Addr().String())
		require.NoError(t, free.Close())
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer taken.Close()

		base := runtime.NumGoroutine()
		a, b := ep("127.0.0.11"), ep("127.0.0.12")
		a.Listen, b.Listen = freeAddr, netip.MustParseAddrPort(taken.Addr().String())
		_, err = linkproxy.Start(context.Background(), linkproxy.Config{Dial: dial, Nodes: map[string]linkproxy.Endpoint{"a": a, "b": b}})
		require.Error(t, err)
		again, err := net.Listen("tcp", freeAddr.String())
		require.NoError(t, err, "Start left a's listener open")
		require.NoError(t, again.Close())
		noLeaks(t, base)
	})
}

func TestCloseIsIdempotentAndLeavesNothing(t *testing.T) {
	base := runtime.NumGoroutine()
	func() {
		f := newFixture(t, 1, nil)
		ab := linkproxy.Link{From: "a", To: "b"}
		// Traffic on every path: transparent, delivered after a delay, and still held at
		// Close (a long delay).
		f.send("a", "c", 3)
		require.NoError(t, f.p.Set([]linkproxy.Link{{From: "b", To: "c"}}, linkproxy.Faults{Delay: 10 * time.Millisecond}))
		f.send("b", "c", 3)
		f.settled(linkproxy.Link{From: "b", To: "c"}, 3)
		require.NoError(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{Delay: time.Minute}))
		f.send("a", "b", 5)

		start := time.Now()
		require.NoError(t, f.p.Close())
		assert.Less(t, time.Since(start), time.Second, "Close waited for held messages")
		require.NoError(t, f.p.Close(), "a second Close")
		assert.Equal(t, uint64(5), f.p.Stats()[ab].Dropped, "held messages are dropped at Close")
		assert.Empty(t, f.dst["b"].arrivals())

		_, err := f.post(nodeAddrs["a"], "b", "/raft", "after close")
		assert.Error(t, err, "the listener is still open")
		assert.Error(t, f.p.Set([]linkproxy.Link{ab}, linkproxy.Faults{}), "Set after Close")
		for _, c := range f.clients {
			c.CloseIdleConnections()
		}
		for _, d := range f.dst {
			d.srv.Close()
		}
	}()
	noLeaks(t, base)
}
