package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Raft timing, in node-clock time.
const (
	TickInterval  = 100 * time.Millisecond
	ElectionTick  = 10
	HeartbeatTick = 1
)

// Node is one running raftnode: raft, its storage, the state machine, and the HTTP
// servers. Start it with Start and stop it with Stop.
type Node struct {
	cfg   Config
	log   *slog.Logger
	clock *Clock
	kv    *KV
	store *Storage
	ms    *raft.MemoryStorage
	rn    raft.Node
	tr    *transport

	// Owned by the Ready loop.
	confState raftpb.ConfState
	snapIndex uint64
	forceSnap bool
	// bootstrapped: this start made a new cluster (no data, not joining).
	bootstrapped bool

	lead    atomic.Uint64
	term    atomic.Uint64
	commit  atomic.Uint64
	reqBase uint64
	reqSeq  atomic.Uint64
	removed atomic.Bool
	gone    sync.Map // ids of the members this node removed: their messages are answered 410

	mu      sync.Mutex
	waiters map[uint64]chan Result
	reads   map[uint64]chan uint64

	appliedMu sync.Mutex
	applied   uint64
	appliedCh chan struct{}

	tickc     chan struct{}
	stopc     chan struct{}
	stopOnce  sync.Once
	loopDone  chan struct{}
	removedc  chan struct{}
	failc     chan error
	cancel    context.CancelFunc
	peerSrv   *http.Server
	clientSrv *http.Server
	listeners []net.Listener
}

// Start opens the storage, binds the listeners and starts raft and the servers.
func Start(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	n := &Node{cfg: cfg, log: cfg.Logger, clock: NewClock(), kv: NewKV(),
		waiters: map[uint64]chan Result{}, reads: map[uint64]chan uint64{},
		appliedCh: make(chan struct{}), tickc: make(chan struct{}, 1), stopc: make(chan struct{}),
		loopDone: make(chan struct{}), removedc: make(chan struct{}), failc: make(chan error, 1)}
	var b [8]byte
	_, _ = rand.Read(b[:])
	n.reqBase = binary.LittleEndian.Uint64(b[:])
	if err := n.listen(); err != nil {
		return nil, err
	}
	store, ld, err := OpenStorage(cfg.DataDir, cfg.Unsafe)
	if err != nil {
		n.closeListeners()
		return nil, fmt.Errorf("open storage: %w", err)
	}
	n.store = store
	if err := n.startRaft(ld); err != nil {
		n.closeListeners()
		store.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go n.clock.Tick(ctx, TickInterval, n.tickc)
	go n.run()
	switch {
	case len(cfg.Peers) == 1 && !cfg.Join:
		// A single-voter cluster need not wait an election timeout.
		go func() { _ = n.rn.Campaign(ctx) }()
	case n.bootstrapped:
		// A new cluster has no leader to wait for: advance the election clock to one
		// tick short of its timeout (etcd's --initial-election-tick-advance), so the
		// first election comes 0.1-1 s after start instead of 1-2 s. Restarts keep the
		// whole timeout: a node back from a kill must not campaign before it could hear
		// the leader.
		for range ElectionTick - 1 {
			n.rn.Tick()
		}
	}
	n.serve()
	return n, nil
}

// startRaft restores the persisted state and starts (or bootstraps) raft.
func (n *Node) startRaft(ld Loaded) error {
	n.ms = raft.NewMemoryStorage()
	if !raft.IsEmptySnap(ld.Snapshot) {
		if err := n.ms.ApplySnapshot(ld.Snapshot); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
		if err := n.kv.Restore(ld.Snapshot.Data); err != nil {
			return err
		}
		n.confState = ld.Snapshot.Metadata.ConfState
		n.snapIndex = ld.Snapshot.Metadata.Index
		n.applied = n.snapIndex
	}
	// A snapshot holds only committed state, so the commit index is at least its index
	// (only ack-before-fsync can leave a WAL whose HardState lags the snapshot).
	ld.HardState.Commit = max(ld.HardState.Commit, n.snapIndex)
	if err := n.ms.SetHardState(ld.HardState); err != nil {
		return fmt.Errorf("restore hardstate: %w", err)
	}
	if err := n.ms.Append(ld.Entries); err != nil {
		return fmt.Errorf("restore entries: %w", err)
	}
	n.term.Store(ld.HardState.Term)
	n.commit.Store(max(ld.HardState.Commit, n.snapIndex))
	rc := &raft.Config{
		ID: n.cfg.ID, ElectionTick: ElectionTick, HeartbeatTick: HeartbeatTick,
		Storage: n.ms, Applied: n.applied, MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 256,
		MaxUncommittedEntriesSize: 1 << 30, CheckQuorum: true, PreVote: true,
		StepDownOnRemoval: true, Logger: &raftLogger{log: n.log, onFatal: n.cfg.OnFatal},
	}
	if n.cfg.Unsafe == LeaseRead {
		rc.ReadOnlyOption = raft.ReadOnlyLeaseBased
	}
	n.tr = newTransport(n.log, n)
	for _, id := range sortedIDs(n.cfg.Peers) {
		if id != n.cfg.ID {
			n.tr.setPeer(id, n.cfg.Peers[id])
		}
	}
	// Members added after this node's --peers was written are known only from the
	// snapshot (their ConfChange may be compacted away): reach them at the URL they were
	// added with, unless --peers names them.
	for _, m := range n.kv.Members() {
		if m.ID != n.cfg.ID {
			n.tr.setPeer(m.ID, n.peerURL(m.ID, m.PeerURL))
		}
	}
	switch {
	case ld.Exists || n.cfg.Join:
		n.log.Info("restarting raft", "snapshot", n.snapIndex, "entries", len(ld.Entries), "join", n.cfg.Join)
		n.rn = raft.RestartNode(rc)
	default:
		var peers []raft.Peer
		for _, id := range sortedIDs(n.cfg.Peers) {
			peers = append(peers, raft.Peer{ID: id, Context: []byte(n.cfg.Peers[id])})
		}
		n.log.Info("bootstrapping raft", "peers", len(peers))
		n.rn = raft.StartNode(rc, peers)
		n.bootstrapped = true
	}
	return nil
}

// ReportUnreachable and ReportSnapshot forward the transport's reports to raft.
func (n *Node) ReportUnreachable(id uint64) { n.rn.ReportUnreachable(id) }

// ReportSnapshot tells raft how sending a snapshot went.
func (n *Node) ReportSnapshot(id uint64, st raft.SnapshotStatus) { n.rn.ReportSnapshot(id, st) }

// RemovedBy implements reporter: peer by answered that this node was removed.
func (n *Node) RemovedBy(by uint64) {
	if !n.removed.Load() {
		n.log.Warn("a peer answered that this node was removed from the cluster", "peer", by)
	}
	n.leave()
}

// Removed is closed once this node has applied its own removal from the cluster, or a
// peer has answered it that it was removed.
func (n *Node) Removed() <-chan struct{} { return n.removedc }

// leave marks the node removed, once.
func (n *Node) leave() {
	if n.removed.CompareAndSwap(false, true) {
		close(n.removedc)
	}
}

// isGone reports whether id is a member this node has removed (ids are never reused).
func (n *Node) isGone(id uint64) bool {
	_, ok := n.gone.Load(id)
	return ok
}

// Failed delivers the error that stopped the Ready loop (a storage failure).
func (n *Node) Failed() <-chan error { return n.failc }

// Clock returns the node's clock.
func (n *Node) Clock() *Clock { return n.clock }

// Stop shuts the node down: servers first (in-flight requests get a moment), then raft,
// then the storage (flushing what ack-before-fsync buffered).
func (n *Node) Stop() error {
	var err error
	n.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		// Clients first, while raft still talks to its peers, so that requests in
		// flight can finish; then the peer server.
		_ = n.clientSrv.Shutdown(ctx)
		close(n.stopc)
		_ = n.peerSrv.Close()
		<-n.loopDone
		n.cancel()
		n.rn.Stop()
		n.tr.stopAll()
		err = n.store.Close()
	})
	return err
}

// nextID returns a request id unique to this proposal.
func (n *Node) nextID() uint64 { return n.reqBase + n.reqSeq.Add(1) }

// setApplied publishes the applied index and wakes those waiting for it.
func (n *Node) setApplied(i uint64) {
	n.appliedMu.Lock()
	defer n.appliedMu.Unlock()
	if i <= n.applied {
		return
	}
	n.applied = i
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
}

func (n *Node) appliedIndex() uint64 {
	n.appliedMu.Lock()
	defer n.appliedMu.Unlock()
	return n.applied
}

// waitApplied blocks until the applied index reaches i.
func (n *Node) waitApplied(ctx context.Context, i uint64) error {
	for {
		n.appliedMu.Lock()
		if n.applied >= i {
			n.appliedMu.Unlock()
			return nil
		}
		ch := n.appliedCh
		n.appliedMu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-n.stopc:
			return errStopping
		}
	}
}

var errStopping = errors.New("node stopping")

// raftLogger adapts slog to raft's Logger; raft's panics go to onFatal when set.
type raftLogger struct {
	log     *slog.Logger
	onFatal func(string)
}

func (l *raftLogger) Debug(v ...any)              {}
func (l *raftLogger) Debugf(f string, v ...any)   {}
func (l *raftLogger) Info(v ...any)               { l.log.Info("raft: " + fmt.Sprint(v...)) }
func (l *raftLogger) Infof(f string, v ...any)    { l.log.Info("raft: " + fmt.Sprintf(f, v...)) }
func (l *raftLogger) Warning(v ...any)            { l.log.Warn("raft: " + fmt.Sprint(v...)) }
func (l *raftLogger) Warningf(f string, v ...any) { l.log.Warn("raft: " + fmt.Sprintf(f, v...)) }
func (l *raftLogger) Error(v ...any)              { l.log.Error("raft: " + fmt.Sprint(v...)) }
func (l *raftLogger) Errorf(f string, v ...any)   { l.log.Error("raft: " + fmt.Sprintf(f, v...)) }
func (l *raftLogger) Fatal(v ...any)              { l.die(fmt.Sprint(v...)) }
func (l *raftLogger) Fatalf(f string, v ...any)   { l.die(fmt.Sprintf(f, v...)) }
func (l *raftLogger) Panic(v ...any)              { l.die(fmt.Sprint(v...)) }
func (l *raftLogger) Panicf(f string, v ...any)   { l.die(fmt.Sprintf(f, v...)) }
func (l *raftLogger) die(msg string) {
	if l.onFatal != nil {
		l.onFatal("raft: " + msg)
	}
	panic("raft: " + msg)
}

// NewRaftLogger returns a raft.Logger over log whose panics call onFatal first (for
// raft.SetLogger, which covers raft's package-level logging too).
func NewRaftLogger(log *slog.Logger, onFatal func(string)) raft.Logger {
	return &raftLogger{log: log, onFatal: onFatal}
}
