package file

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
)

// fakeNode answers like raftnode: GET /status names it and its leader, PUT /kv takes a
// write, and every other call is recorded.
type fakeNode struct {
	id, leader string
	status     int // of /status; 0: 200
	kvStatus   int // of writes; 0: 200
	mu         sync.Mutex
	calls      []string // "METHOD /path body"
}

func (f *fakeNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, strings.TrimSpace(r.Method+" "+r.URL.Path+" "+string(b)))
	if r.URL.Path == "/status" {
		if f.status != 0 {
			w.WriteHeader(f.status)
		}
		fmt.Fprintf(w, `{"header": {"member_id": "m%s"}, "id": %s, "leader": %s}`, f.id, f.id, f.leader)
		return
	}
	if f.kvStatus != 0 {
		w.WriteHeader(f.kvStatus)
		fmt.Fprint(w, `{"error": "not now", "definite": true}`)
		return
	}
	fmt.Fprint(w, "{}")
}

func (f *fakeNode) set(leader string, status int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leader, f.status = leader, status
}

func (f *fakeNode) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.calls...)
}

// stubPath puts stub programs named raftnode, etcd, hashiraft in $PATH.
func stubPath(t *testing.T) string {
	t.Helper()
	bin := t.TempDir()
	for _, p := range []string{"raftnode", "etcd", "hashiraft"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return bin
}

// fakeCluster is the raftnode-http example's target over three fake nodes, n2 leading.
func fakeCluster(t *testing.T, vars map[string]string, logTail func(string) string) (*Target, map[string]*fakeNode) {
	t.Helper()
	stubPath(t)
	f, err := Load("../../../examples/raftnode-http.yaml", vars)
	require.NoError(t, err)
	nodes, addrs := map[string]*fakeNode{}, map[string]string{}
	for i, n := range []string{"n1", "n2", "n3"} {
		nodes[n] = &fakeNode{id: strconv.Itoa(i + 1), leader: "2"}
		srv := httptest.NewServer(nodes[n])
		t.Cleanup(srv.Close)
		addrs[n] = strings.TrimPrefix(srv.URL, "http://")
	}
	env := sut.Env{Nodes: []string{"n1", "n2", "n3"}, Dir: t.TempDir(), RunID: "r1",
		Reach:     func(n string, _ int) string { return addrs[n] },
		PeerReach: func(n string, port int) string { return "peer-" + n + ":" + strconv.Itoa(port) },
		Logf:      t.Logf, LogTail: logTail}
	tg := New(f, env)
	t.Cleanup(func() { assert.NoError(t, tg.Close()) })
	return tg, nodes
}

func nodeEnv(n string) runtime.NodeEnv {
	return runtime.NodeEnv{Name: n, DataDir: "/data/" + n, Bind: func(p int) string { return "10.0.0.2:" + strconv.Itoa(p) }}
}

func TestNodeCommand(t *testing.T) {
	tg, _ := fakeCluster(t, nil, nil)
	assert.Equal(t, sut.Peers{Port: 7001, Messages: true}, tg.Peers())
	assert.Equal(t, []int{8001, 7001}, tg.Ports(), "by port name: client, peer")
	cmd := tg.Node(nodeEnv("n2"))
	assert.Equal(t, "raftnode", filepath.Base(cmd.Program))
	assert.True(t, filepath.IsAbs(cmd.Program), "found in $PATH")
	assert.Equal(t, []string{"--id=2", "--peers=1=http://peer-n1:7001,2=http://peer-n2:7001,3=http://peer-n3:7001",
		"--listen-peer=10.0.0.2:7001", "--listen-client=10.0.0.2:8001", "--data-dir=/data/n2"}, cmd.Args,
		"peers at their PeerReach; elements that render empty are left out")

	unsafe, _ := fakeCluster(t, map[string]string{"unsafe": "stale-read"}, nil)
	assert.Contains(t, unsafe.Node(nodeEnv("n1")).Args, "--unsafe=stale-read", "a var given")
}

func TestLeaderAndReady(t *testing.T) {
	tg, nodes := fakeCluster(t, nil, nil)
	ctx := context.Background()
	l, err := tg.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "n2", l, "the leader's raft id is its .ID")
	require.NoError(t, tg.Ready(ctx))
	assert.Contains(t, nodes["n2"].called(), `PUT /kv/faultline-ready {"value":"1"}`, "the write goes through the leader")
	assert.NotContains(t, nodes["n1"].called(), `PUT /kv/faultline-ready {"value":"1"}`)

	nodes["n3"].set("1", 0)
	assert.ErrorContains(t, tg.Ready(ctx), "names leader n1, others n2")
	l, err = tg.Leader(ctx)
	require.NoError(t, err)
	assert.Equal(t, "n2", l, "most nodes name n2")
	nodes["n3"].set("0", 0)
	assert.ErrorContains(t, tg.Ready(ctx), "n3 names no leader")
	nodes["n3"].set("2", http.StatusServiceUnavailable)
	assert.ErrorContains(t, tg.Ready(ctx), "n3 is not ready: GET http://")
	assert.NoError(t, tg.Failure(), "no ready.timeout: the harness decides how long to wait")
}

func TestLeaderBySelfAndCommand(t *testing.T) {
	tg, _ := fakeCluster(t, nil, nil)
	tg.f.Hooks.Leader.Self = "header.member_id" // answers name members as etcd does: by an id of their own
	for _, n := range tg.names {
		tg.mu.Lock()
		tg.ids[n] += 100 // so that only the learnt ids can match
		tg.mu.Unlock()
	}
	tg.f.Hooks.Leader.Field = "header.member_id" // each names itself: a tie, the lowest wins
	l, err := tg.Leader(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "n1", l)

	f, err := Load(writeFile(t, strings.Replace(valid, "client:\n", "hooks:\n  leader: {command: [sh, -c, 'echo {{.Name}} | tr 1 3']}\nclient:\n", 1)), nil)
	require.NoError(t, err)
	cmdTarget := New(f, tg.env)
	cmdTarget.leaderWait = time.Minute // three sh -c's can take more than 500 ms on a busy machine: a node left out changes the vote
	l, err = cmdTarget.Leader(context.Background())
	require.NoError(t, err)
	assert.Equal(t, "n3", l, "n1 and n3 say n3, n2 says n2")
}

func TestReadyTimeoutFailsTheTarget(t *testing.T) {
	tg, nodes := fakeCluster(t, nil, func(n string) string { return "  the tail of " + n + "'s log" })
	tg.f.Ready.Timeout = Duration(50 * time.Millisecond)
	nodes["n3"].set("2", http.StatusServiceUnavailable)
	ctx := context.Background()
	require.Error(t, tg.Ready(ctx))
	time.Sleep(60 * time.Millisecond)
	require.Error(t, tg.Ready(ctx))
	<-tg.Failed()
	msg := tg.Failure().Error()
	assert.Contains(t, msg, "the cluster was not ready within 50ms (ready.timeout): n3 is not ready")
	assert.Contains(t, msg, "the end of n3's log (nodes/n3/):\n  the tail of n3's log")
}

// A cluster whose nodes answer but whose readiness write keeps failing fails the target
// at ready.timeout with the end of the log of the node the write went to (the leader),
// and the target says how long its readiness may take.
func TestReadyTimeoutOfAFailingWriteSaysWhere(t *testing.T) {
	tg, nodes := fakeCluster(t, nil, func(n string) string { return "  the tail of " + n + "'s log" })
	tg.f.Ready.Timeout = Duration(50 * time.Millisecond)
	assert.Equal(t, 50*time.Millisecond, tg.ReadyTimeout(), "the harness waits for it, not its default")
	nodes["n2"].mu.Lock()
	nodes["n2"].kvStatus = http.StatusServiceUnavailable
	nodes["n2"].mu.Unlock()
	ctx := context.Background()
	require.Error(t, tg.Ready(ctx))
	time.Sleep(60 * time.Millisecond)
	require.Error(t, tg.Ready(ctx))
	<-tg.Failed()
	msg := tg.Failure().Error()
	assert.Contains(t, msg, "(ready.timeout): n2: a write")
	assert.Contains(t, msg, "the end of n2's log (nodes/n2/):\n  the tail of n2's log")
}

func TestHooks(t *testing.T) {
	tg, nodes := fakeCluster(t, nil, nil)
	ctx := context.Background()
	for _, x := range []nemesis.Capability{nemesis.CapClock, nemesis.CapMembers, nemesis.CapMessages} {
		ok, why := (&Options{f: tg.f}).Caps().Has(x)
		assert.True(t, ok, "raftnode-http has every hook: %s: %s", x, why)
	}
	require.NoError(t, tg.SetClock(ctx, "n1", 5*time.Second, 2))
	assert.Contains(t, nodes["n1"].called(), `PUT /clock {"offset_ms": 5000, "rate": 2}`)

	require.NoError(t, tg.Healthy(ctx))
	require.NoError(t, tg.RemoveMember(ctx, "n3"))
	assert.Contains(t, nodes["n2"].called(), `POST /members {"op": "remove", "id": 3}`, "through the leader")
	require.NoError(t, tg.AddMember(ctx, "n3"))
	assert.Contains(t, nodes["n2"].called(), `POST /members {"op": "add", "id": 4, "peer_url": "http://peer-n3:7001"}`)
	require.NoError(t, tg.Joined(ctx, "n3"))
	cmd := tg.Node(nodeEnv("n3"))
	assert.Contains(t, cmd.Args, "--id=4", "a replaced member comes back under a new id")
	assert.Contains(t, cmd.Args, "--join")
	assert.Contains(t, tg.Node(nodeEnv("n1")).Args, "--peers=1=http://peer-n1:7001,2=http://peer-n2:7001,4=http://peer-n3:7001")
	assert.NotContains(t, tg.Node(nodeEnv("n1")).Args, "--join")

	bare, err := Load(writeFile(t, valid), nil)
	require.NoError(t, err)
	caps := (&Options{f: bare}).Caps()
	_, why := caps.Has(nemesis.CapClock)
	assert.Contains(t, why, "has no clock hook (hooks.clock)")
	_, why = caps.Has(nemesis.CapMembers)
	assert.Contains(t, why, "has no membership hooks")
}

func TestConfigFiles(t *testing.T) {
	text := strings.Replace(valid, "nodes:\n", "nodes:\n  files:\n    node.json: '{\"name\": \"{{.Name}}\", \"peers\": \"{{.Cluster.Addrs}}\"}'\n", 1)
	text = strings.Replace(text, "'{{.Vars.mode}}'", "'--config={{.Files.node.json}}'", 1)
	f, err := Load(writeFile(t, text), nil)
	require.Error(t, err, "a dotted name is not a field path")
	text = strings.Replace(text, "node.json", "config", 2)
	text = strings.Replace(text, "{{.Files.config.json}}", "{{.Files.config}}", 1)
	f, err = Load(writeFile(t, text), nil)
	require.NoError(t, err)
	dir := t.TempDir()
	env := sut.Env{Nodes: []string{"n1", "n2"}, Dir: dir, Logf: t.Logf,
		Reach: func(n string, p int) string { return n + ":" + strconv.Itoa(p) }, PeerReach: func(n string, p int) string { return n + ":" + strconv.Itoa(p) }}
	cmd := New(f, env).Node(runtime.NodeEnv{Name: "n2", DataDir: filepath.Join(dir, "data", "n2"), Bind: func(p int) string { return ":" + strconv.Itoa(p) }})
	path := filepath.Join(dir, "files", "n2", "config")
	assert.Contains(t, cmd.Args, "--config="+path)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var got map[string]string
	require.NoError(t, json.Unmarshal(b, &got))
	assert.Equal(t, map[string]string{"name": "n2", "peers": "n1:7001,n2:7001"}, got)
}

// A JSON path indexes objects and arrays; one that does not resolve is an error that
// says where it stopped, and only a last key that is absent may be taken as null.
func TestFieldPaths(t *testing.T) {
	body := []byte(`{"leader": null, "members": [{"name": "n1", "id": 7}, {"name": "n2", "id": 8}], "term": 3, "raft": {"lead": "n2"}}`)
	for path, want := range map[string]string{
		"members.1.name": "n2", "members[0].id": "7", "raft.lead": "n2", "term": "3", "leader": "",
	} {
		got, err := field(body, path)
		require.NoError(t, err, path)
		assert.Equal(t, want, got, path)
	}
	for path, want := range map[string]string{
		"members.2.name": `members.2: the answer has an array of 2 there, and "2" is not an index into it`,
		"members.x":      `members.x: the answer has an array of 2 there, and "x" is not an index into it`,
		"term.x":         "term.x: the answer has a number there, not an object or array",
		"raft.leader.id": `raft.leader: the answer has no "leader" there (it has: lead)`,
	} {
		_, err := field(body, path)
		require.Error(t, err, path)
		assert.Contains(t, err.Error(), want, path)
		var absent *absentError
		assert.False(t, errors.As(err, &absent), "%s: not absent, wrong", path)
	}
	_, err := field(body, "raft.leader")
	var absent *absentError
	require.ErrorAs(t, err, &absent, "a last key absent: proto3 JSON leaves out a zero leader")
	assert.Contains(t, err.Error(), `raft.leader: the answer has no "leader" (it has: lead)`)
}

// hooks.setup runs once the cluster serves, on the leader (else the first node), its
// answer in the log; a setup that fails is an error naming the node and the command.
func TestSetupHook(t *testing.T) {
	tg, _ := fakeCluster(t, nil, nil)
	var logs []string
	env := tg.env
	env.Logf = func(format string, args ...any) { logs = append(logs, fmt.Sprintf(format, args...)) }
	withSetup := func(cmd string) *Target {
		text := strings.Replace(valid, "client:\n", "hooks:\n  setup: {command: [sh, -c, '"+cmd+"']}\nclient:\n", 1)
		f, err := Load(writeFile(t, text), nil)
		require.NoError(t, err)
		return New(f, env)
	}
	ctx := context.Background()
	once := withSetup("echo bucket made through {{.Name}}")
	require.NoError(t, once.setUp(ctx, "n1"))
	require.NoError(t, once.setUp(ctx, "n1"))
	assert.Equal(t, []string{"setup on n1: bucket made through n1"}, logs, "made once")
	failing := withSetup("echo no such bucket >&2; exit 3")
	err := failing.setUp(ctx, "n1")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "setup on n1: hooks.setup: sh -c echo no such bucket")
	assert.Contains(t, err.Error(), "no such bucket")
	assert.Equal(t, err, failing.Failure(), "a setup that fails stops the run")
	require.NoError(t, (&Target{f: &File{}}).setUp(ctx, "n1"), "no hook: nothing to do")

	// Through readiness: to the leader, before the readiness write (which may need
	// what setup makes), once.
	dir := t.TempDir()
	tg.f.Hooks.Setup = withSetup("touch " + dir + "/made; echo {{.Name}}").f.Hooks.Setup
	logs = nil
	tg.env.Logf = env.Logf
	require.NoError(t, tg.Ready(ctx))
	require.NoError(t, tg.Ready(ctx))
	assert.Equal(t, []string{"setup on n2: n2"}, logs)
	assert.FileExists(t, dir+"/made")
}

// Readiness may be a command, and a condition on the answer: not ready until it holds.
func TestReadyCommandAndExpect(t *testing.T) {
	tg, _ := fakeCluster(t, nil, nil)
	withReady := func(ready string) *Target {
		text := strings.Replace(valid, "ready:\n  http: {port: client, path: /status}\n", "ready:\n"+ready, 1)
		require.NotEqual(t, valid, text)
		f, err := Load(writeFile(t, text), nil)
		require.NoError(t, err)
		return New(f, tg.env)
	}
	ctx := context.Background()
	ok := withReady(`  command: [sh, -c, 'echo "{\"members\": [1, 2, 3], \"name\": \"{{.Name}}\"}"']` + "\n" +
		`  expect: {field: members.2, equals: '{{len .Peers}}'}` + "\n")
	assert.NoError(t, ok.probe(ctx, "n2"), "the third member is 3: every peer is in")
	short := withReady(`  command: [sh, -c, 'echo "{\"members\": [1, 2]}"']` + "\n" +
		`  expect: {field: members.1, equals: '{{len .Peers}}'}` + "\n")
	assert.ErrorContains(t, short.probe(ctx, "n1"), `ready.expect: members.1 is "2", not "3" yet`)
	failing := withReady("  command: [sh, -c, 'echo starting >&2; exit 1']\n")
	assert.ErrorContains(t, failing.probe(ctx, "n1"), "starting")
	whole := withReady("  command: [sh, -c, 'echo \" serving \"']\n  expect: {equals: serving}\n")
	assert.NoError(t, whole.probe(ctx, "n3"), "no field: the whole answer, trimmed")
}

func TestHostAndPortFuncs(t *testing.T) {
	d := Data{Bind: map[string]string{"client": "10.0.0.2:4222", "v6": "[fd00::2]:4222"}}
	for src, want := range map[string]string{
		`--addr={{host .Bind.client}} --port={{port .Bind.client}}`: "--addr=10.0.0.2 --port=4222",
		`{{host .Bind.v6}}`: "fd00::2",
	} {
		tt, err := parseTemplate(src)
		require.NoError(t, err)
		got, err := render("command", Tmpl{Src: src, t: tt, Line: 3}, d)
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	tt, err := parseTemplate(`{{port .Vars.x}}`)
	require.NoError(t, err)
	_, err = render("command", Tmpl{Src: `{{port .Vars.x}}`, t: tt, Line: 3}, Data{Vars: map[string]string{"x": "nohost"}})
	assert.ErrorContains(t, err, "missing port", "a value that is no host:port is an error, not an empty string")
}
