package netns

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

const (
	nsPrefix   = "faultline-" // every namespace we make
	linkPrefix = "fl-"        // the host end of every run's uplink
	nsDir      = "/run/netns" // where `ip netns` keeps its namespaces
	lockDir    = "/run/faultline"
	bridge     = "br0" // inside the hub namespace
	uplink     = "uplink"
	firstHost  = 10 // node i gets .firstHost+i

	closeTimeout = 30 * time.Second
)

// Subnets are 10.213.S.0/24; S is picked per run from the run id, skipping subnets in use.
var basePrefix = netip.MustParsePrefix("10.213.0.0/16")

// Run ids name host links ("fl-" + id must fit IFNAMSIZ-1 = 15) and namespaces.
var runIDRE = regexp.MustCompile(`^[a-zA-Z0-9]{1,12}$`)

// Network is one run's network of namespaces. Its methods are safe for concurrent use.
type Network struct {
	runID  string
	prefix netip.Prefix
	nodes  []string
	addrs  map[string]netip.Addr

	mu   sync.Mutex
	lock *os.File // flock held while the network lives; nil once closed
}

// Create makes the network of run runID: a namespace per node, each node with its own
// address (.10, .11, ... in the order given) on a /24 picked for the run, joined by a bridge
// that the host reaches at .1. Nodes have lo up and a default route via the host. If any
// step fails, Create removes whatever it made. Creates on one host are serialized (a
// host-wide flock) so that concurrent runs get distinct subnets.
func Create(ctx context.Context, runID string, nodes []string) (*Network, error) {
	if err := validate(runID, nodes); err != nil {
		return nil, fmt.Errorf("create network: %w", err)
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("create network %s: %w", runID, err)
	}
	// One Create at a time on this host, so that two runs never pick the same subnet.
	global, err := flock(filepath.Join(lockDir, "netns.lock"), true)
	if err != nil {
		return nil, fmt.Errorf("create network %s: %w", runID, err)
	}
	defer global.Close()

	if exists(hubName(runID)) {
		return nil, fmt.Errorf("create network %s: namespace %s exists (run id in use, or left behind: faultline clean)", runID, hubName(runID))
	}
	prefix, err := pickSubnet(ctx, runID)
	if err != nil {
		return nil, fmt.Errorf("create network %s: %w", runID, err)
	}
	lock, err := flock(lockPath(runID), false)
	if err != nil {
		return nil, fmt.Errorf("create network %s: %w", runID, err)
	}
	n := &Network{runID: runID, prefix: prefix, nodes: slices.Clone(nodes), addrs: map[string]netip.Addr{}, lock: lock}
	for i, node := range nodes {
		n.addrs[node] = nth(prefix, firstHost+i)
	}
	var made []string // namespaces made so far, for the rollback
	if err := n.build(ctx, &made); err != nil {
		// Remove only what this call made: a namespace that was there before is not ours.
		cctx := context.WithoutCancel(ctx)
		rerr := deleteLink(cctx, hostLink(runID))
		for _, ns := range slices.Backward(made) {
			rerr = errors.Join(rerr, deleteNS(cctx, ns))
		}
		n.release()
		if rerr != nil {
			err = errors.Join(err, fmt.Errorf("and removing it: %w", rerr))
		}
		return nil, fmt.Errorf("create network %s: %w", runID, err)
	}
	return n, nil
}

// build makes the hub, the host's uplink and every node, appending each namespace it
// makes to made.
func (n *Network) build(ctx context.Context, made *[]string) error {
	hub := hubName(n.runID)
	host := nth(n.prefix, 1)
	if err := ip(ctx, "netns", "add", hub); err != nil {
		return err
	}
	*made = append(*made, hub)
	steps := [][]string{
		{"-n", hub, "link", "add", bridge, "type", "bridge"},
		{"-n", hub, "link", "set", bridge, "up"},
		{"link", "add", hostLink(n.runID), "type", "veth", "peer", "name", uplink, "netns", hub},
		{"-n", hub, "link", "set", uplink, "master", bridge, "up"},
		{"addr", "add", host.String() + "/24", "dev", hostLink(n.runID)},
		{"link", "set", hostLink(n.runID), "up"},
	}
	if err := ips(ctx, steps); err != nil {
		return err
	}
	for i, node := range n.nodes {
		ns := nsName(n.runID, node)
		if err := ip(ctx, "netns", "add", ns); err != nil {
			return err
		}
		*made = append(*made, ns)
		port := fmt.Sprintf("v%d", i)
		steps := [][]string{
			{"-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", hub, "link", "set", port, "master", bridge, "up"},
			{"-n", ns, "addr", "add", n.addrs[node].String() + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "lo", "up"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "route", "add", "default", "via", host.String()},
		}
		if err := ips(ctx, steps); err != nil {
			return err
		}
	}
	return nil
}

// Nodes returns the node names, in the order given to Create.
func (n *Network) Nodes() []string { return slices.Clone(n.nodes) }

// Addr returns the node's address (the zero Addr for a node not in the network).
func (n *Network) Addr(node string) netip.Addr { return n.addrs[node] }

// HostAddr returns the host's address on the run's network (.1, the nodes' gateway).
func (n *Network) HostAddr() netip.Addr { return nth(n.prefix, 1) }

// Prefix returns the run's subnet.
func (n *Network) Prefix() netip.Prefix { return n.prefix }

// NSPath returns the path of the node's namespace, for nsenter --net=PATH or setns.
func (n *Network) NSPath(node string) string {
	return filepath.Join(nsDir, nsName(n.runID, node))
}

// Command returns a command that runs name with args in the node's namespace, through
// `nsenter --net=PATH -- name args...`. nsenter execs the program, so cmd.Process.Pid is
// the program's own pid: signals (SIGSTOP, SIGKILL) sent to it reach the program. A node not
// in the network gives a command whose Start fails.
func (n *Network) Command(ctx context.Context, node, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.NSPath(node), "--", name}, args...)...)
	if _, ok := n.addrs[node]; !ok {
		cmd.Err = fmt.Errorf("run %s has no node %q", n.runID, node)
	}
	return cmd
}

// Close removes the run's namespaces and the host's uplink. It is idempotent, and removes
// what it can when some of it is already gone. A ctx that is already done (an interrupted
// run) does not stop it: it then gives itself closeTimeout.
func (n *Network) Close(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.lock == nil {
		return nil
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), closeTimeout)
		defer cancel()
	}
	// Deleting the host's link first removes its peer at once; a deleted namespace's
	// links go away asynchronously, so the host would briefly still list fl-R.
	err := deleteLink(ctx, hostLink(n.runID))
	for _, node := range n.nodes {
		err = errors.Join(err, deleteNS(ctx, nsName(n.runID, node)))
	}
	err = errors.Join(err, deleteNS(ctx, hubName(n.runID)))
	if err != nil {
		return fmt.Errorf("close network %s: %w", n.runID, err)
	}
	n.release()
	return nil
}

// release drops the run's lock (the network is then fair game for CleanAll).
func (n *Network) release() {
	if n.lock != nil {
		_ = os.Remove(n.lock.Name())
		_ = n.lock.Close()
		n.lock = nil
	}
}

func validate(runID string, nodes []string) error {
	if !runIDRE.MatchString(runID) {
		return fmt.Errorf("run id %q: want 1-12 letters and digits", runID)
	}
	if len(nodes) == 0 {
		return errors.New("no nodes")
	}
	if len(nodes) > 240 {
		return fmt.Errorf("%d nodes: at most 240 fit in a /24", len(nodes))
	}
	seen := map[string]bool{}
	for _, node := range nodes {
		if node == "" || strings.ContainsAny(node, "/ \t\n\x00") || node == "." || node == ".." {
			return fmt.Errorf("node name %q: want a name usable in a file name", node)
		}
		if seen[node] {
			return fmt.Errorf("node %q listed twice", node)
		}
		seen[node] = true
	}
	return nil
}

// pickSubnet returns the first 10.213.S.0/24, starting from a hash of the run id, that no
// address or route on the host uses.
func pickSubnet(ctx context.Context, runID string) (netip.Prefix, error) {
	addrs, err := command(ctx, "ip", "-4", "-o", "addr", "show")
	if err != nil {
		return netip.Prefix{}, err
	}
	routes, err := command(ctx, "ip", "-4", "route", "show", "table", "all")
	if err != nil {
		return netip.Prefix{}, err
	}
	h := fnv.New32a()
	h.Write([]byte(runID))
	start := int(h.Sum32() % 256)
	base := basePrefix.Addr().As4()
	for i := range 256 {
		s := byte((start + i) % 256)
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{base[0], base[1], s, 0}), 24)
		net := fmt.Sprintf("%d.%d.%d.", base[0], base[1], s)
		if !strings.Contains(addrs, "inet "+net) && !strings.Contains(routes, net) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free /24 in %s", basePrefix)
}

// nth returns the i-th address of the /24 p.
func nth(p netip.Prefix, i int) netip.Addr {
	a := p.Addr().As4()
	a[3] = byte(i)
	return netip.AddrFrom4(a)
}

func hubName(runID string) string      { return nsPrefix + runID }
func nsName(runID, node string) string { return nsPrefix + runID + "-" + node }
func hostLink(runID string) string     { return linkPrefix + runID }
func lockPath(runID string) string     { return filepath.Join(lockDir, "netns-"+runID+".lock") }
func exists(ns string) bool            { _, err := os.Stat(filepath.Join(nsDir, ns)); return err == nil }
func ip(ctx context.Context, args ...string) error {
	_, err := command(ctx, "ip", args...)
	return err
}

func ips(ctx context.Context, steps [][]string) error {
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return err
		}
	}
	return nil
}

// deleteNS deletes a namespace made by `ip netns add`; one already gone is not an error.
func deleteNS(ctx context.Context, ns string) error {
	if !exists(ns) {
		return nil
	}
	return ip(ctx, "netns", "delete", ns)
}

// deleteLink deletes a host link (a veth's peer goes with it); one already gone is not an
// error.
func deleteLink(ctx context.Context, link string) error {
	if _, err := os.Stat(filepath.Join("/sys/class/net", link)); err != nil {
		return nil
	}
	return ip(ctx, "link", "delete", link)
}

// flock opens (creating) path and takes an exclusive lock on it: blocking when wait, else
// failing at once if another holder has it (errLocked).
func flock(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	how := unix.LOCK_EX
	if !wait {
		how |= unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, errLocked)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

var errLocked = errors.New("held by a live run")

// command runs name with args and returns its stdout; the error names the command and
// carries its stderr.
func command(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Do runs f on an OS thread that has joined the network namespace at nsPath (a node's
// NSPath, or a process's /proc/PID/ns/net), and returns f's error. Sockets f opens stay in
// that namespace after Do returns, and may be used from any goroutine: this is how the
// harness listens or dials "from" a node without a helper process. f must not start
// goroutines that expect the namespace (they run on other threads).
func Do(nsPath string, f func() error) error {
	target, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("enter namespace: %w", err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread goes back to the pool only if it is back in its own namespace;
		// otherwise it stays locked, and Go ends it when this goroutine exits.
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("enter namespace: %w", err)
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter namespace %s: %w", nsPath, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("leave namespace %s: %w", nsPath, err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
