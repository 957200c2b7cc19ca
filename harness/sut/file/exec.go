package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

// The exec protocol (docs/protocol.md): faultline starts the file's client.command for
// each client process, sends it {"id":0,"f":"init"} and waits (client.start-timeout,
// outside any operation's time) for {"id":0,"type":"ok"}; then it writes one request a
// line to its stdin,
//
//	{"id":1,"f":"write","key":"k","value":"v"}
//
// (f: read, write, cas with from and to, append, read-list), and reads one answer a line
// from its stdout, {"id":1,"type":"ok"} (a read's with "value", a string or null for a
// missing key; a read-list's with "values"), {"id":1,"type":"fail","error":"..."} (did not
// and will not happen; a cas whose from did not match: "mismatch"), or
// {"id":1,"type":"info","error":"..."} (may or may not have happened). One request is
// outstanding at a time. Its stderr goes to the run's shims.log.
//
// A shim that exits, or answers anything else (not JSON, another id, another type),
// ends its operation as indeterminate and fails the target: the run stops, naming it.
// A shim that does not answer within the op timeout is abandoned (killed): its
// operation is indeterminate and the process is retired, as for any timeout.

// request is one line to a shim.
type request struct {
	ID    int            `json:"id"`
	F     string         `json:"f"`
	Key   string         `json:"key,omitempty"`
	Value *string        `json:"value,omitempty"`
	From  *string        `json:"from,omitempty"`
	To    *string        `json:"to,omitempty"`
	Txn   *history.Value `json:"txn,omitempty"`
}

// answer is one line from a shim.
type answer struct {
	ID     *int            `json:"id"`
	Type   string          `json:"type"`
	Value  json.RawMessage `json:"value"`
	Values json.RawMessage `json:"values"`
	Txn    json.RawMessage `json:"txn"`
	Error  string          `json:"error"`
	// Rev, on an ok answer, is the store's revision the answer was made at, for a
	// system with one revision counter (optional: 0 or absent is none).
	Rev int64 `json:"rev"`
}

// shim is one running exec-protocol client: a workload.Client and io.Closer.
type shim struct {
	t       *Target
	node    string
	process int
	argv    []string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	lines   chan []byte   // its stdout, a line at a time; closed at EOF
	quit    chan struct{} // closed by kill: the reader stops
	exited  chan struct{} // closed once it has exited and been waited for
	exitErr error
	stderr  *lineWriter

	mu      sync.Mutex // one operation at a time
	next    int
	dead    error // once set, every operation is indeterminate with it
	closing atomic.Bool
	killed  sync.Once
}

var _ workload.Client = (*shim)(nil)

// startShim starts the file's shim for process, talking to node, and waits for its
// answer to init. A shim that cannot be started, or does not answer init, fails the
// target.
func (t *Target) startShim(ctx context.Context, node string, process int) (*shim, error) {
	d := t.data(node, "", nil)
	d.Process = process
	argv, err := renderArgv("client.command", t.f.Client.Command, d)
	if err != nil {
		return nil, err
	}
	prog, err := program("client.command", t.f.Client.Command[0].Line, argv)
	if err != nil {
		return nil, err
	}
	env, err := renderEnv("client.env", t.f.Client.Env, d)
	if err != nil {
		return nil, err
	}
	s := &shim{t: t, node: node, process: process, argv: argv, next: -1, lines: make(chan []byte, 4),
		quit: make(chan struct{}), exited: make(chan struct{}), stderr: t.shimLog(node, process)}
	s.cmd = exec.Command(prog, argv[1:]...)
	s.cmd.Env = append(append(os.Environ(), env...), runtime.RunEnv+"="+t.env.RunID,
		runtime.HarnessEnv+"="+strconv.Itoa(os.Getpid()))
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	s.cmd.Stderr, s.cmd.WaitDelay = s.stderr, time.Second
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		err = fmt.Errorf("%s did not start: %w", s, err)
		t.fail(err)
		return nil, err
	}
	t.mu.Lock()
	t.shims[s] = true
	t.mu.Unlock()
	go s.read(stdout)
	if err := s.init(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// init is the shim's handshake: {"id":0,"f":"init"}, answered ok within the file's
// client.start-timeout. A shim that does not is broken: the target fails.
func (s *shim) init(ctx context.Context) error {
	limit := time.Duration(s.t.f.Client.StartTimeout)
	ictx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	a, err := s.call(ictx, request{F: "init"})
	switch {
	case err != nil && ctx.Err() == nil && ictx.Err() != nil:
		err = fmt.Errorf("%s did not answer init within %v (client.start-timeout)", s, limit)
		s.t.fail(err)
	case err == nil && a.Type != "ok":
		err = s.broken("answered init with %s %q", a.Type, a.Error)
	}
	return err
}

func (s *shim) String() string {
	return fmt.Sprintf("exec shim %q (%s, process %d)", strings.Join(s.argv, " "), s.node, s.process)
}

// read passes the shim's stdout on a line at a time until EOF, then waits for it.
func (s *shim) read(stdout io.Reader) {
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for sc.Scan() {
		select {
		case s.lines <- bytes.Clone(sc.Bytes()):
		case <-s.quit:
		}
	}
	close(s.lines)
	s.exitErr = s.cmd.Wait()
	close(s.exited)
}

// kill stops the shim's process group at once (unless it has exited and been waited
// for: its pid may be another's by now).
func (s *shim) kill() {
	s.killed.Do(func() {
		close(s.quit)
		select {
		case <-s.exited:
		default:
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		}
	})
}

// Close implements io.Closer: stdin closed, a second to exit, then killed.
func (s *shim) Close() error {
	if !s.closing.Swap(true) {
		_ = s.stdin.Close()
		select {
		case <-s.exited:
		case <-time.After(time.Second):
		}
		s.kill()
	}
	<-s.exited
	s.t.mu.Lock()
	delete(s.t.shims, s)
	s.t.mu.Unlock()
	return nil
}

// call sends req and waits for its answer. Its errors are indeterminate.
func (s *shim) call(ctx context.Context, req request) (answer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead != nil {
		return answer{}, s.dead
	}
	s.next++
	req.ID = s.next
	b, err := json.Marshal(req)
	if err != nil {
		return answer{}, workload.Definite(err)
	}
	if _, err := s.stdin.Write(append(b, '\n')); err != nil {
		return answer{}, s.broken("died (its stdin: %v)", err)
	}
	select {
	case line, ok := <-s.lines:
		if !ok {
			return answer{}, s.broken("exited (%s) with an operation outstanding", s.exitStatus())
		}
		a, err := parseAnswer(line, req)
		if err != nil {
			return answer{}, s.broken("answered %s to %s: %v", quote(line), b, err)
		}
		if a.Type == "ok" {
			workload.ReportRevision(ctx, a.Rev)
		}
		return a, nil
	case <-ctx.Done():
		s.dead = fmt.Errorf("%s was abandoned after an operation timed out", s)
		s.kill()
		return answer{}, ctx.Err()
	}
}

// exitStatus waits a second for the shim to exit and says how it did.
func (s *shim) exitStatus() string {
	select {
	case <-s.exited:
		if s.exitErr == nil {
			return "status 0"
		}
		return s.exitErr.Error()
	case <-time.After(time.Second):
		return "closed its stdout"
	}
}

// broken makes the shim dead and fails the target with what happened, unless the shim
// is being closed (then its end is expected).
func (s *shim) broken(format string, args ...any) error {
	err := fmt.Errorf("%s %s", s, fmt.Sprintf(format, args...))
	if last := s.stderr.Last(); last != "" {
		err = fmt.Errorf("%w; its last stderr line: %s", err, last)
	}
	s.dead = err
	s.kill()
	if !s.closing.Load() {
		s.t.fail(err)
	}
	return err
}

func quote(line []byte) string {
	if len(line) > 120 {
		return strconv.Quote(string(line[:120])) + "…"
	}
	return strconv.Quote(string(line))
}

// parseAnswer checks that line answers req.
func parseAnswer(line []byte, req request) (answer, error) {
	var a answer
	if err := json.Unmarshal(line, &a); err != nil {
		return a, errors.New("not a JSON object")
	}
	switch {
	case a.ID == nil:
		return a, errors.New(`no "id"`)
	case *a.ID != req.ID:
		return a, fmt.Errorf("id %d, not %d", *a.ID, req.ID)
	case a.Type != "ok" && a.Type != "fail" && a.Type != "info":
		return a, fmt.Errorf(`"type" %q is not ok, fail or info`, a.Type)
	case a.Rev < 0:
		return a, fmt.Errorf(`"rev" %d is negative`, a.Rev)
	case a.Type != "ok":
		return a, nil
	case req.F == history.OpRead && !isNull(a.Value):
		var v string
		if json.Unmarshal(a.Value, &v) != nil {
			return a, errors.New(`a read's "value" must be a string or null`)
		}
	case req.F == "read-list" && !isNull(a.Values):
		var v []string
		if json.Unmarshal(a.Values, &v) != nil {
			return a, errors.New(`a read-list's "values" must be a list of strings`)
		}
	case req.F == history.OpTxn:
		if _, err := txnAnswer(a, req); err != nil {
			return a, err
		}
	}
	return a, nil
}

// txnAnswer reads a txn's ok answer: its micro-operations, each the request's with what
// a read read (a list of strings, or null for none).
func txnAnswer(a answer, req request) ([]history.Mop, error) {
	var v history.Value
	if err := v.UnmarshalJSON(a.Txn); err != nil || v.Kind != history.Txn || len(v.T) != len(req.Txn.T) {
		return nil, fmt.Errorf(`a txn's "txn" must be its %d micro-operations, [f, key, value] each`, len(req.Txn.T))
	}
	for i, m := range v.T {
		want := req.Txn.T[i]
		switch {
		case m.F != want.F || m.Key != want.Key:
			return nil, fmt.Errorf(`micro-operation %d is [%s %s …], not [%s %s …]`, i, m.F, m.Key, want.F, want.Key)
		case m.F == history.MopAppend && (m.V.Kind != history.Str || m.V.S != want.V.S):
			return nil, fmt.Errorf(`micro-operation %d must be the append as sent`, i)
		case m.F == history.MopRead && m.V.Kind == history.Str:
			return nil, fmt.Errorf(`micro-operation %d: a read's value must be a list of strings or null`, i)
		case m.F == history.MopRead && m.V.Kind == history.None:
			v.T[i].V = history.L()
		}
	}
	return v.T, nil
}

func isNull(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }

// outcome is an answer's error: nil for ok, definite for fail, indeterminate for info.
func outcome(a answer, err error) error {
	switch {
	case err != nil:
		return err
	case a.Type == "ok":
		return nil
	case a.Type == "fail":
		if a.Error == "" {
			a.Error = "fail"
		}
		return workload.Definite(errors.New(a.Error))
	}
	if a.Error == "" {
		a.Error = "info"
	}
	return errors.New(a.Error)
}

// Read implements workload.Client.
func (s *shim) Read(ctx context.Context, key string) (string, bool, error) {
	a, err := s.call(ctx, request{F: history.OpRead, Key: key})
	if err := outcome(a, err); err != nil || isNull(a.Value) {
		return "", false, err
	}
	var v string
	_ = json.Unmarshal(a.Value, &v) // checked by parseAnswer
	return v, true, nil
}

// Write implements workload.Client.
func (s *shim) Write(ctx context.Context, key, value string) error {
	return outcome(s.call(ctx, request{F: history.OpWrite, Key: key, Value: &value}))
}

// CAS implements workload.Client: a fail whose error is "mismatch" is workload.ErrMismatch.
func (s *shim) CAS(ctx context.Context, key, from, to string) error {
	a, err := s.call(ctx, request{F: history.OpCAS, Key: key, From: &from, To: &to})
	if err == nil && a.Type == "fail" && a.Error == "mismatch" {
		return workload.ErrMismatch
	}
	return outcome(a, err)
}

// Append implements workload.Client.
func (s *shim) Append(ctx context.Context, key, value string) error {
	return outcome(s.call(ctx, request{F: history.OpAppend, Key: key, Value: &value}))
}

// ReadList implements workload.Client.
func (s *shim) ReadList(ctx context.Context, key string) ([]string, error) {
	a, err := s.call(ctx, request{F: "read-list", Key: key})
	if err := outcome(a, err); err != nil {
		return nil, err
	}
	l := []string{}
	if !isNull(a.Values) {
		_ = json.Unmarshal(a.Values, &l) // checked by parseAnswer
	}
	return l, nil
}

// Txn implements workload.Transactor: one "txn" request.
func (s *shim) Txn(ctx context.Context, mops []history.Mop) ([]history.Mop, error) {
	in := history.T(mops...)
	req := request{F: history.OpTxn, Txn: &in}
	a, err := s.call(ctx, req)
	if err := outcome(a, err); err != nil {
		return nil, err
	}
	return txnAnswer(a, req) // checked by parseAnswer
}

// shimLog returns the stderr writer of a shim: lines into the run's shims.log, each
// prefixed with the process and node.
func (t *Target) shimLog(node string, process int) *lineWriter {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.logFile == nil && t.env.Dir != "" {
		f, err := os.OpenFile(filepath.Join(t.env.Dir, "shims.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			t.logFile = f
		}
	}
	return &lineWriter{w: t.logFile, mu: &t.logMu, prefix: fmt.Sprintf("p%d %s: ", process, node)}
}

// lineWriter writes whole lines, prefixed, to a shared writer (nil: nowhere), and keeps
// the last one.
type lineWriter struct {
	w      io.Writer
	mu     *sync.Mutex
	prefix string
	buf    []byte
	last   atomic.Value
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		if strings.TrimSpace(line) != "" {
			l.last.Store(line)
		}
		if l.w != nil {
			l.mu.Lock()
			_, _ = io.WriteString(l.w, l.prefix+line+"\n")
			l.mu.Unlock()
		}
	}
	return len(p), nil
}

// Last is the last non-empty line written ("" if none).
func (l *lineWriter) Last() string {
	s, _ := l.last.Load().(string)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
