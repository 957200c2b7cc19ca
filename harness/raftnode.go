package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/node/client"
	"github.com/faultline/faultline/workload"
)

// Ports every raftnode listens on, inside its own namespace (the runtime maps them on loopback).
const (
	raftPeerPort   = 7001
	raftClientPort = 8001
)

// RaftTarget adapts faultline's own raftnode: how to start its nodes, the workload client
// over its HTTP API, and the hooks the nemesis uses (leader, health).
type RaftTarget struct {
	Bin    string // the raftnode program
	Unsafe string // --unsafe mode, "" for the correct node
	// DataDir is where nodes keep their data (one directory per node).
	DataDir string
	rt      Runtime
	names   []string

	mu      sync.Mutex
	clients map[string]*client.Client
}

// NewRaftTarget returns the target for the given node names, run by rt.
func NewRaftTarget(bin, unsafe, dataDir string, rt Runtime, names []string) *RaftTarget {
	return &RaftTarget{Bin: bin, Unsafe: unsafe, DataDir: dataDir, rt: rt, names: names, clients: map[string]*client.Client{}}
}

// id is a node's raft id: n1 → 1.
func nodeID(name string) int {
	id, _ := strconv.Atoi(strings.TrimPrefix(name, "n"))
	return id
}

// Command is the command line of one node.
func (t *RaftTarget) Command(node string) NodeCmd {
	peers := make([]string, 0, len(t.names))
	for _, n := range t.names {
		peers = append(peers, fmt.Sprintf("%d=http://%s", nodeID(n), t.rt.HostPort(n, raftPeerPort)))
	}
	args := []string{t.Bin, "--id", strconv.Itoa(nodeID(node)), "--peers", strings.Join(peers, ","),
		"--listen-peer", t.rt.HostPort(node, raftPeerPort), "--listen-client", t.rt.HostPort(node, raftClientPort),
		"--data-dir", filepath.Join(t.DataDir, node)}
	if t.Unsafe != "" {
		args = append(args, "--unsafe", t.Unsafe)
	}
	return NodeCmd{Args: args}
}

// Client returns the shared admin client of a node (short timeouts, for status and hooks).
func (t *RaftTarget) Client(node string) *client.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[node]
	if c == nil {
		c = client.New("http://"+t.rt.HostPort(node, raftClientPort), &http.Client{Timeout: 2 * time.Second})
		t.clients[node] = c
	}
	return c
}

// Leader returns the node that most reachable nodes name as leader ("" if none).
func (t *RaftTarget) Leader(ctx context.Context) (string, error) {
	votes := map[int]int{}
	var errs []error
	for _, n := range t.names {
		sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		st, err := t.Client(n).Status(sctx)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Leader != 0 {
			votes[int(st.Leader)]++
		}
	}
	best, bestVotes := 0, 0
	for id, v := range votes {
		if v > bestVotes || (v == bestVotes && id < best) {
			best, bestVotes = id, v
		}
	}
	if best == 0 {
		if len(errs) == len(t.names) {
			return "", fmt.Errorf("no node answered status: %w", errors.Join(errs...))
		}
		return "", nil
	}
	return fmt.Sprintf("n%d", best), nil
}

// WaitReady waits until every node answers and agrees on a leader, and a write through
// the leader is acknowledged.
func (t *RaftTarget) WaitReady(ctx context.Context) error {
	var last error
	for {
		if last = t.ready(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ready: %w (last: %v)", ctx.Err(), last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (t *RaftTarget) ready(ctx context.Context) error {
	leader := uint64(0)
	for _, n := range t.names {
		st, err := t.Client(n).Status(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		if st.Leader == 0 || (leader != 0 && uint64(st.Leader) != leader) {
			return fmt.Errorf("%s: leader %d, others %d", n, st.Leader, leader)
		}
		leader = uint64(st.Leader)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	return t.Client(fmt.Sprintf("n%d", leader)).Put(wctx, "faultline-ready", "1")
}

// Opener returns the workload's client opener: process p talks to node p mod N, over its
// own HTTP connection pool, with requests bounded by opTimeout.
func (t *RaftTarget) Opener(opTimeout time.Duration) workload.Opener {
	return func(_ context.Context, process int) (workload.Client, string, error) {
		node := t.names[process%len(t.names)]
		hc := &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		return raftClient{client.New("http://"+t.rt.HostPort(node, raftClientPort), hc)}, node, nil
	}
}

// raftClient is workload.Client over raftnode's HTTP API.
type raftClient struct{ c *client.Client }

func (r raftClient) Read(ctx context.Context, key string) (string, bool, error) {
	return r.c.Get(ctx, key)
}
func (r raftClient) Write(ctx context.Context, key, value string) error {
	return r.c.Put(ctx, key, value)
}
func (r raftClient) CAS(ctx context.Context, key, from, to string) error {
	err := r.c.CAS(ctx, key, from, to)
	if errors.Is(err, client.ErrCASMismatch) {
		return workload.ErrMismatch
	}
	return err
}
func (r raftClient) Append(ctx context.Context, key, value string) error {
	return r.c.Append(ctx, key, value)
}
func (r raftClient) ReadList(ctx context.Context, key string) ([]string, error) {
	return r.c.List(ctx, key)
}

// RaftnodeBin returns a path that runs raftnode: a link named raftnode to this very
// executable (faultline runs as raftnode when called by that name), made in dir.
func RaftnodeBin(dir string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find faultline's executable: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("raftnode link: %w", err)
	}
	link := filepath.Join(dir, "raftnode")
	_ = os.Remove(link)
	if err := os.Symlink(self, link); err != nil {
		return "", fmt.Errorf("raftnode link: %w", err)
	}
	return link, nil
}
