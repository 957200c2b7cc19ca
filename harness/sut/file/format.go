package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/workload"
)

// File is a loaded, checked target file (see docs/target-file.md for the format). Its
// templates are parsed and have rendered once for a sample cluster, its programs were
// found, and its vars are resolved: nothing in it can fail on its own at run time.
type File struct {
	// Name is the system's name (the file's `name`, else its base name).
	Name string `yaml:"name"`
	// Vars are the file's variables with their defaults, as the templates see them in
	// .Vars; Load replaces the defaults with the values it is given.
	Vars map[string]string `yaml:"vars"`
	// Ports are the ports every node listens on, by name.
	Ports map[string]int `yaml:"ports"`
	Peers PeerSpec       `yaml:"peers"`
	Nodes NodeSpec       `yaml:"nodes"`
	Ready ReadySpec      `yaml:"ready"`
	// Client is how the workloads talk to a node.
	Client ClientSpec `yaml:"client"`
	// Workloads are the workloads the target's clients support (default: every one its
	// client protocol can run); another is a usage error before anything starts, so that
	// a shim that only speaks registers never passes an append run on nothing.
	Workloads []workload.Kind `yaml:"workloads"`
	Hooks     HookSpecs       `yaml:"hooks"`
	// DataFiles names the node's data files by kind (log, snapshot, state): globs
	// relative to its data directory ({{.DataDir}}), for the corrupt fault.
	DataFiles map[string][]string `yaml:"data-files"`
	// Failpoints declares a gofail endpoint (go.etcd.io/gofail): the port the node
	// serves it on (the node must be started with GOFAIL_HTTP={{.Bind.<port>}}), and the
	// points the failpoint fault may use (default: every point the node lists).
	Failpoints *FailpointSpec `yaml:"failpoints"`

	// Path is the file's path, Dir its directory (absolute: .FileDir), Source its text.
	Path, Dir string `yaml:"-"`
	Source    string `yaml:"-"`
}

// FailpointSpec is a node's gofail endpoint, and the points a run may use.
type FailpointSpec struct {
	Port   string   `yaml:"port"`
	Points []string `yaml:"points"`
}

// PeerSpec says how nodes talk to each other, for the link proxy.
type PeerSpec struct {
	// Port names the port peers connect to.
	Port string `yaml:"port"`
	// Traffic is "streams" (long-lived TCP connections: the default) or "messages"
	// (one-way HTTP POSTs whose answers carry nothing, as raftnode's).
	Traffic string `yaml:"traffic"`
}

// NodeSpec is how node i starts: its argv, extra environment and config files, all
// templates over Data.
type NodeSpec struct {
	// Command is the argv; an element that renders to "" is left out. Its first
	// element is the program: a path, or a name looked up in $PATH.
	Command []Tmpl `yaml:"command"`
	// Env is extra environment (name → value).
	Env map[string]Tmpl `yaml:"env"`
	// Files are config files (name → content) written before each start, at the
	// paths .Files.<name> gives the command (process runtime only).
	Files map[string]Tmpl `yaml:"files"`
}

// ReadySpec is how to tell that one node serves: an HTTP GET answering 2xx, or a TCP
// port accepting a connection. Timeout (optional) bounds the wait for the cluster's
// first readiness: a cluster not ready by then stops the run, naming the node.
type ReadySpec struct {
	HTTP *HTTPCall `yaml:"http"`
	TCP  string    `yaml:"tcp"`
	// Command is run on this host for each node (templates with the node's data):
	// exit 0 is ready.
	Command []Tmpl `yaml:"command"`
	// Expect, with http or command, is a condition on the answer besides success.
	Expect  *ReadyExpect `yaml:"expect"`
	Timeout Duration     `yaml:"timeout"`
}

// ReadyExpect is a condition on a readiness answer: the value at Field (a JSON path as
// the leader hook's; empty: the whole answer, trimmed) equals Equals (a template with
// the node's data, e.g. '{{len .Peers}}' for "every peer is in").
type ReadyExpect struct {
	Field  string `yaml:"field"`
	Equals Tmpl   `yaml:"equals"`
}

// HTTPCall is an HTTP request to one node's port: method (default GET), path and
// body templates, headers. Any 2xx answer is success.
type HTTPCall struct {
	Port    string          `yaml:"port"`
	Method  string          `yaml:"method"`
	Path    Tmpl            `yaml:"path"`
	Body    Tmpl            `yaml:"body"`
	Headers map[string]Tmpl `yaml:"headers"`
}

// ClientSpec is the workloads' client protocol: http (faultline's HTTP/JSON KV protocol,
// docs/protocol.md) or etcd (the etcd v3 API) on Port, or exec (a shim faultline starts
// for each client process and talks to in JSON lines on its stdin and stdout).
//
// StartTimeout bounds an exec shim's start, until it has answered init (default 30s).
// Transactions says that an exec shim runs transactions (the txn workload).
type ClientSpec struct {
	Protocol     string          `yaml:"protocol"`
	Port         string          `yaml:"port"`
	Command      []Tmpl          `yaml:"command"`
	Env          map[string]Tmpl `yaml:"env"`
	StartTimeout Duration        `yaml:"start-timeout"`
	// Transactions says that the exec shim answers "txn" requests (docs/protocol.md),
	// which the txn workload sends.
	Transactions bool `yaml:"transactions"`
}

// HookSpecs are the optional hooks: who leads, clock, membership.
type HookSpecs struct {
	// Setup is called once, when the cluster first serves, before the workload: what
	// the system needs before any client may use it (a bucket, a table, a namespace).
	// It is made to the leader (with a leader hook), else the first node.
	Setup        *Call       `yaml:"setup"`
	Leader       *LeaderHook `yaml:"leader"`
	Clock        *Call       `yaml:"clock"`
	RemoveMember *Call       `yaml:"remove-member"`
	AddMember    *Call       `yaml:"add-member"`
}

// Call is a hook: an HTTP call to a node, or a command run on this host. Success is a
// 2xx answer, or exit status 0; the answer is the body, or the command's stdout.
type Call struct {
	HTTP    *HTTPCall `yaml:"http"`
	Command []Tmpl    `yaml:"command"`
}

// LeaderHook asks each node who leads. Field is the dotted path of the leader's
// identity in the JSON answer (empty: the whole answer, as text); Self, optional, the
// path of the answering node's own identity there. An identity is a node's name, its
// .ID, an address of one of its ports, or what it said as Self.
type LeaderHook struct {
	Call  `yaml:",inline"`
	Field string `yaml:"field"`
	Self  string `yaml:"self"`
}

// Tmpl is a text/template over Data, parsed when the file is loaded. Line is where it
// is in the file.
type Tmpl struct {
	Src  string
	Line int
	t    *templateT
}

// UnmarshalYAML parses a scalar as a template.
func (t *Tmpl) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: want a string (a template), got a %s", n.Line, kindName(n.Kind))
	}
	tt, err := parseTemplate(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: template %q does not parse: %v", n.Line, n.Value, err)
	}
	*t = Tmpl{Src: n.Value, Line: n.Line, t: tt}
	return nil
}

// Duration is a time.Duration written "5s".
type Duration time.Duration

// UnmarshalYAML accepts "5s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: %q is not a duration like 30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// Error is what is wrong with a target file: a bad file, nothing was started.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string { return "target file " + e.Path + ": " + e.Msg }

// Load reads the target file at path, strictly (an unknown field is an error naming its
// line), and checks it (see check); vars override the file's defaults, and naming a
// var the file does not declare is an error. Every error is an *Error on one line.
func Load(path string, vars map[string]string) (*File, error) {
	b, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is said already
	}
	if err != nil {
		return nil, &Error{Path: path, Msg: err.Error()}
	}
	return Parse(path, b, vars)
}

// Parse is Load of a target file's text b, as read from path (which names it in errors
// and is where its relative paths start).
func Parse(path string, b []byte, vars map[string]string) (*File, error) {
	bad := func(format string, args ...any) error { return &Error{Path: path, Msg: fmt.Sprintf(format, args...)} }
	var err error
	f := &File{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, bad("empty")
		}
		return nil, bad("%s", yamlMessage(err))
	}
	f.Path, f.Source = path, string(b)
	if f.Dir, err = filepath.Abs(filepath.Dir(path)); err != nil {
		return nil, bad("%v", err)
	}
	if f.Name == "" {
		f.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	if f.Vars == nil {
		f.Vars = map[string]string{}
	}
	for k, v := range vars {
		if _, ok := f.Vars[k]; !ok {
			return nil, bad("target-var %s: the file declares no such var (vars: %s)", k, strings.Join(sortedKeys(f.Vars), ", "))
		}
		f.Vars[k] = v
	}
	if err := f.check(); err != nil {
		return nil, bad("%v", err)
	}
	return f, nil
}

// fieldRE matches yaml.v3's "line 3: field commnd not found in type file.NodeSpec".
var fieldRE = regexp.MustCompile(`line (\d+): field (\S+) not found in type \S+?\.?(\w+)$`)

// yamlMessage turns a YAML decoding error into one line: each unknown field with its
// line and the fields its section knows.
func yamlMessage(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		if m := fieldRE.FindStringSubmatch(e); m != nil {
			e = fmt.Sprintf("line %s: unknown field %q (%s has: %s)", m[1], m[2], sectionOf[m[3]], strings.Join(knownFields(m[3]), ", "))
		}
		msgs = append(msgs, e)
	}
	return strings.Join(msgs, "; ")
}

// sectionOf names the section of the file each type is.
var sectionOf = map[string]string{
	"File": "the file", "PeerSpec": "peers", "NodeSpec": "nodes", "ReadySpec": "ready",
	"HTTPCall": "an http call", "ClientSpec": "client", "HookSpecs": "hooks", "Call": "a hook",
	"LeaderHook": "hooks.leader",
}

var sectionTypes = map[string]reflect.Type{
	"File": reflect.TypeFor[File](), "PeerSpec": reflect.TypeFor[PeerSpec](), "NodeSpec": reflect.TypeFor[NodeSpec](),
	"ReadySpec": reflect.TypeFor[ReadySpec](), "HTTPCall": reflect.TypeFor[HTTPCall](),
	"ClientSpec": reflect.TypeFor[ClientSpec](), "HookSpecs": reflect.TypeFor[HookSpecs](),
	"Call": reflect.TypeFor[Call](), "LeaderHook": reflect.TypeFor[LeaderHook](),
}

// knownFields lists the YAML keys of the named section's type.
func knownFields(typeName string) []string {
	var out []string
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for f := range t.Fields() {
			tag, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case opts == "inline":
				walk(f.Type)
			case tag != "" && tag != "-":
				out = append(out, tag)
			}
		}
	}
	if t, ok := sectionTypes[typeName]; ok {
		walk(t)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
