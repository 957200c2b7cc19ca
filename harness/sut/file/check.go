package file

import (
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/workload"
)

// Protocols are the client protocols a target file may name.
var Protocols = []string{protoHTTP, protoKV, protoExec}

// check validates what decoding could not: required sections, port names, protocols,
// hooks with one way of calling each; then it renders every template for a sample
// cluster of three nodes (first start and start as a new member) and finds every
// program, so that a template that does not render or a command that is not there is
// found before anything runs.
func (f *File) check() error {
	if err := f.checkShape(); err != nil {
		return err
	}
	return f.checkRender()
}

func (f *File) checkShape() error {
	if len(f.Ports) == 0 {
		return errors.New("ports: name at least one port (e.g. client: 8001, peer: 7001)")
	}
	for _, name := range sortedKeys(f.Ports) {
		if p := f.Ports[name]; p < 1 || p > 65535 {
			return fmt.Errorf("ports.%s: %d is not a TCP port", name, p)
		}
	}
	if err := f.portNamed("peers.port", f.Peers.Port); err != nil {
		return err
	}
	switch f.Peers.Traffic {
	case "":
		f.Peers.Traffic = "streams"
	case "streams", "messages":
	default:
		return fmt.Errorf("peers.traffic: %q is neither streams nor messages", f.Peers.Traffic)
	}
	if len(f.Nodes.Command) == 0 {
		return errors.New("nodes.command: missing: the argv that starts node i (a list of templates)")
	}
	for name := range f.Nodes.Files {
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return fmt.Errorf("nodes.files: %q is not a plain file name", name)
		}
	}
	if err := f.checkReady(); err != nil {
		return err
	}
	if err := f.checkClient(); err != nil {
		return err
	}
	if err := f.checkWorkloads(); err != nil {
		return err
	}
	if err := f.checkDataFiles(); err != nil {
		return err
	}
	if fp := f.Failpoints; fp != nil {
		if err := f.portNamed("failpoints.port", fp.Port); err != nil {
			return err
		}
		if slices.Contains(fp.Points, "") {
			return errors.New("failpoints.points: an empty name")
		}
	}
	return f.checkHooks()
}

// checkDataFiles checks data-files: known kinds, relative globs that parse.
func (f *File) checkDataFiles() error {
	var kinds []string
	for _, k := range nemesis.FileKinds() {
		kinds = append(kinds, string(k))
	}
	for _, kind := range sortedKeys(f.DataFiles) {
		if !slices.Contains(kinds, kind) {
			return fmt.Errorf("data-files: %q is no kind of data file (%s)", kind, strings.Join(kinds, ", "))
		}
		if len(f.DataFiles[kind]) == 0 {
			return fmt.Errorf("data-files.%s: give at least one glob", kind)
		}
		for _, g := range f.DataFiles[kind] {
			if g == "" || filepath.IsAbs(g) || slices.Contains(strings.Split(filepath.ToSlash(g), "/"), "..") {
				return fmt.Errorf("data-files.%s: %q is not a glob inside the data directory", kind, g)
			}
			if _, err := filepath.Match(g, ""); err != nil {
				return fmt.Errorf("data-files.%s: %q: %w", kind, g, err)
			}
		}
	}
	return nil
}

func (f *File) portNamed(where, name string) error {
	if name == "" {
		return fmt.Errorf("%s: missing: name one of the ports (%s)", where, strings.Join(sortedKeys(f.Ports), ", "))
	}
	if _, ok := f.Ports[name]; !ok {
		return fmt.Errorf("%s: %q is none of the ports (%s)", where, name, strings.Join(sortedKeys(f.Ports), ", "))
	}
	return nil
}

func (f *File) checkReady() error {
	r := f.Ready
	n := 0
	for _, given := range []bool{r.HTTP != nil, r.TCP != "", len(r.Command) > 0} {
		if given {
			n++
		}
	}
	switch {
	case n != 1:
		return errors.New("ready: give one of http (a GET that answers 2xx), tcp (a port that accepts) or command (run on this host: exit 0)")
	case r.Expect != nil && r.TCP != "":
		return errors.New("ready.expect: a condition on an answer, and tcp has none: use http or command")
	case r.Expect != nil && r.Expect.Equals.Src == "":
		return errors.New("ready.expect.equals: missing: the value the answer must have")
	case r.TCP != "":
		return f.portNamed("ready.tcp", r.TCP)
	case len(r.Command) > 0:
		return nil
	}
	if r.HTTP.Method != "" && r.HTTP.Method != http.MethodGet {
		return fmt.Errorf("ready.http.method: readiness is a GET, not %s", r.HTTP.Method)
	}
	return f.checkHTTP("ready.http", r.HTTP)
}

func (f *File) checkHTTP(where string, h *HTTPCall) error {
	if err := f.portNamed(where+".port", h.Port); err != nil {
		return err
	}
	if h.Path.Src == "" || !strings.HasPrefix(h.Path.Src, "/") {
		return fmt.Errorf("%s.path: %q must start with /", where, h.Path.Src)
	}
	switch strings.ToUpper(h.Method) {
	case "", http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch:
	default:
		return fmt.Errorf("%s.method: %q is not one of GET, POST, PUT, DELETE, PATCH", where, h.Method)
	}
	return nil
}

func (f *File) checkClient() error {
	c := f.Client
	switch c.Protocol {
	case protoHTTP, protoKV:
		if len(c.Command) > 0 || len(c.Env) > 0 || c.StartTimeout != 0 || c.Transactions {
			return fmt.Errorf("client: command, env, start-timeout and transactions are for the exec protocol, not %s", c.Protocol)
		}
		return f.portNamed("client.port", c.Port)
	case protoExec:
		if c.Port != "" {
			return errors.New("client.port: the exec protocol has no port: the shim's command gets the node's addresses (.Addr)")
		}
		if len(c.Command) == 0 {
			return errors.New("client.command: missing: the argv of the shim faultline starts for each client process")
		}
		if c.StartTimeout == 0 {
			f.Client.StartTimeout = Duration(30 * time.Second)
		}
		return nil
	case "":
		return fmt.Errorf("client.protocol: missing: one of %s", strings.Join(Protocols, ", "))
	}
	return fmt.Errorf("client.protocol: %q is not one of %s", c.Protocol, strings.Join(Protocols, ", "))
}

// checkWorkloads checks that the workloads declared are workloads the client protocol
// can run.
func (f *File) checkWorkloads() error {
	can := protocolWorkloads(f)
	for i, w := range f.Workloads {
		switch {
		case slices.Index(f.Workloads, w) < i:
			return fmt.Errorf("workloads: %s twice", w)
		case !slices.Contains(workload.Names(), string(w)):
			return fmt.Errorf("workloads: %q is not one of %s", w, strings.Join(workload.Names(), ", "))
		case !slices.Contains(can, w):
			return fmt.Errorf("workloads: %s: the %s client protocol cannot run it (it runs %s)", w, f.Client.Protocol, kindList(can))
		}
	}
	return nil
}

func kindList(ws []workload.Kind) string {
	names := make([]string, len(ws))
	for i, w := range ws {
		names[i] = string(w)
	}
	return strings.Join(names, ", ")
}

func (f *File) checkHooks() error {
	h := f.Hooks
	if (h.RemoveMember == nil) != (h.AddMember == nil) {
		return errors.New("hooks: remove-member and add-member go together (the nemesis replaces a member with both)")
	}
	calls := map[string]*Call{"hooks.setup": h.Setup, "hooks.clock": h.Clock, "hooks.remove-member": h.RemoveMember, "hooks.add-member": h.AddMember}
	if h.Leader != nil {
		calls["hooks.leader"] = &h.Leader.Call
	}
	for _, where := range sortedKeys(calls) {
		c := calls[where]
		if c == nil {
			continue
		}
		if (c.HTTP == nil) == (len(c.Command) == 0) {
			return fmt.Errorf("%s: give one of http (a call to a node) or command (run on this host)", where)
		}
		if c.HTTP != nil {
			if err := f.checkHTTP(where+".http", c.HTTP); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkRender renders every template of the file for a sample cluster.
func (f *File) checkRender() error {
	names := []string{"n1", "n2", "n3"}
	env := sut.Env{Nodes: names, RunID: "sample", Dir: "/nonexistent/run",
		Reach:     func(n string, port int) string { return "127.0.0." + n[1:] + ":" + strconv.Itoa(port) },
		PeerReach: func(n string, port int) string { return "127.0.1." + n[1:] + ":" + strconv.Itoa(port) },
		Logf:      func(string, ...any) {}}
	t := newTarget(f, env)
	t.dry = true
	for i, n := range names {
		ne := runtime.NodeEnv{Name: n, DataDir: "/data/" + n, Bind: func(port int) string { return "0.0.0.0:" + strconv.Itoa(port) }}
		for _, join := range []bool{false, true} {
			t.joined[n] = join
			if _, err := t.nodeCmd(ne); err != nil {
				return err
			}
		}
		d := t.data(n, "", nil)
		d.Process, d.OffsetMS, d.Rate, d.Member = i, 5000, 2, t.peer(n)
		if err := f.renderHooks(d, i == 0); err != nil {
			return err
		}
	}
	return nil
}

// renderHooks renders the shim's command and the hooks for d; find says to look up
// their programs too.
func (f *File) renderHooks(d Data, find bool) error {
	if f.Client.Protocol == protoExec {
		argv, err := renderArgv("client.command", f.Client.Command, d)
		if err == nil && find {
			_, err = program("client.command", f.Client.Command[0].Line, argv)
		}
		if err == nil {
			_, err = renderEnv("client.env", f.Client.Env, d)
		}
		if err != nil {
			return err
		}
	}
	if f.Ready.HTTP != nil {
		if _, err := renderHTTP("ready.http", f.Ready.HTTP, d); err != nil {
			return err
		}
	}
	if len(f.Ready.Command) > 0 {
		if err := (&Call{Command: f.Ready.Command}).check("ready", d, find); err != nil {
			return err
		}
	}
	if e := f.Ready.Expect; e != nil {
		if _, err := render("ready.expect.equals", e.Equals, d); err != nil {
			return err
		}
	}
	h := f.Hooks
	calls := map[string]*Call{"hooks.setup": h.Setup, "hooks.clock": h.Clock, "hooks.remove-member": h.RemoveMember, "hooks.add-member": h.AddMember}
	if h.Leader != nil {
		calls["hooks.leader"] = &h.Leader.Call
	}
	for _, where := range sortedKeys(calls) {
		if c := calls[where]; c != nil {
			if err := c.check(where, d, find); err != nil {
				return err
			}
		}
	}
	return nil
}

// check renders the call for d (and finds its program when find is set).
func (c *Call) check(where string, d Data, find bool) error {
	if c.HTTP != nil {
		_, err := renderHTTP(where+".http", c.HTTP, d)
		return err
	}
	argv, err := renderArgv(where+".command", c.Command, d)
	if err == nil && find {
		_, err = program(where+".command", c.Command[0].Line, argv)
	}
	return err
}

// renderedHTTP is an HTTPCall rendered for one node.
type renderedHTTP struct {
	method, path, body string
	headers            [][2]string
}

func renderHTTP(where string, h *HTTPCall, d Data) (renderedHTTP, error) {
	r := renderedHTTP{method: strings.ToUpper(h.Method)}
	if r.method == "" {
		r.method = http.MethodGet
	}
	var err error
	if r.path, err = render(where+".path", h.Path, d); err != nil {
		return r, err
	}
	if r.body, err = render(where+".body", h.Body, d); err != nil {
		return r, err
	}
	for _, k := range sortedKeys(h.Headers) {
		v, err := render(where+".headers."+k, h.Headers[k], d)
		if err != nil {
			return r, err
		}
		r.headers = append(r.headers, [2]string{k, v})
	}
	return r, nil
}
