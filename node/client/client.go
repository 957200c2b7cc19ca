// Package client is the Go client of raftnode's HTTP/JSON API (see package node).
//
// Every error it returns says whether the operation definitely did not take effect:
// errors.As(err, &d) with d an interface{ Definite() bool } finds the answer. A server
// error carries the server's verdict; a request that never left (the dial failed) is
// definite; a timeout or a connection lost after sending is not.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Client talks to one raftnode.
type Client struct {
	base string
	hc   *http.Client
}

// New returns a client of the node at baseURL (e.g. "http://127.0.0.1:8001"); a nil hc
// means http.DefaultClient.
func New(baseURL string, hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{base: strings.TrimSuffix(baseURL, "/"), hc: hc}
}

// Error is an error answered by the node, or a transport failure (Status 0).
type Error struct {
	Status int
	Msg    string
	// IsDefinite is true when the operation did not and will not take effect.
	IsDefinite bool
	// Err is the underlying transport error, if any.
	Err error
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("raftnode: %s", e.Msg)
	}
	return fmt.Sprintf("raftnode: %d: %s", e.Status, e.Msg)
}

// Definite reports whether the operation did not and will not take effect.
func (e *Error) Definite() bool { return e.IsDefinite }

// Unwrap returns the transport error.
func (e *Error) Unwrap() error { return e.Err }

// Is makes every 409 answer match ErrCASMismatch.
func (e *Error) Is(target error) bool {
	return target == ErrCASMismatch && e.Status == http.StatusConflict
}

// ErrCASMismatch is the (definite) error of a CAS whose from did not match.
var ErrCASMismatch = &Error{Status: http.StatusConflict, Msg: "cas mismatch", IsDefinite: true}

// Status is the node's GET /status answer.
type Status struct {
	ID      uint64   `json:"id"`
	Term    uint64   `json:"term"`
	Leader  uint64   `json:"leader"`
	Commit  uint64   `json:"commit"`
	Applied uint64   `json:"applied"`
	Members []Member `json:"members"`
	Unsafe  string   `json:"unsafe,omitempty"`
	Removed bool     `json:"removed,omitempty"`
}

// Member is one raft member.
type Member struct {
	ID      uint64 `json:"id"`
	PeerURL string `json:"peer_url"`
}

// Clock is the node's clock setting: offset (a jump) and rate (1 is normal).
type Clock struct {
	OffsetMS int64   `json:"offset_ms"`
	Rate     float64 `json:"rate"`
}

// keyPath is the escaped path segment of key. "", "." and ".." cannot be a path
// segment, so they are refused (definitely) rather than sent.
func keyPath(key string) (string, error) {
	if key == "" || key == "." || key == ".." {
		return "", &Error{Msg: fmt.Sprintf("invalid key %q", key), IsDefinite: true}
	}
	return url.PathEscape(key), nil
}

// Get reads a register; found is false for a missing key.
func (c *Client) Get(ctx context.Context, key string) (string, bool, error) {
	var out struct {
		Value string `json:"value"`
	}
	k, err := keyPath(key)
	if err != nil {
		return "", false, err
	}
	err = c.do(ctx, http.MethodGet, "/kv/"+k, nil, &out)
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusNotFound {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return out.Value, true, nil
}

// Put writes a register.
func (c *Client) Put(ctx context.Context, key, value string) error {
	k, err := keyPath(key)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPut, "/kv/"+k, map[string]string{"value": value}, nil)
}

// CAS sets key to to if its value is from; otherwise it returns ErrCASMismatch (also
// for a missing key).
func (c *Client) CAS(ctx context.Context, key, from, to string) error {
	k, err := keyPath(key)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/kv/"+k+"/cas", map[string]string{"from": from, "to": to}, nil)
}

// Append appends value to the list at key.
func (c *Client) Append(ctx context.Context, key, value string) error {
	k, err := keyPath(key)
	if err != nil {
		return err
	}
	return c.do(ctx, http.MethodPost, "/list/"+k, map[string]string{"value": value}, nil)
}

// List reads the list at key (empty for a missing key).
func (c *Client) List(ctx context.Context, key string) ([]string, error) {
	var out struct {
		Values []string `json:"values"`
	}
	k, err := keyPath(key)
	if err != nil {
		return nil, err
	}
	if err := c.do(ctx, http.MethodGet, "/list/"+k, nil, &out); err != nil {
		return nil, err
	}
	if out.Values == nil {
		out.Values = []string{}
	}
	return out.Values, nil
}

// Status returns the node's view of the cluster.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/status", nil, &st)
	return st, err
}

// Clock returns the node's clock setting.
func (c *Client) Clock(ctx context.Context) (Clock, error) {
	var cl Clock
	err := c.do(ctx, http.MethodGet, "/clock", nil, &cl)
	return cl, err
}

// SetClock sets the node's clock offset and rate.
func (c *Client) SetClock(ctx context.Context, cl Clock) error {
	return c.do(ctx, http.MethodPut, "/clock", cl, nil)
}

// AddMember adds a member through a raft ConfChange; it returns once the change is
// applied on the node asked.
func (c *Client) AddMember(ctx context.Context, id uint64, peerURL string) error {
	return c.do(ctx, http.MethodPost, "/members", map[string]any{"op": "add", "id": id, "peer_url": peerURL}, nil)
}

// RemoveMember removes a member through a raft ConfChange.
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	return c.do(ctx, http.MethodPost, "/members", map[string]any{"op": "remove", "id": id}, nil)
}

// do sends one request and decodes a 200 answer into out.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return &Error{Msg: fmt.Sprintf("encode request: %v", err), IsDefinite: true, Err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return &Error{Msg: fmt.Sprintf("build request: %v", err), IsDefinite: true, Err: err}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Msg: fmt.Sprintf("%s %s: %v", method, path, err), IsDefinite: neverSent(err), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: read answer: %v", method, path, err), Err: err}
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error    string `json:"error"`
			Definite bool   `json:"definite"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &Error{Status: resp.StatusCode, Msg: e.Error, IsDefinite: e.Definite}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &Error{Status: resp.StatusCode, Msg: fmt.Sprintf("%s %s: decode answer: %v", method, path, err), Err: err}
	}
	return nil
}

// neverSent reports whether a transport error happened while dialing: the request
// never left, so the operation cannot have taken effect.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
