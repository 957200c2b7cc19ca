package results

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Server serves a results directory to a browser: an index of every run in it (see
// index), each run's files, and a run directory as a .tar.gz. It only reads, and only
// below its root: a request for anything else — "..", an encoded slash or dot-dot, a
// symbolic link that leads out of the root — is refused with 404, whatever is there. It
// keeps working while runs are being written: a run without results.json is shown in
// progress, and files are read as they are at the time of the request.
type Server struct {
	root  string // absolute, symbolic links resolved
	index *indexCache
}

// NewServer returns a Server of the results directory root, which must exist.
func NewServer(root string) (*Server, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("results directory %s: %w", root, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("results directory %s: %w", root, err)
	}
	if st, err := os.Stat(real); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("results directory %s is not a directory", root)
	}
	return &Server{root: real, index: newIndexCache()}, nil
}

// Serve serves the results directory root on addr until ctx ends, then shuts down,
// giving requests under way a few seconds. started is called with the server's URL
// once it listens.
func Serve(ctx context.Context, addr, root string, started func(url string)) error {
	s, err := NewServer(root)
	if err != nil {
		return err
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return err // net's error names the address and why: "listen tcp ADDR: bind: address already in use"
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if started != nil {
		started("http://" + ln.Addr().String() + "/")
	}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// IsLoopback reports whether addr (host:port) listens on the loopback interface only.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Routes of the Server.
const (
	runsPrefix     = "/runs/"
	downloadPrefix = "/download/"
	tarSuffix      = ".tar.gz"
)

// Content security policies: the index runs no script at all; a run's files (the
// report, porcupine's view) may run their own inline scripts and styles, and reach
// nothing outside this server.
const (
	indexPolicy = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'"
	filePolicy  = "default-src 'self' 'unsafe-inline' data: blob:; frame-ancestors 'self'"
)

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !cleanRequestPath(r) {
		http.NotFound(w, r)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/":
		s.serveIndex(w, r)
	case p == "/favicon.ico": // asked for by browsers of pages without an icon (porcupine's view)
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(p, runsPrefix):
		s.serveRunFile(w, r, strings.TrimPrefix(p, runsPrefix))
	case strings.HasPrefix(p, downloadPrefix) && strings.HasSuffix(p, tarSuffix):
		s.serveTarball(w, r, strings.TrimSuffix(strings.TrimPrefix(p, downloadPrefix), tarSuffix))
	default:
		http.NotFound(w, r)
	}
}

// cleanRequestPath reports whether the request's path is one the server will look at:
// no "." or ".." segment, no backslash or NUL, and no slash, backslash or NUL that
// arrived percent-encoded (they would turn one segment into several).
func cleanRequestPath(r *http.Request) bool {
	raw := strings.ToLower(r.URL.RawPath + r.URL.EscapedPath())
	for _, enc := range []string{"%2f", "%5c", "%00"} {
		if strings.Contains(raw, enc) {
			return false
		}
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// resolve maps rel, a slash-separated path below the root, to a real path below the
// root, following symbolic links only as far as they stay inside it.
func (s *Server) resolve(rel string) (string, bool) {
	rel = strings.Trim(rel, "/")
	if rel != "" && !fsValidPath(rel) {
		return "", false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(s.root, filepath.FromSlash(rel)))
	if err != nil {
		return "", false
	}
	if real != s.root && !strings.HasPrefix(real, s.root+string(filepath.Separator)) {
		return "", false
	}
	return real, true
}

func fsValidPath(rel string) bool {
	for seg := range strings.SplitSeq(rel, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// serveRunFile serves a file below the root, or lists a directory.
func (s *Server) serveRunFile(w http.ResponseWriter, r *http.Request, rel string) {
	real, ok := s.resolve(rel)
	if !ok {
		http.NotFound(w, r)
		return
	}
	st, err := os.Stat(real)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if st.IsDir() {
		if !strings.HasSuffix(r.URL.Path, "/") {
			http.Redirect(w, r, path.Base(r.URL.Path)+"/", http.StatusMovedPermanently)
			return
		}
		s.serveListing(w, r, strings.Trim(rel, "/"), real)
		return
	}
	f, err := os.Open(real)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", contentType(real))
	w.Header().Set("Content-Security-Policy", filePolicy)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

// contentType is a file's type by its name: what faultline writes is HTML, JSON, PNG,
// SVG, XML, or text (histories and logs); anything else is bytes.
func contentType(name string) string {
	switch ext := strings.ToLower(filepath.Ext(name)); ext {
	case ".html", ".json", ".png", ".svg", ".xml", ".gz":
		return mime.TypeByExtension(ext)
	case ".jsonl", ".log", ".txt", ".edn", ".yaml", ".yml", "":
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}
