// Command hashiraft is a small replicated key-value service on github.com/hashicorp/raft
// (the consensus of Consul and Nomad), with its log and stable store in BoltDB
// (raft-boltdb, fsync on every append) and snapshots on disk. It speaks faultline's
// http protocol (docs/protocol.md), so examples/hashiraft.yaml tests it with no Go code
// in faultline. None of its consensus code is faultline's.
//
//	hashiraft --id 1 --peers 1=10.0.0.1:7001,2=10.0.0.2:7001,3=10.0.0.3:7001 \
//	  --listen-raft 10.0.0.1:7001 --advertise-raft 10.0.0.1:7001 \
//	  --listen-client 10.0.0.1:8001 --data-dir /var/lib/hashiraft
//
// Only the leader serves: a follower refuses every operation, definitely, "not the
// leader". Writes are raft.Apply; reads go through raft.Barrier first (an entry of the
// leader's term, committed and applied: the read sees every write acknowledged before
// it), unless --reads local, which reads the local state at once on any node: known
// unsafe (a deposed leader or a follower answers stale values), there to be caught.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "hashiraft:", err)
		os.Exit(1)
	}
}

func run() error {
	var id, peers, listenRaft, advertise, listenClient, dataDir, reads string
	flag.StringVar(&id, "id", "", "this server's raft id")
	flag.StringVar(&peers, "peers", "", "the initial cluster: id=host:port,... (raft addresses)")
	flag.StringVar(&listenRaft, "listen-raft", "", "host:port the raft transport listens on")
	flag.StringVar(&advertise, "advertise-raft", "", "host:port the other servers reach this one's raft transport at")
	flag.StringVar(&listenClient, "listen-client", "", "host:port of the HTTP API")
	flag.StringVar(&dataDir, "data-dir", "", "where the raft log, stable store and snapshots live")
	flag.StringVar(&reads, "reads", "barrier", "barrier (linearizable) or local (unsafe: stale reads)")
	flag.Parse()
	if id == "" || peers == "" || listenRaft == "" || listenClient == "" || dataDir == "" {
		return errors.New("--id, --peers, --listen-raft, --listen-client and --data-dir are required")
	}
	if reads != "barrier" && reads != "local" {
		return fmt.Errorf("--reads %q: barrier or local", reads)
	}
	if advertise == "" {
		advertise = listenRaft
	}
	r, fsm, err := start(id, peers, listenRaft, advertise, dataDir)
	if err != nil {
		return err
	}
	api := &api{r: r, fsm: fsm, id: id, localReads: reads == "local"}
	srv := &http.Server{Addr: listenClient, Handler: api.mux(), ReadHeaderTimeout: 5 * time.Second}
	ln, err := net.Listen("tcp", listenClient)
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ln) }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	_ = srv.Close()
	return r.Shutdown().Error()
}

// start opens the stores, and starts raft, bootstrapping the cluster on first start.
func start(id, peers, listen, advertise, dir string) (*raft.Raft, *fsm, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	cfg := raft.DefaultConfig()
	cfg.LocalID = raft.ServerID(id)
	cfg.HeartbeatTimeout, cfg.ElectionTimeout = 500*time.Millisecond, 500*time.Millisecond
	cfg.LeaderLeaseTimeout = 250 * time.Millisecond
	cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "raft", Output: os.Stderr, Level: hclog.Info})
	store, err := raftboltdb.NewBoltStore(filepath.Join(dir, "raft.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("bolt store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStore(dir, 2, os.Stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("snapshot store: %w", err)
	}
	addr, err := net.ResolveTCPAddr("tcp", advertise)
	if err != nil {
		return nil, nil, fmt.Errorf("--advertise-raft: %w", err)
	}
	trans, err := raft.NewTCPTransport(listen, addr, 3, 2*time.Second, os.Stderr)
	if err != nil {
		return nil, nil, fmt.Errorf("transport: %w", err)
	}
	// Bootstrap before raft runs: a node bootstrapped by the raft it has started may hear
	// from a peer's leader first (its term then is state, and bootstrap refuses), which
	// a slow start (a busy machine, a container) made happen.
	known, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return nil, nil, err
	}
	if !known {
		var servers []raft.Server
		for _, p := range strings.Split(peers, ",") {
			pid, paddr, ok := strings.Cut(p, "=")
			if !ok {
				return nil, nil, fmt.Errorf("--peers: %q is not id=host:port", p)
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(pid), Address: raft.ServerAddress(paddr)})
		}
		if err := raft.BootstrapCluster(cfg, store, store, snaps, trans, raft.Configuration{Servers: servers}); err != nil {
			return nil, nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	f := newFSM()
	r, err := raft.NewRaft(cfg, f, store, store, snaps, trans)
	if err != nil {
		return nil, nil, err
	}
	return r, f, nil
}

// api is the http protocol over raft.
type api struct {
	r          *raft.Raft
	fsm        *fsm
	id         string
	localReads bool
}

func (a *api) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /kv/{key}", a.get)
	m.HandleFunc("PUT /kv/{key}", a.put)
	m.HandleFunc("POST /kv/{key}/cas", a.cas)
	m.HandleFunc("GET /list/{key}", a.list)
	m.HandleFunc("POST /list/{key}", a.appendTo)
	m.HandleFunc("GET /status", a.status)
	return m
}

// reply writes the http protocol's answers: 200 with a body, or an error with whether
// it is definite (the operation did not and will not take effect).
func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func replyErr(w http.ResponseWriter, status int, definite bool, err error) {
	reply(w, status, map[string]any{"error": err.Error(), "definite": definite})
}

// readBarrier makes a read linearizable: a barrier entry committed in this leader's
// term and applied, so every write acknowledged before the read is in the state.
func (a *api) readBarrier(w http.ResponseWriter) bool {
	if a.localReads {
		return true
	}
	if err := a.r.Barrier(2 * time.Second).Error(); err != nil {
		replyErr(w, http.StatusServiceUnavailable, true, fmt.Errorf("read barrier: %w", err)) // a read changes nothing
		return false
	}
	return true
}

func (a *api) get(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w) {
		return
	}
	v, ok := a.fsm.get(r.PathValue("key"))
	if !ok {
		replyErr(w, http.StatusNotFound, true, errors.New("not found"))
		return
	}
	reply(w, http.StatusOK, map[string]string{"value": v})
}

func (a *api) list(w http.ResponseWriter, r *http.Request) {
	if !a.readBarrier(w) {
		return
	}
	reply(w, http.StatusOK, map[string][]string{"values": a.fsm.list(r.PathValue("key"))})
}

func (a *api) put(w http.ResponseWriter, r *http.Request) {
	var b struct{ Value *string }
	a.apply(w, r, &b, func() command { return command{Op: "put", Key: r.PathValue("key"), Value: deref(b.Value)} })
}

func (a *api) appendTo(w http.ResponseWriter, r *http.Request) {
	var b struct{ Value *string }
	a.apply(w, r, &b, func() command { return command{Op: "append", Key: r.PathValue("key"), Value: deref(b.Value)} })
}

func (a *api) cas(w http.ResponseWriter, r *http.Request) {
	var b struct{ From, To *string }
	a.apply(w, r, &b, func() command {
		return command{Op: "cas", Key: r.PathValue("key"), From: deref(b.From), Value: deref(b.To)}
	})
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// apply decodes the body, and applies the command through raft. Errors that raft
// returns before the entry is in the leader's log are definite; any other, a lost
// leadership above all, is not.
func (a *api) apply(w http.ResponseWriter, r *http.Request, body any, cmd func() command) {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(body); err != nil {
		replyErr(w, http.StatusBadRequest, true, fmt.Errorf("bad request body: %w", err))
		return
	}
	b, _ := json.Marshal(cmd())
	f := a.r.Apply(b, 2*time.Second)
	if err := f.Error(); err != nil {
		definite := errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipTransferInProgress) ||
			errors.Is(err, raft.ErrEnqueueTimeout)
		replyErr(w, http.StatusServiceUnavailable, definite, err)
		return
	}
	if err, _ := f.Response().(error); err != nil {
		replyErr(w, http.StatusConflict, true, err) // the cas did not match: nothing changed
		return
	}
	reply(w, http.StatusOK, struct{}{})
}

// status is {"id": this server's id, "leader": the leader's id ("" if none)}.
func (a *api) status(w http.ResponseWriter, _ *http.Request) {
	_, leader := a.r.LeaderWithID()
	reply(w, http.StatusOK, map[string]string{"id": a.id, "leader": string(leader), "state": a.r.State().String()})
}
