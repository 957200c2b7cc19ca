package file

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/workload"
)

// valid is a small good target file; the cases below break it one way each.
const valid = `name: demo
vars:
  mode: safe
ports:
  client: 8001
  peer: 7001
peers:
  port: peer
nodes:
  command: [sh, -c, 'exec sleep 100', '{{.Name}}', '{{.Cluster.IDURL}}', '{{.Vars.mode}}']
ready:
  http: {port: client, path: /status}
client:
  protocol: http
  port: client
`

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "target.yaml")
	require.NoError(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// A target that declares its workloads refuses the others before anything runs, naming
// what it supports; one that declares none supports what its protocol can run.
func TestDeclaredWorkloads(t *testing.T) {
	f, err := Load(writeFile(t, valid+"workloads: [register]\n"), nil)
	require.NoError(t, err)
	o := &Options{f: f}
	assert.Equal(t, []workload.Kind{workload.Register}, o.Workloads())
	assert.Empty(t, sut.Supports(o, workload.Register))
	assert.Contains(t, sut.Supports(o, workload.Append), "its clients support register")
	f, err = Load(writeFile(t, valid), nil)
	require.NoError(t, err)
	assert.Equal(t, []workload.Kind{workload.Register, workload.Set, workload.Append}, (&Options{f: f}).Workloads())
}

func TestLoadValid(t *testing.T) {
	f, err := Load(writeFile(t, valid), map[string]string{"mode": "unsafe"})
	require.NoError(t, err)
	assert.Equal(t, "demo", f.Name)
	assert.Equal(t, "streams", f.Peers.Traffic, "the default")
	assert.Equal(t, "unsafe", f.Vars["mode"], "a var given overrides its default")
	assert.Contains(t, f.Source, "name: demo")
}

// Every bad target file is one line that names the file and the problem (and its line
// where it has one).
func TestLoadErrors(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		vars           map[string]string
		want           string
	}{
		{"unknown field", "nodes:\n  command:", "nodes:\n  commnd: [x]\n  command:", nil, `line 10: unknown field "commnd" (nodes has: command, env, files)`},
		{"unknown section", "ready:", "readyness: {}\nready:", nil, `line 11: unknown field "readyness" (the file has: name, vars, ports, peers, nodes, ready, client, workloads, hooks, data-files, failpoints)`},
		{"not yaml", "ports:", "ports: [", nil, "line"},
		{"failpoints on no port", "ready:", "failpoints: {port: gofial}\nready:", nil, `failpoints.port: "gofial" is none of the ports`},
		{"data files of no kind", "ready:", "data-files: {wal: [wal/*]}\nready:", nil, `data-files: "wal" is no kind of data file (log, snapshot, state)`},
		{"data files outside", "ready:", "data-files: {log: [../wal]}\nready:", nil, `data-files.log: "../wal" is not a glob inside the data directory`},
		{"template does not parse", "'{{.Name}}'", "'{{.Name'", nil, `line 10: template "{{.Name" does not parse`},
		{"template does not render", "'{{.Name}}'", "'{{.Nmae}}'", nil, `line 10: nodes.command: template "{{.Nmae}}" does not render: <.Nmae>: can't evaluate field Nmae`},
		{"a port that is not there", "'{{.Name}}'", "'{{.Bind.clinet}}'", nil, `map has no entry for key "clinet"`},
		{"a var that is not declared", "'{{.Vars.mode}}'", "'{{.Vars.mood}}'", nil, `map has no entry for key "mood"`},
		{"a target-var that is not declared", "", "", map[string]string{"mood": "x"}, "target-var mood: the file declares no such var (vars: mode)"},
		{"command not found", "[sh,", "[no-such-program-here,", nil, `line 10: nodes.command: program "no-such-program-here" not found in $PATH`},
		{"command path not there", "[sh,", "[/no/such/program,", nil, `program "/no/such/program" not found (no such executable file)`},
		{"shim not found", "  protocol: http\n  port: client", "  protocol: exec\n  command: [no-such-shim]", nil, `client.command: program "no-such-shim" not found`},
		{"peer port unknown", "  port: peer\nnodes", "  port: raft\nnodes", nil, `peers.port: "raft" is none of the ports (client, peer)`},
		{"peer traffic", "  port: peer\nnodes", "  port: peer\n  traffic: udp\nnodes", nil, `peers.traffic: "udp" is neither streams nor messages`},
		{"protocol unknown", "protocol: http", "protocol: grpc", nil, `client.protocol: "grpc" is not one of http, etcd, exec`},
		{"no readiness", "  http: {port: client, path: /status}\n", "", nil, "ready: give one of http"},
		{"two readinesses", "  http: {port: client, path: /status}\n", "  http: {port: client, path: /status}\n  tcp: client\n", nil, "ready: give one of http"},
		{"a condition on tcp", "  http: {port: client, path: /status}\n", "  tcp: client\n  expect: {equals: x}\n", nil, "ready.expect: a condition on an answer, and tcp has none"},
		{"a condition without a value", "  http: {port: client, path: /status}\n", "  http: {port: client, path: /status}\n  expect: {field: peers}\n", nil, "ready.expect.equals: missing"},
		{"a readiness command not found", "  http: {port: client, path: /status}\n", "  command: [no-such-probe]\n", nil, `ready.command: program "no-such-probe" not found`},
		{"hook both ways", "  port: client\n", "  port: client\nhooks:\n  clock: {command: [sh], http: {port: client, path: /c}}\n", nil, "hooks.clock: give one of http"},
		{"half the membership hooks", "  port: client\n", "  port: client\nhooks:\n  add-member: {command: [sh]}\n", nil, "remove-member and add-member go together"},
		{"empty", valid, "", nil, "empty"},
		{"a workload that is not one", "  port: client\n", "  port: client\nworkloads: [register, queue]\n", nil, `workloads: "queue" is not one of register, set, append`},
		{"a workload the protocol cannot run", "  port: client\n", "  port: client\nworkloads: [register, lease]\n", nil, "workloads: lease: the http client protocol cannot run it (it runs register, set, append)"},
		{"a workload twice", "  port: client\n", "  port: client\nworkloads: [set, set]\n", nil, "workloads: set twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			text := valid
			if c.old != "" || c.new != "" {
				require.Contains(t, text, c.old, "the case must change the file")
				text = strings.Replace(text, c.old, c.new, 1)
			}
			p := writeFile(t, text)
			_, err := Load(p, c.vars)
			require.Error(t, err)
			var fe *Error
			require.ErrorAs(t, err, &fe)
			assert.Contains(t, err.Error(), c.want)
			assert.True(t, strings.HasPrefix(err.Error(), "target file "+p+": "), "names the file: %v", err)
			assert.NotContains(t, err.Error(), "\n", "one line")
		})
	}
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil)
	assert.ErrorContains(t, err, "missing.yaml: no such file or directory")
}

// The shipped examples load: their programs are stood in for by stubs in $PATH.
func TestExamplesLoad(t *testing.T) {
	bin := t.TempDir()
	for _, p := range []string{"raftnode", "etcd", "hashiraft", "python3", "nats-server-v2.15.3", "nats-kv-shim"} {
		require.NoError(t, os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\n"), 0o755))
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	files, err := filepath.Glob("../../../examples/*.yaml")
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(files), 3)
	for _, p := range files {
		_, err := Load(p, nil)
		assert.NoError(t, err, p)
	}
}
