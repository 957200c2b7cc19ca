package netfilter_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/internal/netfilter"
	"github.com/faultline/faultline/internal/netns"
)

// The tests build a real network of namespaces (internal/netns) and prove each fault takes
// effect on real connections, and heals.

type cluster struct {
	t   *testing.T
	net *netns.Network
	srv map[string]string // node -> its echo server's address
}

func newCluster(t *testing.T, tag string) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces (root): skipped in -short mode")
	}
	if ok, why := netns.Available(); !ok {
		t.Skip("needs network namespaces (root, ip, nsenter): " + why)
	}
	if ok, why := netfilter.Available(); !ok {
		t.Skip("needs nftables in namespaces (root, nsenter, nft): " + why)
	}
	runID := fmt.Sprintf("%s%05d", tag, os.Getpid()%100000)
	n, err := netns.Create(context.Background(), runID, []string{"a", "b", "c"})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, n.Close(context.Background())) })
	c := &cluster{t: t, net: n, srv: map[string]string{}}
	for _, node := range n.Nodes() {
		c.srv[node] = c.echoServer(node)
	}
	// Each test starts from a network that carries traffic between every pair: on a busy
	// machine a fresh network's first connection has taken longer than the 1 s a dial gets
	// here (a lost SYN is resent after 1 s), which is no fault of a filter.
	for _, from := range n.Nodes() {
		for _, to := range n.Nodes() {
			if from == to {
				continue
			}
			deadline := time.Now().Add(15 * time.Second)
			for err := c.reach(from, to); err != nil; err = c.reach(from, to) {
				require.True(t, time.Now().Before(deadline), "%s cannot reach %s before any filter: %v", from, to, err)
			}
		}
	}
	return c
}

// echoServer listens in the node's namespace and echoes whatever each connection sends.
func (c *cluster) echoServer(node string) string {
	var l net.Listener
	require.NoError(c.t, netns.Do(c.net.NSPath(node), func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(c.net.Addr(node), 0).String())
		return err
	}))
	c.t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(conn, conn); conn.Close() }()
		}
	}()
	return l.Addr().String()
}

// dial connects from one node's namespace to another node's echo server.
func (c *cluster) dial(from, to string) (net.Conn, error) {
	var conn net.Conn
	err := netns.Do(c.net.NSPath(from), func() (err error) {
		conn, err = net.DialTimeout("tcp", c.srv[to], time.Second)
		return err
	})
	if err == nil {
		c.t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

// reach says whether a fresh connection from one node to another carries data.
func (c *cluster) reach(from, to string) error {
	conn, err := c.dial(from, to)
	if err != nil {
		return err
	}
	defer conn.Close()
	return echo(conn, time.Second)
}

// echo sends a line over conn and waits for it to come back.
func echo(conn net.Conn, within time.Duration) error {
	_ = conn.SetDeadline(time.Now().Add(within))
	msg := []byte("ping\n")
	if _, err := conn.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(conn, make([]byte, len(msg)))
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func TestPartition(t *testing.T) {
	c := newCluster(t, "np")
	ctx := context.Background()
	a, b := c.net.Addr("a"), c.net.NSPath("b")
	established, err := c.dial("a", "b")
	require.NoError(t, err)
	require.NoError(t, echo(established, time.Second), "before the partition")

	// b drops a, both ways.
	require.NoError(t, netfilter.Apply(ctx, b, []netip.Addr{a}))
	err = c.reach("a", "b")
	assert.True(t, isTimeout(err), "a new connection from a to b times out, got %v", err)
	err = echo(established, 1500*time.Millisecond)
	assert.True(t, isTimeout(err), "an established connection stalls, got %v", err)
	err = c.reach("b", "a")
	assert.Error(t, err, "b to a fails too")
	t.Logf("b to a, from the side that drops: %v", err)
	assert.NoError(t, c.reach("a", "c"), "a and c are not partitioned")
	assert.NoError(t, c.reach("c", "b"), "c and b are not partitioned")
	rules, err := netfilter.Rules(ctx, b)
	require.NoError(t, err)
	assert.Contains(t, rules, "ip saddr "+a.String())
	assert.Contains(t, rules, "ip daddr "+a.String())

	// Applying again replaces: now b drops c only.
	require.NoError(t, netfilter.Apply(ctx, b, []netip.Addr{c.net.Addr("c")}))
	assert.NoError(t, c.reach("a", "b"), "a's partition was replaced")
	assert.Error(t, c.reach("c", "b"), "c is cut off instead")

	require.NoError(t, netfilter.Clear(ctx, b))
	assert.NoError(t, c.reach("a", "b"), "after Clear")
	assert.NoError(t, c.reach("c", "b"), "after Clear")
	assert.NoError(t, echo(established, 10*time.Second), "the established connection resumes")
	assert.NoError(t, netfilter.Clear(ctx, b), "Clear is idempotent")
	rules, err = netfilter.Rules(ctx, b)
	assert.NoError(t, err)
	assert.Empty(t, rules)
}

// The same code serves a container's namespace, named by a process in it.
func TestPartitionByProcessNamespace(t *testing.T) {
	c := newCluster(t, "nq")
	ctx := context.Background()
	cmd := c.net.Command(ctx, "b", "sleep", "60")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	procNS := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/ns/net"
	// nsenter enters b's namespace after it starts: until then procNS is the host's.
	require.Eventually(t, func() bool { return sameFile(procNS, c.net.NSPath("b")) }, 5*time.Second, time.Millisecond)

	require.NoError(t, netfilter.Apply(ctx, procNS, []netip.Addr{c.net.Addr("a")}))
	assert.Error(t, c.reach("a", "b"), "partitioned through /proc/PID/ns/net")
	assert.NoError(t, c.reach("c", "b"))
	require.NoError(t, netfilter.Clear(ctx, c.net.NSPath("b")), "the same namespace by its other name")
	assert.NoError(t, c.reach("a", "b"))
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// A fault never lands on the harness's own (the host's) network namespace.
func TestRefusesTheHostNamespace(t *testing.T) {
	ctx := context.Background()
	err := netfilter.Apply(ctx, "/proc/self/ns/net", []netip.Addr{netip.MustParseAddr("10.213.0.10")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the harness's own")
	assert.Error(t, netfilter.Loss(ctx, "/proc/"+strconv.Itoa(os.Getpid())+"/ns/net", []netip.Addr{netip.MustParseAddr("10.213.0.10")}, 0.5))
	assert.Error(t, netfilter.Clear(ctx, "/proc/self/ns/net"))
}

func TestLoss(t *testing.T) {
	c := newCluster(t, "nl")
	ctx := context.Background()
	a, b := c.net.Addr("a"), c.net.NSPath("b")
	established, err := c.dial("a", "b")
	require.NoError(t, err)

	require.NoError(t, netfilter.Loss(ctx, b, []netip.Addr{a}, 1))
	err = c.reach("a", "b")
	assert.True(t, isTimeout(err), "loss 1 drops everything, got %v", err)
	assert.True(t, isTimeout(echo(established, time.Second)), "established included")
	assert.NoError(t, c.reach("c", "b"), "only the given peers")

	require.NoError(t, netfilter.Loss(ctx, b, []netip.Addr{a}, 0))
	for range 5 {
		assert.NoError(t, c.reach("a", "b"), "loss 0 drops nothing")
	}
	assert.NoError(t, echo(established, 10*time.Second))

	// Half: count UDP datagrams from a that reach b.
	require.NoError(t, netfilter.Loss(ctx, b, []netip.Addr{a}, 0.5))
	got := udpThrough(t, c, "a", "b", 400)
	t.Logf("loss 0.5: %d of 400 datagrams arrived", got)
	assert.InDelta(t, 200, got, 80, "about half of 400 datagrams arrive")

	// A partition and a loss compose, and each heals on its own.
	require.NoError(t, netfilter.Loss(ctx, b, []netip.Addr{a}, 1))
	require.NoError(t, netfilter.Apply(ctx, b, []netip.Addr{c.net.Addr("c")}))
	assert.Error(t, c.reach("a", "b"))
	assert.Error(t, c.reach("c", "b"))
	require.NoError(t, netfilter.Apply(ctx, b, nil))
	assert.Error(t, c.reach("a", "b"), "the loss stays")
	assert.NoError(t, c.reach("c", "b"), "the partition healed")
	require.NoError(t, netfilter.Clear(ctx, b))
	assert.NoError(t, c.reach("a", "b"))
}

// udpThrough sends n datagrams from one node to another and counts those that arrive.
func udpThrough(t *testing.T, c *cluster, from, to string, n int) int {
	t.Helper()
	var rx, tx *net.UDPConn
	require.NoError(t, netns.Do(c.net.NSPath(to), func() (err error) {
		rx, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.net.Addr(to), 0)))
		return err
	}))
	defer rx.Close()
	require.NoError(t, netns.Do(c.net.NSPath(from), func() (err error) {
		tx, err = net.DialUDP("udp", nil, rx.LocalAddr().(*net.UDPAddr))
		return err
	}))
	defer tx.Close()
	for i := range n {
		_, err := tx.Write([]byte(strconv.Itoa(i)))
		require.NoError(t, err)
		if i%50 == 0 {
			time.Sleep(time.Millisecond) // stay under the socket's receive buffer
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		_ = rx.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, err := rx.Read(buf); err != nil {
			return got
		}
		got++
	}
}

func TestRejects(t *testing.T) {
	ctx := context.Background()
	path := "/nonexistent/ns" // never the host's own namespace
	assert.Error(t, netfilter.Loss(ctx, path, nil, 1.5))
	assert.Error(t, netfilter.Loss(ctx, path, nil, -0.1))
	assert.Error(t, netfilter.Apply(ctx, path, []netip.Addr{{}}))
	assert.Error(t, netfilter.Clear(ctx, "/nonexistent/ns"))
}

// A resetting partition kills established connections at once, on both ends, instead of
// stalling them; new ones are refused at once too.
func TestPartitionWithReset(t *testing.T) {
	c := newCluster(t, "nr")
	ctx := context.Background()
	b := c.net.NSPath("b")
	established, err := c.dial("a", "b")
	require.NoError(t, err)
	require.NoError(t, echo(established, time.Second))
	require.NoError(t, netfilter.Partition(ctx, b, []netip.Addr{c.net.Addr("a")}, true))
	t0 := time.Now()
	err = echo(established, 3*time.Second)
	require.Error(t, err)
	assert.False(t, isTimeout(err), "the established connection is reset, not stalled: %v", err)
	assert.Less(t, time.Since(t0), time.Second)
	_, err = c.dial("a", "b")
	assert.Error(t, err, "a new connection is refused")
	assert.False(t, isTimeout(err), "refused at once: %v", err)
	assert.NoError(t, c.reach("c", "b"), "others are not partitioned")
	rules, err := netfilter.Rules(ctx, b)
	require.NoError(t, err)
	assert.Contains(t, rules, "reject with tcp reset")
	require.NoError(t, netfilter.Clear(ctx, b))
	assert.NoError(t, c.reach("a", "b"), "healed")
}
