package file

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	neturl "net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Readiness, leader and the hooks: the calls a file target makes to its nodes for the
// harness (never for the workloads' operations).

// hookClient makes the hooks' HTTP calls; every call has its own deadline.
var hookClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true}}

// httpCall makes h to node (rendered over d) and returns the answer's body: an error
// unless it answered 2xx.
func (t *Target) httpCall(ctx context.Context, node, where string, h *HTTPCall, d Data) ([]byte, error) {
	r, err := renderHTTP(where, h, d)
	if err != nil {
		return nil, err
	}
	url := "http://" + t.env.Reach(node, t.f.Ports[h.Port]) + r.path
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, url, body)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if r.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, kv := range r.headers {
		req.Header.Set(kv[0], kv[1])
	}
	resp, err := hookClient.Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err // the method and URL are said already
		}
		return nil, fmt.Errorf("%s %s: %w", r.method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", r.method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", r.method, url, resp.Status, firstLine(string(b)))
	}
	return b, nil
}

// call makes hook c about node (over d): the HTTP call to node, or the command run here.
func (t *Target) call(ctx context.Context, where string, c *Call, node string, d Data) ([]byte, error) {
	if c.HTTP != nil {
		return t.httpCall(ctx, node, where+".http", c.HTTP, d)
	}
	argv, err := renderArgv(where+".command", c.Command, d)
	if err != nil {
		return nil, err
	}
	prog, err := program(where+".command", c.Command[0].Line, argv)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, prog, argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.WaitDelay = &stderr, time.Second
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w: %s", where, strings.Join(argv, " "), err, lastLine(stderr.String()))
	}
	return out, nil
}

// probe checks that node serves: ready.http answers 2xx, ready.command exits 0 (each
// with ready.expect met by its answer), or ready.tcp accepts.
func (t *Target) probe(ctx context.Context, node string) error {
	r := t.f.Ready
	limit := time.Second
	if len(r.Command) > 0 {
		limit = 10 * time.Second // a program's start, and its own client's
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	if r.HTTP != nil || len(r.Command) > 0 {
		d := t.data(node, "", nil)
		var body []byte
		var err error
		if r.HTTP != nil {
			body, err = t.httpCall(ctx, node, "ready.http", r.HTTP, d)
		} else {
			body, err = t.call(ctx, "ready", &Call{Command: r.Command}, node, d)
		}
		if err != nil || r.Expect == nil {
			return err
		}
		return expect(r.Expect, body, d)
	}
	addr := t.env.Reach(node, t.f.Ports[t.f.Ready.TCP])
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	return c.Close()
}

// leaders asks every node at once who leads, each within timeout: the node each
// answering node names ("" for none), and the errors of the others. Identities a node
// gives for itself (hooks.leader.self) are learnt first, so that every answer can name
// any node.
func (t *Target) leaders(ctx context.Context, timeout time.Duration) (map[string]string, []error) {
	h := t.f.Hooks.Leader
	type answer struct {
		node, self, leader string
		err                error
	}
	answers := make([]answer, len(t.names))
	var wg sync.WaitGroup
	for i, n := range t.names {
		wg.Go(func() {
			a := answer{node: n}
			defer func() { answers[i] = a }()
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			body, err := t.call(cctx, "hooks.leader", &h.Call, n, t.data(n, "", nil))
			if err == nil && h.Self != "" {
				a.self, err = field(body, h.Self)
			}
			if err == nil {
				a.leader, err = field(body, h.Field)
				var absent *absentError
				if errors.As(err, &absent) { // no leader, or a wrong path: say which was taken
					err = nil
					t.absentLeader.Do(func() {
						t.env.Logf("hooks.leader.field: %s's answer: %v; taken as naming no leader (if a leader was there, the path is wrong)", n, absent)
					})
				}
			}
			a.err = err
			if err != nil {
				a.err = fmt.Errorf("%s: who leads: %w", n, err)
			}
		})
	}
	wg.Wait()
	t.mu.Lock()
	for _, a := range answers {
		if a.err == nil && a.self != "" {
			t.selves[a.node] = a.self
		}
	}
	t.mu.Unlock()
	named := map[string]string{}
	var errs []error
	for _, a := range answers {
		if a.err != nil {
			errs = append(errs, a.err)
			continue
		}
		named[a.node] = t.nodeOf(a.leader)
	}
	return named, errs
}

// leaderTimeout bounds each node's leader hook in Leader: the nemesis asks it before
// every leader fault, and a node that does not answer soon is left out of the vote.
const leaderTimeout = 500 * time.Millisecond

// Leader implements sut.Target: the node most answering nodes name ("" when the
// file has no leader hook, or none is named), an error only when no node answered.
func (t *Target) Leader(ctx context.Context) (string, error) {
	if t.f.Hooks.Leader == nil {
		return "", nil
	}
	named, errs := t.leaders(ctx, cmp.Or(t.leaderWait, leaderTimeout))
	if len(named) == 0 {
		return "", fmt.Errorf("no node answered: %w", errors.Join(errs...))
	}
	votes := map[string]int{}
	best := ""
	for _, l := range named {
		if l == "" {
			continue
		}
		votes[l]++
		if votes[l] > votes[best] || votes[l] == votes[best] && l < best {
			best = l
		}
	}
	return best, nil
}

// agreedLeader returns the leader every node names: an error naming the node that
// does not answer, names none, or names another.
func (t *Target) agreedLeader(ctx context.Context) (string, error) {
	named, errs := t.leaders(ctx, time.Second)
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	leader := ""
	for _, n := range t.names {
		switch l := named[n]; {
		case l == "":
			return "", fmt.Errorf("%s names no leader (that is one of this run's nodes)", n)
		case leader != "" && l != leader:
			return "", fmt.Errorf("%s names leader %s, others %s", n, l, leader)
		default:
			leader = l
		}
	}
	return leader, nil
}

// field returns the value at a path of a JSON answer, as text ("" for null); path "" is
// the whole answer, trimmed. A path is keys and array indexes joined by dots, an index
// also as [i]: "leader.id", "members.0.name", "members[0].name". A path that does not
// resolve (a key the object lacks, an index past the array, a step into a string) is an
// error naming where it stopped, never "": a hook that names nobody by mistake would
// send leader faults to a random node. Only the last key may be absent — proto3 JSON
// (etcd's gateway) leaves out a zero leader — and then the error is an *absentError
// that a caller may take as null, saying so.
func field(body []byte, path string) (string, error) {
	if path == "" {
		return strings.TrimSpace(string(body)), nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("the answer is not JSON: %q", firstLine(string(body)))
	}
	steps := strings.Split(strings.NewReplacer("[", ".", "]", "").Replace(path), ".")
	for i, k := range steps {
		at := strings.Join(steps[:i+1], ".")
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[k]
			if !ok && i == len(steps)-1 {
				return "", &absentError{fmt.Errorf("%s: the answer has no %q (it has: %s)", at, k, strings.Join(slices.Sorted(maps.Keys(x)), ", "))}
			}
			if !ok {
				return "", fmt.Errorf("%s: the answer has no %q there (it has: %s) in %q", at, k, strings.Join(slices.Sorted(maps.Keys(x)), ", "), firstLine(string(body)))
			}
			v = next
		case []any:
			n, err := strconv.Atoi(k)
			if err != nil || n < 0 || n >= len(x) {
				return "", fmt.Errorf("%s: the answer has an array of %d there, and %q is not an index into it, in %q", at, len(x), k, firstLine(string(body)))
			}
			v = x[n]
		default:
			return "", fmt.Errorf("%s: the answer has %s there, not an object or array, in %q", at, describeJSON(v), firstLine(string(body)))
		}
	}
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case json.Number:
		return x.String(), nil
	}
	return fmt.Sprint(v), nil
}

// expect checks a readiness answer against ready.expect.
func expect(e *ReadyExpect, body []byte, d Data) error {
	want, err := render("ready.expect.equals", e.Equals, d)
	if err != nil {
		return err
	}
	got, err := field(body, e.Field)
	if err != nil {
		return fmt.Errorf("ready.expect: %w", err)
	}
	if got != want {
		where := e.Field
		if where == "" {
			where = "the answer"
		}
		return fmt.Errorf("ready.expect: %s is %q, not %q yet", where, got, want)
	}
	return nil
}

// absentError is field's error for a path whose last key is absent.
type absentError struct{ error }

// describeJSON names a decoded JSON value's kind.
func describeJSON(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	}
	return fmt.Sprintf("%T", v)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
