package gofail

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGofail answers like the HTTP endpoint of gofail v0.2.0 (runtime/http.go): the key
// is the raw request URI, statuses and messages as gofail's.
type fakeGofail struct {
	mu  sync.Mutex
	fps map[string]*fakeFP
}

type fakeFP struct {
	term  string // "" when inactive
	count int
}

func newFake(names ...string) *fakeGofail {
	f := &fakeGofail{fps: map[string]*fakeFP{}}
	for _, n := range names {
		f.fps[n] = &fakeFP{}
	}
	return f
}

// reach is the program passing the failpoint: an active one counts.
func (f *fakeGofail) reach(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fp := f.fps[name]; fp != nil && fp.term != "" {
		fp.count++
	}
}

// validTerm is a rough stand-in for gofail's term parser.
func validTerm(t string) bool {
	for _, a := range []string{"off", "return", "sleep", "panic", "break", "print"} {
		if strings.Contains(t, a) {
			return true
		}
	}
	return false
}

func (f *fakeGofail) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := strings.TrimPrefix(r.RequestURI, "/")
	switch r.Method {
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		fp := f.fps[key]
		if fp == nil {
			http.Error(w, "fail to set failpoint: failpoint: failpoint does not exist", http.StatusBadRequest)
			return
		}
		if !validTerm(string(b)) {
			http.Error(w, "fail to set failpoint: failpoint: could not parse terms", http.StatusBadRequest)
			return
		}
		fp.term, fp.count = string(b), 0
		w.WriteHeader(http.StatusNoContent)
	case http.MethodGet:
		switch {
		case key == "":
			var names []string
			for n := range f.fps {
				names = append(names, n)
			}
			sort.Strings(names)
			lines := make([]string, len(names))
			for i, n := range names {
				lines[i] = n + "=" + f.fps[n].term
			}
			_, _ = w.Write([]byte(strings.Join(lines, "\n") + "\n"))
		case strings.HasSuffix(key, "/count"):
			fp := f.fps[strings.TrimSuffix(key, "/count")]
			switch {
			case fp == nil:
				http.Error(w, "failed to GET: failpoint: failpoint does not exist", http.StatusNotFound)
			case fp.term == "":
				http.Error(w, "failed to GET: failpoint: failpoint is disabled", http.StatusInternalServerError)
			default:
				_, _ = w.Write([]byte(strconv.Itoa(fp.count)))
			}
		default:
			http.Error(w, "not used by the client", http.StatusTeapot)
		}
	case http.MethodDelete:
		fp := f.fps[key]
		switch {
		case fp == nil:
			http.Error(w, "failed to delete failpoint failpoint: failpoint does not exist", http.StatusBadRequest)
		case fp.term == "":
			http.Error(w, "failed to delete failpoint failpoint: failpoint is disabled", http.StatusBadRequest)
		default:
			fp.term, fp.count = "", 0
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
	}
}

func startFake(t *testing.T, names ...string) (*fakeGofail, *Client) {
	t.Helper()
	f := newFake(names...)
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, New(strings.TrimPrefix(srv.URL, "http://"))
}

func TestGofailListSetCountClear(t *testing.T) {
	f, c := startFake(t, "raftBeforeSave", "defragBeforeCopy", "beforeCommit")
	ctx := context.Background()

	got, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got["raftBeforeSave"] != "" || got["defragBeforeCopy"] != "" {
		t.Fatalf("List = %q", got)
	}

	if err := c.Set(ctx, "raftBeforeSave", "panic"); err != nil {
		t.Fatal(err)
	}
	// A term may hold '=': the line is split on the first.
	if err := c.Set(ctx, "beforeCommit", `return("a=b")`); err != nil {
		t.Fatal(err)
	}
	got, err = c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["raftBeforeSave"] != "panic" || got["beforeCommit"] != `return("a=b")` || got["defragBeforeCopy"] != "" {
		t.Fatalf("List after Set = %q", got)
	}

	if n, err := c.Count(ctx, "raftBeforeSave"); err != nil || n != 0 {
		t.Fatalf("Count before = %d, %v", n, err)
	}
	f.reach("raftBeforeSave")
	f.reach("raftBeforeSave")
	if n, err := c.Count(ctx, "raftBeforeSave"); err != nil || n != 2 {
		t.Fatalf("Count after two = %d, %v", n, err)
	}
	// Inactive: gofail answers 500 "is disabled"; the client says 0.
	if n, err := c.Count(ctx, "defragBeforeCopy"); err != nil || n != 0 {
		t.Fatalf("Count(inactive) = %d, %v", n, err)
	}

	if err := c.Clear(ctx, "raftBeforeSave"); err != nil {
		t.Fatal(err)
	}
	// Clearing again (gofail: 400 "is disabled") is fine.
	if err := c.Clear(ctx, "raftBeforeSave"); err != nil {
		t.Fatalf("second Clear = %v", err)
	}
	got, err = c.List(ctx)
	if err != nil || got["raftBeforeSave"] != "" {
		t.Fatalf("List after Clear = %q, %v", got, err)
	}
}

func TestGofailUnknownAndBadTerm(t *testing.T) {
	_, c := startFake(t, "raftBeforeSave")
	ctx := context.Background()
	if err := c.Set(ctx, "nope", "panic"); !errors.Is(err, ErrUnknownFailpoint) {
		t.Errorf("Set(unknown) = %v, want ErrUnknownFailpoint", err)
	}
	if err := c.Clear(ctx, "nope"); !errors.Is(err, ErrUnknownFailpoint) {
		t.Errorf("Clear(unknown) = %v, want ErrUnknownFailpoint", err)
	}
	if _, err := c.Count(ctx, "nope"); !errors.Is(err, ErrUnknownFailpoint) {
		t.Errorf("Count(unknown) = %v, want ErrUnknownFailpoint", err)
	}
	err := c.Set(ctx, "raftBeforeSave", "bogus")
	if err == nil || errors.Is(err, ErrUnknownFailpoint) || !strings.Contains(err.Error(), "could not parse terms") {
		t.Errorf("Set(bad term) = %v, want gofail's reason", err)
	}
	for _, name := range []string{"", "a/b", "a b", "x?y", "../x"} {
		if err := c.Set(ctx, name, "panic"); err == nil {
			t.Errorf("Set(%q) = nil, want an error", name)
		}
	}
}

func TestGofailNoEndpoint(t *testing.T) {
	// A port nothing listens on: take one, then free it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := New(addr)
	ctx := context.Background()
	if _, err := c.List(ctx); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("List = %v, want ErrNoEndpoint", err)
	}
	if err := c.Set(ctx, "raftBeforeSave", "panic"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Set = %v, want ErrNoEndpoint", err)
	}
	if err := c.Clear(ctx, "raftBeforeSave"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Clear = %v, want ErrNoEndpoint", err)
	}
	if _, err := c.Count(ctx, "raftBeforeSave"); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("Count = %v, want ErrNoEndpoint", err)
	}
}

// Anything else than a refused connection is not ErrNoEndpoint: here, a server that
// does not answer in time.
func TestGofailTimeoutIsNotNoEndpoint(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := New(srv.URL).List(ctx)
	if err == nil || errors.Is(err, ErrNoEndpoint) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List = %v, want a deadline error that is not ErrNoEndpoint", err)
	}
}

func TestGofailParseList(t *testing.T) {
	got, err := parseList("a=\nb=panic\r\n\nc=return(\"x=y\")\n")
	if err != nil || len(got) != 3 || got["a"] != "" || got["b"] != "panic" || got["c"] != `return("x=y")` {
		t.Errorf("parseList = %q, %v", got, err)
	}
	if got, err := parseList("\n"); err != nil || len(got) != 0 {
		t.Errorf("parseList(no failpoints) = %q, %v", got, err)
	}
	for _, bad := range []string{"noequals\n", "=panic\n", "<html>oops</html>"} {
		if _, err := parseList(bad); err == nil {
			t.Errorf("parseList(%q) = nil error", bad)
		}
	}
}

// A status gofail does not use for that call is an error naming it, with the body.
func TestGofailUnexpectedStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream trouble", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	c := &Client{Addr: srv.URL, HTTP: srv.Client()}
	ctx := context.Background()
	if _, err := c.List(ctx); err == nil || !strings.Contains(err.Error(), "upstream trouble") {
		t.Errorf("List = %v", err)
	}
	if err := c.Set(ctx, "x", "panic"); err == nil || !strings.Contains(err.Error(), "Bad Gateway") {
		t.Errorf("Set = %v", err)
	}
}
