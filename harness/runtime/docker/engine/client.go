// Package engine is a small client of the Docker Engine HTTP API: the calls the docker
// runtime makes (containers, networks, images, volumes), with typed requests and
// responses that hold only the fields faultline uses. It speaks JSON over net/http, to
// a unix socket or over TCP (optionally TLS), and links nothing beyond the standard
// library.
//
// Contracts shared by every call:
//   - ctx is honoured: cancelling it aborts the request, or the stream it returned.
//   - The API version is fixed by Config.APIVersion (DOCKER_API_VERSION), else negotiated
//     once, at the first call, from the daemon's /_ping: the lower of MaxAPIVersion and
//     the daemon's API-Version. A daemon below MinAPIVersion is refused.
//   - A status of 400 or above is returned as an *Error carrying the call, the status and
//     the daemon's message; IsNotFound and IsConflict classify it. Other statuses
//     (including 304, "already started/stopped") are success.
package engine

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// DefaultHost is the daemon's address when DOCKER_HOST is not set.
	DefaultHost = "unix:///var/run/docker.sock"
	// MaxAPIVersion is the highest API version this client asks for. Every field it
	// sends or reads means the same from MinAPIVersion up to this one.
	MaxAPIVersion = "1.56"
	// MinAPIVersion is the lowest API version this client speaks: a daemon offering
	// less is refused at negotiation.
	MinAPIVersion = "1.40"
)

// Config says where the daemon is and how to speak to it.
type Config struct {
	// Host is "unix:///path/to/socket" or "tcp://host:port[/base/path]"; "" is
	// DefaultHost.
	Host string
	// APIVersion ("1.41") fixes the version and turns negotiation off; "" negotiates.
	APIVersion string
	// TLS, for a tcp host, makes the client speak https with it.
	TLS *tls.Config
}

// ConfigFromEnv reads the configuration from the environment as the docker CLI's
// client library does: DOCKER_HOST (the address), DOCKER_API_VERSION (a fixed version),
// DOCKER_CERT_PATH (a directory with ca.pem, cert.pem and key.pem: TLS with them) and
// DOCKER_TLS_VERIFY (when set and not empty, the daemon's certificate is verified
// against ca.pem; else it is not). TLS is used only when DOCKER_CERT_PATH is set.
func ConfigFromEnv() (Config, error) {
	cfg := Config{Host: os.Getenv("DOCKER_HOST")}
	if v := strings.TrimPrefix(strings.TrimSpace(os.Getenv("DOCKER_API_VERSION")), "v"); v != "" {
		if _, _, err := parseVersion(v); err != nil {
			return Config{}, fmt.Errorf("DOCKER_API_VERSION: %w", err)
		}
		cfg.APIVersion = v
	}
	if dir := os.Getenv("DOCKER_CERT_PATH"); dir != "" {
		tc, err := tlsFromDir(dir, os.Getenv("DOCKER_TLS_VERIFY") != "")
		if err != nil {
			return Config{}, fmt.Errorf("DOCKER_CERT_PATH=%s: %w", dir, err)
		}
		cfg.TLS = tc
	}
	return cfg, nil
}

// tlsFromDir is the TLS configuration of a docker cert directory: the client's
// certificate (cert.pem, key.pem) if it has one, and with verify the CA (ca.pem) that
// the daemon's certificate must chain to.
func tlsFromDir(dir string, verify bool) (*tls.Config, error) {
	// Without verify (DOCKER_TLS_VERIFY unset) the daemon's certificate is not checked,
	// as the docker CLI's library does.
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify}
	if verify {
		pem, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("ca.pem holds no certificate")
		}
		tc.RootCAs = pool
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	_, errCert := os.Stat(certFile)
	_, errKey := os.Stat(keyFile)
	if errCert == nil || errKey == nil { // one alone is an error, from LoadX509KeyPair
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// Client is a connection to one daemon. It is safe for concurrent use.
type Client struct {
	host string // as configured, e.g. unix:///var/run/docker.sock
	base string // scheme://authority[/base path], requests go to base + /v<version> + path
	hc   *http.Client
	tr   *http.Transport
	// negotiate: the version is to be negotiated (none was fixed). negMu makes one
	// negotiation at a time; verMu guards version.
	negotiate bool
	negMu     sync.Mutex
	verMu     sync.Mutex
	version   string // "" until negotiated
}

// FromEnv returns a client configured by ConfigFromEnv.
func FromEnv() (*Client, error) {
	cfg, err := ConfigFromEnv()
	if err != nil {
		return nil, err
	}
	return New(cfg)
}

// New returns a client for cfg. It does not connect: the first call does.
func New(cfg Config) (*Client, error) {
	host := cfg.Host
	if host == "" {
		host = DefaultHost
	}
	proto, addr, ok := strings.Cut(host, "://")
	if !ok || addr == "" {
		return nil, fmt.Errorf("docker host %q: want unix:///path or tcp://host:port", host)
	}
	tr := &http.Transport{MaxIdleConns: 6, IdleConnTimeout: 30 * time.Second}
	var base string
	switch proto {
	case "unix":
		if cfg.TLS != nil {
			return nil, fmt.Errorf("docker host %q: TLS over a unix socket is not supported", host)
		}
		sock := addr
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
		// The authority is a placeholder: the dialer ignores it.
		base = "http://docker.localhost"
	case "tcp":
		u, err := url.Parse("tcp://" + addr)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("docker host %q: bad address", host)
		}
		scheme := "http"
		if cfg.TLS != nil {
			scheme = "https"
			tr.TLSClientConfig = cfg.TLS
		}
		tr.Proxy = http.ProxyFromEnvironment
		base = scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/")
	default:
		return nil, fmt.Errorf("docker host %q: scheme %s is not supported (unix or tcp)", host, proto)
	}
	c := &Client{host: host, base: base, tr: tr,
		hc: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // the API does not redirect; a 3xx is returned as is
		}}}
	if cfg.APIVersion != "" {
		v := strings.TrimPrefix(cfg.APIVersion, "v")
		if _, _, err := parseVersion(v); err != nil {
			return nil, err
		}
		c.version = v
	} else {
		c.negotiate = true
	}
	return c, nil
}

// Close releases the client's idle connections. Streams still open stay open.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}

// Host returns the daemon's address as configured (DefaultHost when none was).
func (c *Client) Host() string { return c.host }

// APIVersion returns the API version in use: the fixed one, or the negotiated one
// ("" before a call negotiated it).
func (c *Client) APIVersion() string {
	c.verMu.Lock()
	defer c.verMu.Unlock()
	return c.version
}

// PingResult is what the daemon says of itself in the headers of /_ping.
type PingResult struct {
	APIVersion string // the daemon's highest API version
	OSType     string // "linux", "windows"; "" from old daemons
}

// Ping asks the daemon's /_ping (unversioned), and negotiates the API version with its
// answer if that is not done yet.
func (c *Client) Ping(ctx context.Context) (PingResult, error) {
	if c.negotiate && c.APIVersion() == "" {
		p, pinged, err := c.negotiateVersion(ctx)
		if pinged || err != nil {
			return p, err
		}
	}
	return c.ping(ctx)
}

// negotiateVersion sets the version from the daemon's ping unless another call did so
// meanwhile (then it does not ping: pinged is false).
func (c *Client) negotiateVersion(ctx context.Context) (p PingResult, pinged bool, err error) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	if c.APIVersion() != "" {
		return PingResult{}, false, nil
	}
	p, err = c.ping(ctx)
	if err != nil {
		return p, true, err
	}
	v, err := negotiated(p.APIVersion)
	if err != nil {
		return p, true, err
	}
	c.verMu.Lock()
	c.version = v
	c.verMu.Unlock()
	return p, true, nil
}

func (c *Client) ping(ctx context.Context) (PingResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/_ping", nil)
	if err != nil {
		return PingResult{}, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return PingResult{}, fmt.Errorf("docker GET /_ping: %w", transportError(err))
	}
	defer drain(resp.Body)
	p := PingResult{APIVersion: resp.Header.Get("Api-Version"), OSType: resp.Header.Get("Ostype")}
	if err := responseError("GET /_ping", resp); err != nil {
		return p, err
	}
	return p, nil
}

// negotiated is the version to speak to a daemon whose highest is daemon: the lower of
// it and MaxAPIVersion (MaxAPIVersion when the daemon does not say).
func negotiated(daemon string) (string, error) {
	if daemon == "" {
		return MaxAPIVersion, nil
	}
	daemon = strings.TrimPrefix(daemon, "v")
	if _, _, err := parseVersion(daemon); err != nil {
		return "", fmt.Errorf("the daemon's API version: %w", err)
	}
	if versionLess(daemon, MinAPIVersion) {
		return "", fmt.Errorf("the daemon's API version %s is below %s, the lowest this client speaks", daemon, MinAPIVersion)
	}
	if versionLess(daemon, MaxAPIVersion) {
		return daemon, nil
	}
	return MaxAPIVersion, nil
}

// apiVersion returns the version to put in a request's path, negotiating it first if
// needed (a failed negotiation is retried by the next call).
func (c *Client) apiVersion(ctx context.Context) (string, error) {
	if v := c.APIVersion(); v != "" {
		return v, nil
	}
	if _, _, err := c.negotiateVersion(ctx); err != nil {
		return "", fmt.Errorf("negotiate the API version: %w", err)
	}
	return c.APIVersion(), nil
}

// parseVersion parses "major.minor".
func parseVersion(v string) (major, minor int, err error) {
	a, b, ok := strings.Cut(v, ".")
	if ok {
		major, err = strconv.Atoi(a)
		if err == nil {
			minor, err = strconv.Atoi(b)
		}
	}
	if !ok || err != nil || major < 0 || minor < 0 {
		return 0, 0, fmt.Errorf("API version %q: want <major>.<minor>", v)
	}
	return major, minor, nil
}

// versionLess reports a < b for well-formed versions.
func versionLess(a, b string) bool {
	am, an, _ := parseVersion(a)
	bm, bn, _ := parseVersion(b)
	return am < bm || am == bm && an < bn
}

// Error is a daemon's refusal: a response with a status of 400 or above.
type Error struct {
	Call       string // "POST /containers/create"
	StatusCode int
	Message    string // the daemon's {"message": ...}, or the body's text
}

func (e *Error) Error() string {
	return fmt.Sprintf("docker %s: %d %s: %s", e.Call, e.StatusCode, http.StatusText(e.StatusCode), e.Message)
}

// IsNotFound reports whether err is (or wraps) the daemon's 404: no such container,
// network, image or volume.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }

// IsConflict reports whether err is (or wraps) the daemon's 409: the name is taken,
// the object is in use, the container is already paused, and the like.
func IsConflict(err error) bool { return statusIs(err, http.StatusConflict) }

func statusIs(err error, code int) bool {
	var e *Error
	return errors.As(err, &e) && e.StatusCode == code
}

// responseError returns the *Error for a response with a status of 400 or above (nil
// otherwise). It reads the body, not closing it.
func responseError(call string, resp *http.Response) error {
	if resp.StatusCode < 400 {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	msg := strings.TrimSpace(string(b))
	var m struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &m) == nil && m.Message != "" {
		msg = m.Message
	}
	if msg == "" {
		msg = "(no message)"
	}
	return &Error{Call: call, StatusCode: resp.StatusCode, Message: msg}
}

// transportError is err without the *url.Error around it, which repeats the method
// and, for a unix socket, a placeholder URL.
func transportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// drain reads what is left of a body (so that its connection can be reused) and
// closes it.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 1<<16))
	body.Close()
}

// request is one call to the versioned API.
type request struct {
	method string
	path   string // "/containers/create", without the version
	query  url.Values
	body   io.Reader
	ctype  string // the body's Content-Type
}

// do sends r and returns the response of a successful call, whose body the caller
// closes; a refusal is an *Error.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	call := r.method + " " + r.path
	if strings.Contains(r.path, "//") || strings.HasSuffix(r.path, "/") {
		return nil, fmt.Errorf("docker %s: an empty id or name", call)
	}
	v, err := c.apiVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", call, err)
	}
	u := c.base + "/v" + v + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, r.body)
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", call, err)
	}
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("docker %s: %w", call, transportError(err))
	}
	if err := responseError(call, resp); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// call sends r with in (when not nil) as its JSON body and decodes the JSON answer into
// out (when not nil).
func (c *Client) call(ctx context.Context, r request, in, out any) error {
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("docker %s %s: %w", r.method, r.path, err)
		}
		r.body, r.ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, r)
	if err != nil {
		return err
	}
	defer drain(resp.Body)
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("docker %s %s: read the answer: %w", r.method, r.path, err)
		}
	}
	return nil
}

// Filters select objects in the list calls: key ("label", "name", ...) to the values
// any of which an object must match (for "label": "key" or "key=value").
type Filters map[string][]string

// encode is the daemon's form of the filters: {"label":{"k=v":true}}.
func (f Filters) encode() string {
	m := make(map[string]map[string]bool, len(f))
	for k, vs := range f {
		m[k] = make(map[string]bool, len(vs))
		for _, v := range vs {
			m[k][v] = true
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// listQuery is the query of a list call with filters f.
func listQuery(f Filters) url.Values {
	q := url.Values{}
	if len(f) > 0 {
		q.Set("filters", f.encode())
	}
	return q
}

// id escapes an object's id, name or image reference for a path; the slashes of a
// reference (registry/repo:tag) stay as they are, as the daemon expects them.
func id(s string) string {
	parts := strings.Split(s, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}
