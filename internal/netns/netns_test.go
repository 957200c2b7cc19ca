package netns

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces (root): skipped in -short mode")
	}
	if ok, why := Available(); !ok {
		t.Skip("needs network namespaces (root, ip, nsenter): " + why)
	}
}

// testRunID is unique per test process and name, so parallel test binaries do not collide.
func testRunID(tag string) string { return fmt.Sprintf("t%s%05d", tag, os.Getpid()%100000) }

// ours lists the host's namespaces, links and firewall lines that mention the run.
func ours(t *testing.T, runID string) []string {
	t.Helper()
	var found []string
	for _, args := range [][]string{
		{"ip", "netns", "list"},
		{"ip", "-o", "link"},
		{"iptables", "-S", "FORWARD"},
		{"nft", "list", "ruleset"},
	} {
		out, err := exec.Command(args[0], args[1:]...).Output()
		if err != nil {
			if _, lerr := exec.LookPath(args[0]); lerr != nil {
				continue
			}
			require.NoError(t, err, strings.Join(args, " "))
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, runID) {
				found = append(found, strings.Join(args, " ")+": "+line)
			}
		}
	}
	return found
}

// removeRun deletes every trace of runID by name (the test's own safety net).
func removeRun(runID string, nodes []string) {
	ctx := context.Background()
	_ = deleteLink(ctx, hostLink(runID))
	for _, n := range nodes {
		_ = deleteNS(ctx, nsName(runID, n))
	}
	_ = deleteNS(ctx, hubName(runID))
	_ = os.Remove(lockPath(runID))
}

func create(t *testing.T, runID string, nodes []string) *Network {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n, err := Create(ctx, runID, nodes)
	t.Cleanup(func() { removeRun(runID, nodes) })
	require.NoError(t, err)
	t.Cleanup(func() { _ = n.Close(context.Background()) })
	return n
}

// serve listens on port 0 in the namespace at nsPath and reports each peer's address.
func serve(t *testing.T, nsPath string, addr netip.Addr) (net.Listener, <-chan netip.Addr) {
	t.Helper()
	var l net.Listener
	require.NoError(t, Do(nsPath, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}))
	t.Cleanup(func() { l.Close() })
	peers := make(chan netip.Addr, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peers <- c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr().Unmap()
			c.Close()
		}
	}()
	return l, peers
}

func TestCreateConnectClose(t *testing.T) {
	needNetns(t)
	runID := testRunID("c")
	require.Empty(t, ours(t, runID), "leftovers of an earlier run")
	nodes := []string{"a", "b", "c"}
	n := create(t, runID, nodes)

	assert.Equal(t, nodes, n.Nodes())
	seen := map[netip.Addr]bool{n.HostAddr(): true}
	for _, node := range nodes {
		a := n.Addr(node)
		assert.True(t, n.Prefix().Contains(a), "%s: %s", node, a)
		assert.False(t, seen[a], "%s: address %s taken twice", node, a)
		seen[a] = true
		assert.FileExists(t, n.NSPath(node))
	}
	out, err := n.Command(context.Background(), "b", "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	require.NoError(t, err, string(out))
	assert.Contains(t, string(out), n.Addr("b").String()+"/24")
	assert.Error(t, n.Command(context.Background(), "zz", "true").Run(), "a node not in the network")

	l, peers := serve(t, n.NSPath("a"), n.Addr("a"))
	target := l.Addr().String()
	dial := func() error {
		c, err := net.DialTimeout("tcp", target, 3*time.Second)
		if err == nil {
			c.Close()
		}
		return err
	}
	require.NoError(t, Do(n.NSPath("b"), dial), "from node b")
	assert.Equal(t, n.Addr("b"), <-peers)
	require.NoError(t, dial(), "from the host")
	assert.Equal(t, n.HostAddr(), <-peers)
	require.NoError(t, Do(n.NSPath("c"), dial), "from node c")
	assert.Equal(t, n.Addr("c"), <-peers)

	require.NoError(t, n.Close(context.Background()))
	assert.Empty(t, ours(t, runID), "left behind by Close")
	assert.NoFileExists(t, lockPath(runID))
	assert.NoError(t, n.Close(context.Background()), "Close is idempotent")
}

func TestCreateRollsBack(t *testing.T) {
	needNetns(t)
	runID := testRunID("r")
	nodes := []string{"a", "b", "c"}
	t.Cleanup(func() { removeRun(runID, nodes) })
	// Node c's namespace is already there, so Create fails after making a and b.
	require.NoError(t, exec.Command("ip", "netns", "add", nsName(runID, "c")).Run())

	_, err := Create(context.Background(), runID, nodes)
	require.Error(t, err)
	assert.Contains(t, err.Error(), nsName(runID, "c"))
	assert.Equal(t, []string{"ip netns list: " + nsName(runID, "c")}, ours(t, runID),
		"everything Create made is gone; what it did not make is still there")
}

func TestCleanAll(t *testing.T) {
	needNetns(t)
	leaked, live := testRunID("l"), testRunID("v")
	nodes := []string{"a", "b"}
	dead := create(t, leaked, nodes)
	dead.release() // as if its process had crashed
	n := create(t, live, nodes)

	removed, err := CleanAll(context.Background())
	require.NoError(t, err)
	for _, name := range []string{"link " + hostLink(leaked), "netns " + hubName(leaked), "netns " + nsName(leaked, "a"), "netns " + nsName(leaked, "b")} {
		assert.Contains(t, removed, name)
	}
	assert.Empty(t, ours(t, leaked))
	for _, r := range removed {
		assert.NotContains(t, r, live, "CleanAll removed part of a live run")
	}
	l, peers := serve(t, n.NSPath("a"), n.Addr("a"))
	c, err := net.DialTimeout("tcp", l.Addr().String(), 3*time.Second)
	require.NoError(t, err, "the live run still works")
	c.Close()
	assert.Equal(t, n.HostAddr(), <-peers)
}

func TestCreateRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		runID string
		nodes []string
	}{
		{"empty run id", "", []string{"a"}},
		{"long run id", "abcdefghijklm", []string{"a"}},
		{"dash in run id", "ab-c", []string{"a"}},
		{"no nodes", "abc", nil},
		{"twice", "abc", []string{"a", "a"}},
		{"slash", "abc", []string{"a/b"}},
		{"empty node", "abc", []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Create(context.Background(), tc.runID, tc.nodes)
			assert.Error(t, err)
		})
	}
}

func TestCloseOnCancelledContextAndReusedRunID(t *testing.T) {
	needNetns(t)
	runID := testRunID("x")
	n := create(t, runID, []string{"a"})
	_, err := Create(context.Background(), runID, []string{"b"})
	assert.ErrorContains(t, err, "run id in use", "a live run's id")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // an interrupted run still cleans up
	require.NoError(t, n.Close(ctx))
	assert.Empty(t, ours(t, runID))
}
