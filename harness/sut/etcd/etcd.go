// Package etcd is the target for the real etcd server, any release 3.4–3.7: a given
// binary (Debian's etcd-server, say) or one built once from the Go module proxy (Binary).
// Its nodes are started with etcd's own flags from the runtime's NodeEnv; the workloads
// talk to them with go.etcd.io/etcd/client/v3 (Client); leader, readiness and membership
// come from etcd's maintenance and cluster APIs.
//
// etcd has no clock hook: its nodes share the host kernel's clock, so clock faults are
// unavailable (its Options' Caps say so), never silently skipped. Its peers keep long-lived HTTP
// streams (rafthttp), so the link proxy works on TCP streams for it (Peers).
package etcd

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/internal/etcdclient"
	"github.com/faultline/faultline/nemesis"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// The ports every member listens on, in its own namespace: etcd's defaults.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

// Config is how the target runs etcd.
type Config struct {
	// Binary is the etcd server program; Version what it says it is (BinaryVersion).
	Binary, Version string
	// SerializableReads makes the workloads' reads serializable: known unsafe (a member
	// answers from its own state), for proving the checker catches stale reads.
	SerializableReads bool
	// SnapshotCount is etcd's --snapshot-count (0: etcd's default).
	SnapshotCount int
	// SnapshotCatchUpEntries is how many raft entries a member keeps after a snapshot for
	// slow followers to catch up from (0: etcd's default, 5000); a follower further
	// behind gets a snapshot. etcd 3.4 has no flag for it: it keeps 5000 (catchUpArgs).
	SnapshotCatchUpEntries int
	// Binaries are the servers of the releases the members may run, by version as
	// BinaryVersion says it ("v3.6.16"), and Versions the upgrade path, oldest first: the
	// members start on Versions[0] (see Upgrader). Empty: the one release Binary, Version.
	Binaries map[string]string
	Versions []string
	// Failpoints are the gofail failpoints the failpoint fault uses: the binaries are
	// built with them, and every member serves gofail's endpoint on FailpointPort.
	Failpoints []nemesis.Failpoint
	// FailpointTerms are armed in every member from its start (GOFAIL_FAILPOINTS).
	FailpointTerms string
	// NoCorruptCheck leaves out the check at a member's start (corruptCheckFlag), for
	// tests of what catches a divergence when nothing refuses it.
	NoCorruptCheck bool
}

// Target runs etcd. It implements sut.Target, the capabilities its Options declare —
// nemesis.Members (members.go), nemesis.Upgrader (upgrade.go), nemesis.Maintainer
// (maintenance.go), nemesis.Snapshotter (snapshot.go: whether a lagging member was sent
// a snapshot) — and sut.Consistency (consistency.go).
type Target struct {
	cfg   Config
	env   sut.Env
	names []string
	token string // --initial-cluster-token: unique per run, so no two runs' members mix

	mu     sync.Mutex
	admins map[string]*clientv3.Client // per node: status, members, maintenance
	ids    map[string]uint64           // each node's member id, as it reports it
	// version is the release each node's next start runs (absent: Versions()[0]).
	version map[string]string
	// joining is the --initial-cluster of a node added back as a new member (AddMember):
	// it then starts with --initial-cluster-state existing.
	joining map[string]string
	// fresh marks a node added back whose first start, on an empty data dir, is next.
	fresh map[string]bool
	// marks are the snapshot counts MarkSnapshots saw, per node.
	marks map[string]snapshotMark
}

var _ sut.Target = (*Target)(nil)

// New returns the etcd target for env's nodes.
func New(cfg Config, env sut.Env) *Target {
	return &Target{cfg: cfg, env: env, names: env.Nodes, token: "faultline-" + env.RunID,
		admins: map[string]*clientv3.Client{}, ids: map[string]uint64{},
		version: map[string]string{}, joining: map[string]string{}, fresh: map[string]bool{}, marks: map[string]snapshotMark{}}
}

// Name implements sut.Target.
func (t *Target) Name() string { return Name }

// Ports implements sut.Target.
func (t *Target) Ports() []int {
	if len(t.cfg.Failpoints) > 0 {
		return []int{PeerPort, ClientPort, FailpointPort}
	}
	return []int{PeerPort, ClientPort}
}

// Peers implements sut.Target: rafthttp's long-lived streams.
func (t *Target) Peers() sut.Peers { return sut.Peers{Port: PeerPort} }

// Describe implements sut.Target.
func (t *Target) Describe() results.TargetInfo {
	d := results.TargetInfo{Name: Name, Version: t.cfg.Version, Binary: t.cfg.Binary}
	if len(t.cfg.Versions) > 0 {
		d.Versions = t.cfg.Versions
	}
	if t.cfg.SerializableReads {
		d.Unsafe = "serializable-reads"
	}
	return d
}

func (t *Target) peerURL(node string) string { return "http://" + t.env.PeerReach(node, PeerPort) }
func (t *Target) clientAddr(node string) string {
	return t.env.Reach(node, ClientPort)
}

// Node implements sut.Target: etcd's flags for a member of the run's initial cluster,
// or, after AddMember, for a new member joining the current one; the program and the
// flags that differ between releases are those of the release the node runs
// (SetVersion). A restarted member finds its data and ignores the --initial-* flags.
func (t *Target) Node(env runtime.NodeEnv) runtime.NodeCmd {
	node := env.Name
	initial := make([]string, len(t.names))
	for i, n := range t.names {
		initial[i] = n + "=" + t.peerURL(n)
	}
	cluster, state := strings.Join(initial, ","), "new"
	t.mu.Lock()
	version := t.versionOf(node)
	if j, ok := t.joining[node]; ok {
		cluster, state = j, "existing"
	}
	fresh := t.fresh[node]
	delete(t.fresh, node)
	t.mu.Unlock()
	args := []string{
		"--name", node,
		"--data-dir", env.DataDir,
		"--listen-peer-urls", "http://" + env.Bind(PeerPort),
		"--listen-client-urls", "http://" + env.Bind(ClientPort),
		"--advertise-client-urls", "http://" + t.clientAddr(node),
		"--initial-advertise-peer-urls", t.peerURL(node),
		"--initial-cluster", cluster,
		"--initial-cluster-state", state,
		"--initial-cluster-token", t.token,
		"--logger", "zap", "--log-outputs", "stderr",
	}
	if t.cfg.SnapshotCount > 0 {
		args = append(args, "--snapshot-count", fmt.Sprint(t.cfg.SnapshotCount))
	}
	args = append(args, t.catchUpArgs(node, version)...)
	if !fresh && !t.cfg.NoCorruptCheck {
		args = append(args, corruptCheckFlag(version))
	}
	cmd := runtime.NodeCmd{Program: t.binaryOf(version), Args: args}
	if len(t.cfg.Failpoints) > 0 {
		cmd.Env = []string{"GOFAIL_HTTP=" + env.Bind(FailpointPort)}
		if t.cfg.FailpointTerms != "" {
			cmd.Env = append(cmd.Env, "GOFAIL_FAILPOINTS="+t.cfg.FailpointTerms)
		}
	}
	return cmd
}

// admin returns node's admin client (made on first use; it connects lazily).
func (t *Target) admin(node string) (*clientv3.Client, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.admins[node]; c != nil {
		return c, nil
	}
	c, err := clientv3.New(etcdclient.RawConfig(t.clientAddr(node), zap.NewNop()))
	if err != nil {
		return nil, fmt.Errorf("admin client of %s: %w", node, err)
	}
	t.admins[node] = c
	return c, nil
}

// Close closes the admin clients.
func (t *Target) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	var errs []error
	for n, c := range t.admins {
		if err := c.Close(); err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, fmt.Errorf("%s: %w", n, err))
		}
		delete(t.admins, n)
	}
	return errors.Join(errs...)
}

// status is one member's answer to Status.
type status struct {
	id, leader, raftIndex, raftTerm uint64
	applied                         uint64 // raft applied index (3.5+; 3.4 says 0: use raftIndex)
	revision                        int64
	version                         string
	learner                         bool
	dbSize, dbSizeInUse             int64
	storageVersion                  string // 3.6+
}

// status asks node for its status, within timeout.
func (t *Target) status(ctx context.Context, node string, timeout time.Duration) (status, error) {
	c, err := t.admin(node)
	if err != nil {
		return status{}, err
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r, err := c.Status(sctx, t.clientAddr(node))
	if err != nil {
		return status{}, fmt.Errorf("%s: status: %w", node, err)
	}
	st := status{id: r.Header.MemberId, leader: r.Leader, raftIndex: r.RaftIndex, raftTerm: r.RaftTerm,
		revision: r.Header.Revision, version: r.Version, learner: r.IsLearner, applied: r.RaftAppliedIndex,
		dbSize: r.DbSize, dbSizeInUse: r.DbSizeInUse, storageVersion: r.StorageVersion}
	t.mu.Lock()
	t.ids[node] = st.id
	t.mu.Unlock()
	return st, nil
}

// statuses asks every node at once.
func (t *Target) statuses(ctx context.Context, timeout time.Duration) (map[string]status, []error) {
	type answer struct {
		node string
		st   status
		err  error
	}
	ch := make(chan answer, len(t.names))
	for _, n := range t.names {
		go func() {
			st, err := t.status(ctx, n, timeout)
			ch <- answer{n, st, err}
		}()
	}
	sts := map[string]status{}
	var errs []error
	for range t.names {
		a := <-ch
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		sts[a.node] = a.st
	}
	return sts, errs
}

// nodeOf names the node whose member id is id ("" if none has reported it).
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

// Leader implements sut.Target: the member most answering members name as leader.
func (t *Target) Leader(ctx context.Context) (string, error) {
	sts, errs := t.statuses(ctx, 500*time.Millisecond)
	if len(sts) == 0 {
		return "", fmt.Errorf("no member answered status: %w", errors.Join(errs...))
	}
	named := make([]uint64, 0, len(sts))
	for _, st := range sts {
		named = append(named, st.leader)
	}
	best := sut.MostNamed(named)
	if best == 0 {
		return "", nil
	}
	return t.nodeOf(best), nil
}

// Ready implements sut.Target: every member answers, all name the same leader, and a
// write through the leader is acknowledged.
func (t *Target) Ready(ctx context.Context) error {
	sts, errs := t.statuses(ctx, time.Second)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	var leader uint64
	for _, n := range t.names {
		st := sts[n]
		if st.leader == 0 || leader != 0 && st.leader != leader {
			return fmt.Errorf("%s names leader %x, others %x", n, st.leader, leader)
		}
		leader = st.leader
	}
	ln := t.nodeOf(leader)
	if ln == "" {
		return fmt.Errorf("leader %x is none of this run's members", leader)
	}
	c, err := t.admin(ln)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.Put(wctx, "faultline-ready", "1"); err != nil {
		return fmt.Errorf("write through the leader %s: %w", ln, err)
	}
	return nil
}

// Opener implements sut.Target: process p talks to node p mod N only, with its own
// client (and connection), each operation bounded by opTimeout.
func (t *Target) Opener(opTimeout time.Duration) workload.Opener {
	return func(ctx context.Context, process int) (workload.Client, string, error) {
		node := t.names[process%len(t.names)]
		c, err := etcdclient.New(ctx, etcdclient.Config{Endpoint: t.clientAddr(node), OpTimeout: opTimeout,
			Serializable: t.cfg.SerializableReads})
		if err != nil {
			return nil, node, err
		}
		return c, node, nil
	}
}

// FileGlobs implements sut.Files: a member's WAL segments, its raft snapshots and its
// bbolt database, under its data directory.
func (t *Target) FileGlobs(kind nemesis.FileKind) []string {
	switch kind {
	case nemesis.LogFiles:
		return []string{"member/wal/*.wal"}
	case nemesis.SnapshotFiles:
		return []string{"member/snap/*.snap"}
	case nemesis.StateFiles:
		return []string{"member/snap/db"}
	}
	return nil
}

// corruptCheckFlag turns on the check a member runs at its start, before it serves (a
// member on data of its own: one joining starts empty, and gets its data from the leader):
// the hash of its keyspace against its peers' at the same revision. A member whose bbolt
// file was damaged (the corrupt fault) then refuses to start instead of serving what
// the damage made of its data, as a production cluster is told to run (etcd's
// operations guide; Kubernetes distributions turn it on).
func corruptCheckFlag(version string) string {
	if atLeast(version, 3, 6) {
		return "--feature-gates=InitialCorruptCheck=true"
	}
	return "--experimental-initial-corrupt-check=true"
}
