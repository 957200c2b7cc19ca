package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/faultline/faultline/node/client"
	"go.etcd.io/raft/v3/raftpb"
)

// Status is the body of GET /status: the client package's type, one definition of the wire.
type Status = client.Status

// MemberChange is the body of POST /members.
type MemberChange struct {
	Op      string `json:"op"`
	ID      uint64 `json:"id"`
	PeerURL string `json:"peer_url,omitempty"`
}

func (n *Node) listen() error {
	for _, addr := range []string{n.cfg.ListenPeer, n.cfg.ListenClient} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			n.closeListeners()
			return fmt.Errorf("listen on %s: %w", addr, err)
		}
		n.listeners = append(n.listeners, l)
	}
	return nil
}

func (n *Node) closeListeners() {
	for _, l := range n.listeners {
		l.Close()
	}
}

// serve starts the peer and client servers on the bound listeners.
func (n *Node) serve() {
	peer := http.NewServeMux()
	peer.HandleFunc("POST /raft", n.handleRaft)
	client := http.NewServeMux()
	client.HandleFunc("GET /kv/{key}", n.handleGet)
	client.HandleFunc("PUT /kv/{key}", n.handlePut)
	client.HandleFunc("POST /kv/{key}/cas", n.handleCAS)
	client.HandleFunc("GET /list/{key}", n.handleList)
	client.HandleFunc("POST /list/{key}", n.handleAppend)
	client.HandleFunc("GET /status", n.handleStatus)
	client.HandleFunc("GET /clock", n.handleGetClock)
	client.HandleFunc("PUT /clock", n.handleSetClock)
	client.HandleFunc("POST /members", n.handleMembers)
	n.peerSrv = &http.Server{Handler: peer, ReadHeaderTimeout: 5 * time.Second}
	n.clientSrv = &http.Server{Handler: client, ReadHeaderTimeout: 5 * time.Second}
	for i, s := range []*http.Server{n.peerSrv, n.clientSrv} {
		go func(l net.Listener) {
			if err := s.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("http server stopped", "addr", l.Addr().String(), "err", err)
			}
		}(n.listeners[i])
	}
}

func (n *Node) handleRaft(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPeerRequest))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	msgs, err := decodeBatch(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, m := range msgs {
		if n.isGone(m.From) {
			http.Error(w, "member removed from the cluster", http.StatusGone)
			return
		}
		if err := n.rn.Step(r.Context(), m); err != nil {
			http.Error(w, "step: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type errorBody struct {
	Error    string `json:"error"`
	Definite bool   `json:"definite"`
}

func writeErr(w http.ResponseWriter, err error) {
	var ae *APIError
	if !errors.As(err, &ae) {
		ae = indefinite(http.StatusInternalServerError, "%v", err)
	}
	writeJSON(w, ae.Status, errorBody{Error: ae.Msg, Definite: ae.Definite})
}

// decode reads a JSON body; a bad body is a definite 400.
func decode(r *http.Request, v any) error {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(v); err != nil {
		return definite(http.StatusBadRequest, "bad request body: %v", err)
	}
	return nil
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	if err := n.ReadBarrier(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	v, ok := n.kv.Get(r.PathValue("key"))
	if !ok {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "not found", Definite: true})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"value": v})
}

func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	if err := n.ReadBarrier(r.Context()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"values": n.kv.List(r.PathValue("key"))})
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value *string `json:"value"`
	}
	n.write(w, r, &body, func() (Command, error) {
		if body.Value == nil {
			return Command{}, definite(http.StatusBadRequest, "missing \"value\"")
		}
		return Command{Op: OpPut, Key: r.PathValue("key"), Value: *body.Value}, nil
	})
}

func (n *Node) handleAppend(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value *string `json:"value"`
	}
	n.write(w, r, &body, func() (Command, error) {
		if body.Value == nil {
			return Command{}, definite(http.StatusBadRequest, "missing \"value\"")
		}
		return Command{Op: OpAppend, Key: r.PathValue("key"), Value: *body.Value}, nil
	})
}

func (n *Node) handleCAS(w http.ResponseWriter, r *http.Request) {
	var body struct {
		From *string `json:"from"`
		To   *string `json:"to"`
	}
	n.write(w, r, &body, func() (Command, error) {
		if body.From == nil || body.To == nil {
			return Command{}, definite(http.StatusBadRequest, "want \"from\" and \"to\"")
		}
		return Command{Op: OpCAS, Key: r.PathValue("key"), From: *body.From, Value: *body.To}, nil
	})
}

// write decodes body, builds the command and proposes it.
func (n *Node) write(w http.ResponseWriter, r *http.Request, body any, build func() (Command, error)) {
	if err := decode(r, body); err != nil {
		writeErr(w, err)
		return
	}
	c, err := build()
	if err == nil {
		err = n.Propose(r.Context(), c)
	}
	if err != nil {
		writeErr(w, err)
		return
	}
	// 200 with no body (Content-Length: 0): an ok write carries nothing, and a client
	// that closes an answer without reading it (as many load generators and the
	// simplest clients do) keeps its connection only when there is nothing to read; with
	// a body, Go's client, for one, closes it, and every write paid a new connection.
	w.WriteHeader(http.StatusOK)
}

// Status returns the node's view of the cluster.
func (n *Node) Status() Status {
	return Status{ID: n.cfg.ID, Term: n.term.Load(), Leader: n.lead.Load(), Commit: n.commit.Load(),
		Applied: n.appliedIndex(), Members: n.kv.Members(), Unsafe: string(n.cfg.Unsafe), Removed: n.removed.Load()}
}

func (n *Node) handleStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.Status())
}

func (n *Node) handleGetClock(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.clock.Setting())
}

func (n *Node) handleSetClock(w http.ResponseWriter, r *http.Request) {
	var s ClockSetting
	if err := decode(r, &s); err != nil {
		writeErr(w, err)
		return
	}
	if s.Rate < 0 || s.Rate > 1000 {
		writeErr(w, definite(http.StatusBadRequest, "rate must be in [0, 1000]"))
		return
	}
	n.clock.Set(s)
	n.log.Warn("clock changed", "offset_ms", s.OffsetMS, "rate", s.Rate)
	writeJSON(w, http.StatusOK, n.clock.Setting())
}

func (n *Node) handleMembers(w http.ResponseWriter, r *http.Request) {
	var mc MemberChange
	if err := decode(r, &mc); err != nil {
		writeErr(w, err)
		return
	}
	cc := raftpb.ConfChange{NodeID: mc.ID}
	switch {
	case mc.ID == 0:
		writeErr(w, definite(http.StatusBadRequest, "member id must be positive"))
		return
	case mc.Op == "add" && mc.PeerURL != "":
		cc.Type, cc.Context = raftpb.ConfChangeAddNode, []byte(mc.PeerURL)
	case mc.Op == "remove":
		cc.Type = raftpb.ConfChangeRemoveNode
	default:
		writeErr(w, definite(http.StatusBadRequest, "want op add (with peer_url) or remove"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), ProposalTimeout)
	defer cancel()
	if err := n.ChangeMember(ctx, cc); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, http.StatusOK, n.Status())
}
