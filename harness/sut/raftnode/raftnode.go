// Package raftnode is the target for faultline's own node (package node): how to start
// its nodes, the workload client over its HTTP API, and the hooks the nemesis uses
// (leader, clock, membership).
package raftnode

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

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/node/client"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Ports every raftnode listens on, inside its own namespace (the runtime maps them on loopback).
const (
	PeerPort   = 7001
	ClientPort = 8001
)

// Target adapts faultline's own raftnode. It implements sut.Target, nemesis.Clocker
// and nemesis.Members.
//
// Node names (n1, n2, ...) are stable; a node's raft id is not: a member replaced by the
// nemesis comes back under a new id, with an empty data dir, as a joining member.
type Target struct {
	Bin    string // the raftnode program
	Unsafe string // --unsafe mode, "" for the correct node
	env    sut.Env
	names  []string

	mu      sync.Mutex
	clients map[string]*client.Client
	ids     map[string]uint64 // each node's current raft id
	joined  map[string]bool   // added as a new member: it starts with --join
	nextID  uint64
}

// New returns the target for env's nodes; bin is the raftnode program (see Bin). Node i
// of env.Nodes starts with raft id i+1.
func New(bin, unsafe string, env sut.Env) *Target {
	t := &Target{Bin: bin, Unsafe: unsafe, env: env, names: env.Nodes, clients: map[string]*client.Client{},
		ids: map[string]uint64{}, joined: map[string]bool{}, nextID: uint64(len(env.Nodes)) + 1}
	for i, n := range env.Nodes {
		t.ids[n] = uint64(i) + 1
	}
	return t
}

// Name implements sut.Target.
func (t *Target) Name() string { return Name }

// Ports implements sut.Target.
func (t *Target) Ports() []int { return []int{PeerPort, ClientPort} }

// Peers implements sut.Target: raft messages go as one-way POSTs.
func (t *Target) Peers() sut.Peers { return sut.Peers{Port: PeerPort, Messages: true} }

// Describe implements sut.Target.
func (t *Target) Describe() results.TargetInfo {
	return results.TargetInfo{Name: Name, Binary: t.Bin, Unsafe: t.Unsafe}
}

// ID returns the node's current raft id.
func (t *Target) ID(node string) uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ids[node]
}

// nodeOf returns the name of the node whose current raft id is id ("" if none).
func (t *Target) nodeOf(id uint64) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for n, i := range t.ids {
		if i == id {
			return n
		}
	}
	return ""
}

func (t *Target) peerURL(node string) string { return "http://" + t.env.PeerReach(node, PeerPort) }

// Node implements sut.Target: the node's current id, and every node's current id at
// the URL it is reached at.
func (t *Target) Node(env runtime.NodeEnv) runtime.NodeCmd {
	t.mu.Lock()
	defer t.mu.Unlock()
	node := env.Name
	peers := make([]string, 0, len(t.names))
	for _, n := range t.names {
		peers = append(peers, fmt.Sprintf("%d=%s", t.ids[n], t.peerURL(n)))
	}
	args := []string{"--id", strconv.FormatUint(t.ids[node], 10), "--peers", strings.Join(peers, ","),
		"--listen-peer", env.Bind(PeerPort), "--listen-client", env.Bind(ClientPort), "--data-dir", env.DataDir}
	if t.joined[node] {
		args = append(args, "--join")
	}
	if t.Unsafe != "" {
		args = append(args, "--unsafe", t.Unsafe)
	}
	return runtime.NodeCmd{Program: t.Bin, Args: args}
}

func (t *Target) clientURL(node string) string { return "http://" + t.env.Reach(node, ClientPort) }

// Client returns the shared admin client of a node (short timeouts, for status and hooks).
func (t *Target) Client(node string) *client.Client {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.clients[node]
	if c == nil {
		c = client.New(t.clientURL(node), &http.Client{Timeout: 2 * time.Second})
		t.clients[node] = c
	}
	return c
}

// Leader returns the node that most reachable nodes name as leader ("" if none).
func (t *Target) Leader(ctx context.Context) (string, error) {
	sts, errs := t.statuses(ctx, 500*time.Millisecond)
	named := make([]uint64, 0, len(sts))
	for _, st := range sts {
		named = append(named, st.Leader)
	}
	best := sut.MostNamed(named)
	if best == 0 {
		if len(sts) == 0 {
			return "", fmt.Errorf("no node answered status: %w", errors.Join(errs...))
		}
		return "", nil
	}
	return t.nodeOf(best), nil
}

// statuses asks every node for its status at once, each within timeout; it returns the
// answers by node and the errors of the others.
func (t *Target) statuses(ctx context.Context, timeout time.Duration) (map[string]client.Status, []error) {
	type answer struct {
		node string
		st   client.Status
		err  error
	}
	ch := make(chan answer, len(t.names))
	for _, n := range t.names {
		go func() {
			a := answer{node: n}
			defer func() { // every node answers once, a panic included
				if p := recover(); p != nil {
					a.err = fmt.Errorf("status panicked: %v", p)
				}
				ch <- a
			}()
			sctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			a.st, a.err = t.Client(n).Status(sctx)
		}()
	}
	sts := map[string]client.Status{}
	var errs []error
	for range t.names {
		a := <-ch
		if a.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.node, a.err))
			continue
		}
		sts[a.node] = a.st
	}
	return sts, errs
}

// Ready implements sut.Target: every node answers and agrees on a leader, and a
// write through the leader is acknowledged.
func (t *Target) Ready(ctx context.Context) error {
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
	ln := t.nodeOf(leader)
	if ln == "" {
		return fmt.Errorf("leader %d is none of this run's nodes", leader)
	}
	return t.Client(ln).Put(wctx, "faultline-ready", "1")
}

// Opener returns the workload's client opener: process p talks to node p mod N, over its
// own HTTP connection pool, with requests bounded by opTimeout.
func (t *Target) Opener(opTimeout time.Duration) workload.Opener {
	return func(_ context.Context, process int) (workload.Client, string, error) {
		node := t.names[process%len(t.names)]
		hc := &http.Client{Timeout: opTimeout, Transport: &http.Transport{MaxIdleConnsPerHost: 2}}
		return raftClient{client.New(t.clientURL(node), hc)}, node, nil
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

// SetClock implements nemesis.Clocker through raftnode's /clock.
func (t *Target) SetClock(ctx context.Context, node string, offset time.Duration, rate float64) error {
	return t.Client(node).SetClock(ctx, client.Clock{OffsetMS: offset.Milliseconds(), Rate: rate})
}

// Bin returns a path that runs raftnode: a link named raftnode to this very executable
// (faultline runs as raftnode when called by that name), made in dir.
func Bin(dir string) (string, error) {
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

// FileGlobs implements sut.Files: the WAL ("wal") and the snapshot ("snap") in the data
// directory (node.OpenStorage).
func (t *Target) FileGlobs(kind nemesis.FileKind) []string {
	switch kind {
	case nemesis.LogFiles:
		return []string{"wal"}
	case nemesis.SnapshotFiles:
		return []string{"snap"}
	}
	return nil
}
