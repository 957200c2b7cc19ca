package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

// TestMain lets the test binary be an exec shim: with FILE_TEST_SHIM set, it serves the
// exec protocol from memory (fakeShim) instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("FILE_TEST_SHIM"); mode != "" {
		fakeShim(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeShim is a shim over a map. Mode noinit never answers init, refuse fails it. Some
// keys misbehave on purpose: "fail" and "info" answer so, "slow" never answers,
// "garbage" answers what is not JSON, "die" exits, "wrongid" answers another id,
// "badtype" an unknown type, "badvalue" a read with a number.
func fakeShim(mode string) {
	regs, lists := map[string]string{}, map[string][]string{}
	rev := int64(1)
	out := json.NewEncoder(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		var r request
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		a := map[string]any{"id": r.ID, "type": "ok"}
		switch {
		case r.F == "init" && mode == "noinit":
			time.Sleep(time.Hour)
		case r.F == "init" && mode == "refuse":
			a["type"], a["error"] = "fail", "no etcd here"
		case r.Key == "fail", r.Key == "info":
			a["type"], a["error"] = r.Key, "as asked"
		case r.Key == "slow":
			time.Sleep(time.Hour)
		case r.Key == "garbage":
			fmt.Println("hello")
			continue
		case r.Key == "die":
			fmt.Fprintln(os.Stderr, "dying as asked")
			os.Exit(3)
		case r.Key == "wrongid":
			a["id"] = r.ID + 1
		case r.Key == "badtype":
			a["type"] = "maybe"
		case r.Key == "badvalue":
			a["value"] = 5
		case r.Key == "badrev":
			a["rev"] = -1
		case r.F == "read":
			if v, ok := regs[r.Key]; ok {
				a["value"] = v
			}
		case r.F == "write":
			regs[r.Key] = *r.Value
		case r.F == "cas":
			if v, ok := regs[r.Key]; !ok || v != *r.From {
				a["type"], a["error"] = "fail", "mismatch"
			} else {
				regs[r.Key] = *r.To
			}
		case r.F == "append":
			lists[r.Key] = append(lists[r.Key], *r.Value)
		case r.F == "read-list":
			a["values"] = lists[r.Key]
		case r.F == "txn" && r.Txn.T[0].Key == "badtxn":
			a["txn"] = [][]any{{"r", "other", nil}}
		case r.F == "txn":
			a["txn"] = history.T(workload.ApplyMops(r.Txn.T, func(k string) []string { return lists[k] },
				func(k string, l []string) { lists[k] = l })...)
		}
		if mode == "rev" && a["type"] == "ok" && r.F != "init" {
			if r.F == "write" || r.F == "cas" || r.F == "append" {
				rev++
			}
			a["rev"] = rev
		}
		_ = out.Encode(a)
	}
}

// shimTarget is a file target of one node whose clients are fake shims in mode.
func shimTarget(t *testing.T, mode string) (*Target, *[]string) {
	t.Helper()
	self, err := os.Executable()
	require.NoError(t, err)
	text := fmt.Sprintf(`ports: {client: 1}
peers: {port: client}
nodes: {command: [sh]}
ready: {tcp: client}
client:
  protocol: exec
  command: [%q, -test.run=none, '{{.Addr.client}}']
  env: {FILE_TEST_SHIM: %s}
  start-timeout: 2s
`, self, mode)
	f, err := Load(writeFile(t, text), nil)
	require.NoError(t, err)
	var mu sync.Mutex
	var logs []string
	env := sut.Env{Nodes: []string{"n1"}, Dir: t.TempDir(), RunID: "test",
		Reach: func(string, int) string { return "127.0.0.1:1" }, PeerReach: func(string, int) string { return "127.0.0.1:1" },
		Logf: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			logs = append(logs, fmt.Sprintf(format, args...))
		}}
	tg := New(f, env)
	t.Cleanup(func() {
		assert.NoError(t, tg.Close())
		tg.mu.Lock()
		defer tg.mu.Unlock()
		assert.Empty(t, tg.shims, "every shim is stopped")
	})
	return tg, &logs
}

func openShim(t *testing.T, tg *Target) *shim {
	t.Helper()
	c, node, err := tg.Opener(time.Second)(context.Background(), 7)
	require.NoError(t, err)
	assert.Equal(t, "n1", node)
	return c.(*shim)
}

func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExecShimOperations(t *testing.T) {
	tg, _ := shimTarget(t, "kv")
	c := openShim(t, tg)
	ctx := opCtx(t)
	_, found, err := c.Read(ctx, "k")
	require.NoError(t, err)
	assert.False(t, found, "a missing key: value null")
	require.NoError(t, c.Write(ctx, "k", "1"))
	v, found, err := c.Read(ctx, "k")
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, "1", v)
	require.NoError(t, c.CAS(ctx, "k", "1", "2"))
	assert.ErrorIs(t, c.CAS(ctx, "k", "1", "3"), workload.ErrMismatch)
	require.NoError(t, c.Append(ctx, "l", "a"))
	require.NoError(t, c.Append(ctx, "l", "b"))
	l, err := c.ReadList(ctx, "l")
	require.NoError(t, err)
	assert.Equal(t, []string{"a", "b"}, l)
	l, err = c.ReadList(ctx, "none")
	require.NoError(t, err)
	assert.Equal(t, []string{}, l)

	err = c.Write(ctx, "fail", "x")
	assert.True(t, workload.IsDefinite(err), "fail is definite: %v", err)
	err = c.Write(ctx, "info", "x")
	require.Error(t, err)
	assert.False(t, workload.IsDefinite(err), "info is not")
	assert.NoError(t, tg.Failure(), "fail and info are answers: the target is fine")
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "twice")
}

// A shim's ok answers may carry the store's revision: the client reports it to the
// workload, which records it.
func TestExecShimReportsRevisions(t *testing.T) {
	tg, _ := shimTarget(t, "rev")
	c := openShim(t, tg)
	ctx, rev := workload.WithRevision(opCtx(t))
	require.NoError(t, c.Write(ctx, "k", "1"))
	assert.EqualValues(t, 2, rev.Load(), "a write: the revision it made")
	_, _, err := c.Read(ctx, "k")
	require.NoError(t, err)
	assert.EqualValues(t, 2, rev.Load(), "a read: the revision it read at")
	ctx, rev = workload.WithRevision(opCtx(t))
	require.NoError(t, c.Append(ctx, "l", "a"))
	assert.EqualValues(t, 3, rev.Load())

	tg, _ = shimTarget(t, "kv")
	c = openShim(t, tg)
	ctx, rev = workload.WithRevision(opCtx(t))
	require.NoError(t, c.Write(ctx, "k", "1"))
	assert.Zero(t, rev.Load(), "no rev: none")
	_, _, err = c.Read(ctx, "badrev")
	require.Error(t, err)
	assert.Contains(t, tg.Failure().Error(), `"rev" -1 is negative`)
}

// A shim that dies or answers garbage ends its operation indeterminate and fails the
// target, in a line that names the shim, its node and process, and what it did.
func TestExecShimBroken(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"garbage", `answered "hello" to {"id":1,"f":"write","key":"garbage","value":"v"}: not a JSON object`},
		{"die", "exited (exit status 3) with an operation outstanding; its last stderr line: dying as asked"},
		{"wrongid", "id 2, not 1"},
		{"badtype", `"type" "maybe" is not ok, fail or info`},
		{"badvalue", `a read's "value" must be a string or null`},
	} {
		t.Run(c.key, func(t *testing.T) {
			tg, logs := shimTarget(t, "kv")
			s := openShim(t, tg)
			var err error
			if c.key == "badvalue" {
				_, _, err = s.Read(opCtx(t), c.key)
			} else {
				err = s.Write(opCtx(t), c.key, "v")
			}
			require.Error(t, err)
			assert.False(t, workload.IsDefinite(err), "the operation is indeterminate")
			select {
			case <-tg.Failed():
			default:
				t.Fatal("the target did not fail")
			}
			msg := tg.Failure().Error()
			assert.Contains(t, msg, "exec shim")
			assert.Contains(t, msg, "(n1, process 7)")
			assert.Contains(t, msg, c.want)
			assert.NotContains(t, msg, "\n")
			assert.Contains(t, strings.Join(*logs, "\n"), "failed: "+msg, "and logs it")
			assert.Error(t, s.Write(opCtx(t), "k", "v"), "a broken shim takes nothing more")
			_, _, err = tg.Opener(time.Second)(context.Background(), 8)
			assert.Error(t, err, "a failed target opens no more clients")
		})
	}
}

func TestExecShimStart(t *testing.T) {
	for mode, want := range map[string]string{
		"noinit": "did not answer init within 2s (client.start-timeout)",
		"refuse": `answered init with fail "no etcd here"`,
	} {
		t.Run(mode, func(t *testing.T) {
			tg, _ := shimTarget(t, mode)
			_, _, err := tg.Opener(time.Second)(context.Background(), 7)
			require.Error(t, err)
			assert.ErrorContains(t, tg.Failure(), want)
		})
	}
}

// A shim that does not answer in time is abandoned: killed, its operation
// indeterminate, and the target fine.
func TestExecShimTimeout(t *testing.T) {
	tg, _ := shimTarget(t, "kv")
	s := openShim(t, tg)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := s.Write(ctx, "slow", "v")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.NoError(t, tg.Failure())
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("an abandoned shim is killed")
	}
	assert.ErrorContains(t, s.Write(opCtx(t), "k", "v"), "abandoned")
}

// Close stops every shim the target started, even one a client never closed.
func TestCloseStopsShims(t *testing.T) {
	tg, _ := shimTarget(t, "kv")
	s := openShim(t, tg)
	pid := s.cmd.Process.Pid
	require.NoError(t, tg.Close())
	assert.ErrorIs(t, syscall.Kill(pid, 0), syscall.ESRCH, "the shim is gone")
}

// A shim that says it runs transactions gets the txn workload; its answers are held to
// the request's micro-operations.
func TestExecShimTransactions(t *testing.T) {
	tg, _ := shimTarget(t, "kv")
	c := openShim(t, tg)
	ctx := opCtx(t)
	out, err := c.Txn(ctx, []history.Mop{{F: history.MopAppend, Key: "x", V: history.S1("1")}, {F: history.MopRead, Key: "x"}, {F: history.MopRead, Key: "y"}})
	require.NoError(t, err)
	assert.Equal(t, "[[append x 1] [r x [1]] [r y []]]", history.T(out...).String())
	_, err = c.Txn(ctx, []history.Mop{{F: history.MopRead, Key: "badtxn"}})
	require.Error(t, err)
	assert.ErrorContains(t, tg.Failure(), "micro-operation 0 is [r other …], not [r badtxn …]")

	for _, tc := range []struct {
		client string
		txn    bool
		err    string
	}{
		{"{protocol: exec, command: [sh], transactions: true}", true, ""},
		{"{protocol: exec, command: [sh]}", false, ""},
		{"{protocol: http, port: client, transactions: true}", false, "transactions are for the exec protocol"},
	} {
		text := "ports: {client: 1}\npeers: {port: client}\nnodes: {command: [sh]}\nready: {tcp: client}\nclient: " + tc.client + "\n"
		o := &Options{File: writeFile(t, text)}
		err := o.Resolve(sut.Common{Nodes: 3, Workload: workload.Register})
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, tc.txn, slices.Contains(o.Workloads(), workload.Txn), tc.client)
	}
}
