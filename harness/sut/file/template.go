package file

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
)

type templateT = template.Template

// Data is what every template of a target file sees. A node's command, env and files
// see the node's fields; a client shim the fields of the node it talks to and Process;
// a hook those of the node it asks (or, for a command hook, of the node it is about),
// with Offset/Rate (clock) or Member (membership). Fields that do not apply are zero.
type Data struct {
	// Name is the node's name (n1, n2, ...), Index its place (0, 1, ...), ID its current
	// numeric id: Index+1 at first, a new one (above every id so far) once the nemesis
	// has replaced it as a new member.
	Name  string
	Index int
	ID    uint64
	// DataDir is the node's data directory, as the node sees it: it survives kills and
	// restarts and is emptied when the node is replaced.
	DataDir string
	// Bind is, by port name, the host:port the node listens on; Addr the host:port the
	// others reach it at (for the peer port, the link proxy when packet faults are on).
	Bind, Addr map[string]string
	// Peers are all the nodes, this one included, in order.
	Peers []Peer
	// Cluster is Peers in the common formats of a static cluster flag.
	Cluster Cluster
	// Join is set when the node starts as a new member added to a running cluster
	// (after the nemesis replaced it): its data dir is empty.
	Join bool
	// Files are the paths of the file's config files, by name, as the node sees them.
	Files map[string]string
	// Vars are the file's vars (defaults, or --target-var).
	Vars map[string]string
	// RunID is the run's id (for cluster tokens); FileDir the target file's directory.
	RunID, FileDir string
	// Process is the client process a shim serves (-1: the harness's own checks);
	// OpTimeout how long the harness waits for one operation ("2s"), OpTimeoutMS the same
	// in milliseconds.
	Process     int
	OpTimeout   string
	OpTimeoutMS int64
	// OffsetMS and Rate are what a clock hook sets: the node's clock runs at Rate
	// times real time, OffsetMS milliseconds off it (0 and 1: a true clock).
	OffsetMS int64
	Rate     float64
	// Member is the node a membership hook removes or adds (with its new ID).
	Member Peer
}

// Peer is one node as the others see it.
type Peer struct {
	Name  string
	Index int
	ID    uint64
	Addr  map[string]string
}

// Cluster lists the nodes' peer addresses in the formats static cluster flags take.
type Cluster struct {
	// NameURL is "n1=http://host:port,n2=..." (etcd's --initial-cluster).
	NameURL string
	// IDURL is "1=http://host:port,2=..." (raftnode's --peers).
	IDURL string
	// NameAddr is "n1=host:port,..."; IDAddr "1=host:port,...".
	NameAddr, IDAddr string
	// Addrs is "host:port,host:port,...".
	Addrs string
}

// clusterOf writes peers in every format of Cluster, with their peer port's address.
func clusterOf(peers []Peer, peerPort string) Cluster {
	var nu, iu, na, ia, as []string
	for _, p := range peers {
		a := p.Addr[peerPort]
		id := strconv.FormatUint(p.ID, 10)
		nu, iu = append(nu, p.Name+"=http://"+a), append(iu, id+"=http://"+a)
		na, ia, as = append(na, p.Name+"="+a), append(ia, id+"="+a), append(as, a)
	}
	j := func(s []string) string { return strings.Join(s, ",") }
	return Cluster{NameURL: j(nu), IDURL: j(iu), NameAddr: j(na), IDAddr: j(ia), Addrs: j(as)}
}

// funcs are the functions every template may call besides text/template's own: host
// and port split a "host:port" (as .Bind and .Addr hold them) for a program that takes
// the two apart (nats-server's --addr and --port).
var funcs = template.FuncMap{
	"host": func(hostport string) (string, error) {
		h, _, err := net.SplitHostPort(hostport)
		return h, err
	},
	"port": func(hostport string) (string, error) {
		_, p, err := net.SplitHostPort(hostport)
		return p, err
	},
}

func parseTemplate(src string) (*templateT, error) {
	return template.New("t").Funcs(funcs).Option("missingkey=error").Parse(src)
}

// render executes t over d. Its error names the template's line and source.
func render(where string, t Tmpl, d Data) (string, error) {
	if t.t == nil {
		return t.Src, nil
	}
	var b strings.Builder
	if err := t.t.Execute(&b, d); err != nil {
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, " at "); ok {
			msg = after // `<.Nmae>: can't evaluate field Nmae in type file.Data`
		}
		return "", fmt.Errorf("line %d: %s: template %q does not render: %s", t.Line, where, t.Src, msg)
	}
	return b.String(), nil
}

// renderArgv renders an argv template: elements that render to "" are left out.
func renderArgv(where string, ts []Tmpl, d Data) ([]string, error) {
	out := make([]string, 0, len(ts))
	for _, t := range ts {
		s, err := render(where, t, d)
		if err != nil {
			return nil, err
		}
		if s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}

// renderMap renders a map of templates into KEY=VALUE pairs, sorted by key.
func renderEnv(where string, m map[string]Tmpl, d Data) ([]string, error) {
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		v, err := render(where+"."+k, m[k], d)
		if err != nil {
			return nil, err
		}
		out = append(out, k+"="+v)
	}
	return out, nil
}

// program finds argv[0] of a rendered command: a path (made absolute), or a name in
// $PATH. line is the command's line in the file, for the error.
func program(where string, line int, argv []string) (string, error) {
	if len(argv) == 0 {
		return "", fmt.Errorf("line %d: %s: renders to no program", line, where)
	}
	p, err := exec.LookPath(argv[0])
	if err != nil {
		in := "in $PATH"
		if strings.Contains(argv[0], "/") {
			in = "(no such executable file)"
		}
		return "", fmt.Errorf("line %d: %s: program %q not found %s", line, where, argv[0], in)
	}
	return filepath.Abs(p)
}
