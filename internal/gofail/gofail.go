// Package gofail is a client for the HTTP endpoint of a program built with gofail
// failpoints (go.etcd.io/gofail), such as an etcd server from etcd.FailpointBinary.
//
// Such a program serves its failpoints on the address in its GOFAIL_HTTP environment
// variable (host:port). The endpoint, as gofail v0.2.0 serves it:
//
//	GET    /            every failpoint compiled in, one "name=term" line each (term empty when inactive)
//	PUT    /name        activate name with the term in the body (204; 400 for an unknown name or a bad term)
//	PUT    /failpoints  activate several: body "a=term;b=term"
//	GET    /name/count  how often name's current term was evaluated (404 unknown, 500 inactive)
//	DELETE /name        deactivate name (204; 400 for an unknown or inactive name)
//
// A term is gofail's little language: "panic", "sleep(100)" (ms), `sleep("1s")`,
// "1*panic" (once), "50.0%return(true)", `2*return("a")->off`, …
//
// A program built without failpoints ignores GOFAIL_HTTP, so nothing listens there: every
// method then fails with an error matching ErrNoEndpoint.
package gofail

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
)

// ErrNoEndpoint matches (errors.Is) the error of a call that found nothing listening at the
// client's address (connection refused): the program is not running, was built without
// gofail failpoints, or was started without GOFAIL_HTTP or with another address.
var ErrNoEndpoint = errors.New("no gofail endpoint (connection refused): is the program running, " +
	"built with failpoints, and started with GOFAIL_HTTP at this address?")

// ErrUnknownFailpoint matches (errors.Is) the error of Set, Clear or Count for a name that
// the program does not have (not compiled in: another version, or a directory the build
// did not instrument).
var ErrUnknownFailpoint = errors.New("no such failpoint in this program")

// maxBody is how much of a response Client reads.
const maxBody = 1 << 20

// defaultHTTP is the http.Client of a Client without one: no proxy, and no kept-alive
// connections, because the program behind the endpoint is often killed and restarted on
// the same address between two calls (a PUT on a stale pooled connection is not retried).
var defaultHTTP = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}

// Client talks to one gofail endpoint. The zero value is not usable: Addr is required.
// A Client is safe for concurrent use.
type Client struct {
	// Addr is the endpoint's address as given in GOFAIL_HTTP ("127.0.0.1:2381"), or a base
	// URL ("http://10.0.0.2:2381").
	Addr string
	// HTTP is the client used for requests; nil means one without a proxy or kept-alive
	// connections. Timeouts come from the ctx of each call.
	HTTP *http.Client
}

// New returns a Client for the endpoint at addr (host:port, as in GOFAIL_HTTP).
func New(addr string) *Client { return &Client{Addr: addr} }

// List returns every failpoint the program has, mapped to its current term ("" when
// inactive). Each line of GET / is split on its first '='.
func (c *Client) List(ctx context.Context) (map[string]string, error) {
	status, body, err := c.do(ctx, http.MethodGet, "/", "")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, c.statusError(http.MethodGet, "/", status, body)
	}
	fps, err := parseList(body)
	if err != nil {
		return nil, fmt.Errorf("gofail %s: list: %w", c.Addr, err)
	}
	return fps, nil
}

// parseList parses the body of GET /: "name=term" lines; blank lines are skipped.
func parseList(body string) (map[string]string, error) {
	fps := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			continue
		}
		name, term, ok := strings.Cut(l, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("malformed line %q (want name=term)", l)
		}
		fps[name] = term
	}
	return fps, nil
}

// Set activates the failpoint name with term (like "panic" or `sleep("1s")`); it replaces
// any earlier term and restarts its count. An unknown name is an error matching
// ErrUnknownFailpoint; a term gofail cannot parse is an error with gofail's reason.
// The name "failpoints" is gofail's: it sets several at once from "a=term;b=term".
func (c *Client) Set(ctx context.Context, name, term string) error {
	if err := checkName(name); err != nil {
		return err
	}
	status, body, err := c.do(ctx, http.MethodPut, "/"+name, term)
	if err != nil {
		return err
	}
	if status != http.StatusNoContent {
		return c.statusError(http.MethodPut, "/"+name, status, body)
	}
	return nil
}

// Clear deactivates the failpoint name. Clearing an inactive failpoint is not an error;
// an unknown name is one matching ErrUnknownFailpoint.
func (c *Client) Clear(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	status, body, err := c.do(ctx, http.MethodDelete, "/"+name, "")
	if err != nil {
		return err
	}
	switch {
	case status == http.StatusNoContent:
		return nil
	case status == http.StatusBadRequest && strings.Contains(body, "is disabled"):
		return nil // gofail says "failpoint: failpoint is disabled": already inactive
	}
	return c.statusError(http.MethodDelete, "/"+name, status, body)
}

// Count returns how many times the failpoint name was reached since its term was last Set
// (gofail counts each evaluation of an active term, whether or not it fired). An inactive
// failpoint counts 0; an unknown name is an error matching ErrUnknownFailpoint.
func (c *Client) Count(ctx context.Context, name string) (int, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	path := "/" + name + "/count"
	status, body, err := c.do(ctx, http.MethodGet, path, "")
	if err != nil {
		return 0, err
	}
	switch {
	case status == http.StatusOK:
		n, err := strconv.Atoi(strings.TrimSpace(body))
		if err != nil {
			return 0, fmt.Errorf("gofail %s: GET %s: not a count: %q", c.Addr, path, body)
		}
		return n, nil
	case status == http.StatusInternalServerError && strings.Contains(body, "is disabled"):
		return 0, nil
	}
	return 0, c.statusError(http.MethodGet, path, status, body)
}

// checkName refuses a name that gofail could not have registered (failpoint names are Go
// identifiers) and that would not stay one path segment in the request URI, which gofail
// uses unescaped.
func checkName(name string) error {
	if name == "" {
		return errors.New("gofail: empty failpoint name")
	}
	for _, r := range name {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return fmt.Errorf("gofail: failpoint name %q: want letters, digits and _", name)
		}
	}
	return nil
}

// do sends one request and returns the status and (up to maxBody of) the body.
func (c *Client) do(ctx context.Context, method, path, body string) (int, string, error) {
	base := c.Addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	var rd io.Reader
	if body != "" || method == http.MethodPut {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, rd)
	if err != nil {
		return 0, "", fmt.Errorf("gofail %s: %s %s: %w", c.Addr, method, path, err)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return 0, "", fmt.Errorf("gofail %s: %s %s: %w (%w)", c.Addr, method, path, ErrNoEndpoint, err)
		}
		return 0, "", fmt.Errorf("gofail %s: %s %s: %w", c.Addr, method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, "", fmt.Errorf("gofail %s: %s %s: read the response: %w", c.Addr, method, path, err)
	}
	return resp.StatusCode, string(b), nil
}

// statusError is the error of an unexpected response, matching ErrUnknownFailpoint when
// gofail's message says the failpoint does not exist.
func (c *Client) statusError(method, path string, status int, body string) error {
	msg := strings.TrimSpace(body)
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	if strings.Contains(body, "does not exist") {
		return fmt.Errorf("gofail %s: %s %s: %w (%s: %q)", c.Addr, method, path, ErrUnknownFailpoint, http.StatusText(status), msg)
	}
	return fmt.Errorf("gofail %s: %s %s: %s: %q", c.Addr, method, path, http.StatusText(status), msg)
}
