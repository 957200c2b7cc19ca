package file

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/internal/gofail"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Target runs the system a target file describes. It implements sut.Target,
// nemesis.Clocker and nemesis.Members (used only when the file has the hooks: its
// Options' Caps say so), io.Closer, and sut.Failer: the target fails, for good, when an exec shim dies in the middle of an
// operation or answers something that is not an answer, or when the cluster is not
// ready within the file's ready.timeout; the run then stops.
//
// Node names (n1, n2, ...) are stable; a node's ID is not: a member the nemesis
// replaces comes back under a new ID, as a joining member (Data.Join).
type Target struct {
	f     *File
	env   sut.Env
	names []string
	dry   bool // checking the file: render, write nothing

	mu      sync.Mutex
	ids     map[string]uint64
	joined  map[string]bool
	nextID  uint64
	selves  map[string]string          // what each node called itself in its leader answer
	admins  map[string]workload.Client // per node: the client of the readiness write
	shims   map[*shim]bool             // every exec shim running
	logFile *os.File                   // shims.log: every shim's stderr
	logMu   sync.Mutex
	started time.Time // the first Ready call
	ready   bool      // Ready has succeeded once
	// setupDone: hooks.setup has been made (setUp).
	setupDone bool

	absentLeader sync.Once // the leader hook's field was absent: said once
	// leaderWait bounds each node's leader hook in Leader (0: leaderTimeout).
	leaderWait time.Duration

	failOnce sync.Once
	failed   chan struct{}
	failure  error
}

var (
	_ sut.Target      = (*Target)(nil)
	_ sut.Failer      = (*Target)(nil)
	_ nemesis.Clocker = (*Target)(nil)
	_ nemesis.Members = (*Target)(nil)
)

// New returns the target for env's nodes. Node i of env.Nodes starts with ID i+1.
func New(f *File, env sut.Env) *Target {
	if env.OpTimeout == 0 {
		env.OpTimeout = workload.DefaultOpTimeout
	}
	return newTarget(f, env)
}

func newTarget(f *File, env sut.Env) *Target {
	t := &Target{f: f, env: env, names: env.Nodes, ids: map[string]uint64{}, joined: map[string]bool{},
		nextID: uint64(len(env.Nodes)) + 1, selves: map[string]string{}, admins: map[string]workload.Client{},
		shims: map[*shim]bool{}, failed: make(chan struct{})}
	for i, n := range env.Nodes {
		t.ids[n] = uint64(i) + 1
	}
	return t
}

// Name implements sut.Target: the system's name, from the file.
func (t *Target) Name() string { return t.f.Name }

// Ports implements sut.Target.
func (t *Target) Ports() []int {
	ports := make([]int, 0, len(t.f.Ports))
	for _, name := range sortedKeys(t.f.Ports) {
		if p := t.f.Ports[name]; !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// Peers implements sut.Target.
func (t *Target) Peers() sut.Peers {
	return sut.Peers{Port: t.f.Ports[t.f.Peers.Port], Messages: t.f.Peers.Traffic == "messages"}
}

// Describe implements sut.Target. The file's text is in the run's spec (test.json).
func (t *Target) Describe() results.TargetInfo {
	return results.TargetInfo{Name: t.f.Name, File: t.f.Path, Protocol: t.f.Client.Protocol}
}

// Failed is closed once the target has failed for good; Failure then says why, in a line.
func (t *Target) Failed() <-chan struct{} { return t.failed }

// Failure is why the target failed (nil while it has not).
func (t *Target) Failure() error {
	select {
	case <-t.failed:
		return t.failure
	default:
		return nil
	}
}

// fail records the target's failure (the first one counts) and logs it.
func (t *Target) fail(err error) {
	t.failOnce.Do(func() {
		t.failure = err
		t.env.Logf("target %s failed: %v", t.f.Name, err)
		close(t.failed)
	})
}

// Close stops every exec shim still running and closes the admin clients.
func (t *Target) Close() error {
	t.mu.Lock()
	admins := t.admins
	t.admins = map[string]workload.Client{}
	shims := make([]*shim, 0, len(t.shims))
	for s := range t.shims {
		shims = append(shims, s)
	}
	t.mu.Unlock()
	var errs []error
	for _, c := range admins {
		errs = append(errs, closeClient(c))
	}
	for _, s := range shims {
		errs = append(errs, s.Close())
	}
	t.mu.Lock()
	if t.logFile != nil {
		errs = append(errs, t.logFile.Close())
		t.logFile = nil
	}
	t.mu.Unlock()
	return errors.Join(errs...)
}

// peer returns node as the others see it.
func (t *Target) peer(node string) Peer {
	addr := map[string]string{}
	for name, port := range t.f.Ports {
		if name == t.f.Peers.Port {
			addr[name] = t.env.PeerReach(node, port)
		} else {
			addr[name] = t.env.Reach(node, port)
		}
	}
	t.mu.Lock()
	id := t.ids[node]
	t.mu.Unlock()
	return Peer{Name: node, Index: slices.Index(t.names, node), ID: id, Addr: addr}
}

// data is what node's templates see; bind (nil: none) is where it listens.
func (t *Target) data(node, dataDir string, bind func(int) string) Data {
	peers := make([]Peer, len(t.names))
	for i, n := range t.names {
		peers[i] = t.peer(n)
	}
	self := t.peer(node)
	d := Data{Name: node, Index: self.Index, ID: self.ID, DataDir: dataDir, Addr: self.Addr, Bind: map[string]string{},
		Peers: peers, Cluster: clusterOf(peers, t.f.Peers.Port), Files: map[string]string{}, Vars: t.f.Vars,
		RunID: t.env.RunID, FileDir: t.f.Dir, Process: -1, OpTimeout: t.env.OpTimeout.String(),
		OpTimeoutMS: t.env.OpTimeout.Milliseconds(), Rate: 1}
	for name, port := range t.f.Ports {
		if bind != nil {
			d.Bind[name] = bind(port)
		}
	}
	for name := range t.f.Nodes.Files {
		d.Files[name] = filepath.Join(t.filesDir(node), name)
	}
	t.mu.Lock()
	d.Join = t.joined[node]
	t.mu.Unlock()
	return d
}

func (t *Target) filesDir(node string) string { return filepath.Join(t.env.Dir, "files", node) }

// Node implements sut.Target: the file's command for node, rendered now (its current
// ID, the peers' current IDs, Join for a re-added member), and its config files written.
// Load rendered every template already: an error here is the machine's (a file that
// cannot be written), logged; the node then starts without it and says so in its log.
func (t *Target) Node(env runtime.NodeEnv) runtime.NodeCmd {
	cmd, err := t.nodeCmd(env)
	if err != nil {
		t.env.Logf("target %s: node %s: %v", t.f.Name, env.Name, err)
	}
	return cmd
}

func (t *Target) nodeCmd(env runtime.NodeEnv) (runtime.NodeCmd, error) {
	d := t.data(env.Name, env.DataDir, env.Bind)
	argv, err := renderArgv("nodes.command", t.f.Nodes.Command, d)
	if err != nil {
		return runtime.NodeCmd{}, err
	}
	prog, err := program("nodes.command", t.f.Nodes.Command[0].Line, argv)
	if err != nil {
		return runtime.NodeCmd{}, err
	}
	vars, err := renderEnv("nodes.env", t.f.Nodes.Env, d)
	if err != nil {
		return runtime.NodeCmd{}, err
	}
	cmd := runtime.NodeCmd{Program: prog, Args: argv[1:], Env: vars}
	files := map[string]string{}
	for _, name := range sortedKeys(t.f.Nodes.Files) {
		if files[name], err = render("nodes.files."+name, t.f.Nodes.Files[name], d); err != nil {
			return cmd, err
		}
	}
	if len(files) == 0 || t.dry {
		return cmd, nil
	}
	if !strings.HasPrefix(env.DataDir, t.env.Dir) {
		t.env.Logf("target %s: %s does not see this host's files (runtime docker?): its config files are not there", t.f.Name, env.Name)
	}
	if err := os.MkdirAll(t.filesDir(env.Name), 0o755); err != nil {
		return cmd, fmt.Errorf("config files: %w", err)
	}
	for _, name := range sortedKeys(files) {
		if err := os.WriteFile(d.Files[name], []byte(files[name]), 0o644); err != nil {
			return cmd, fmt.Errorf("config file %s: %w", name, err)
		}
	}
	return cmd, nil
}

// nodeOf names the node an identity from a leader answer stands for: a node's name,
// its ID, what it called itself, or an address of one of its ports (with or without a
// scheme). "" if none.
func (t *Target) nodeOf(id string) string {
	id = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(id, "http://"), "https://"), "/")
	if id == "" || id == "0" {
		return ""
	}
	for _, n := range t.names {
		p := t.peer(n)
		t.mu.Lock()
		self := t.selves[n]
		t.mu.Unlock()
		if id == n || id == strconv.FormatUint(p.ID, 10) || self != "" && id == self {
			return n
		}
		for name, port := range t.f.Ports {
			if id == p.Addr[name] || id == t.env.Reach(n, port) {
				return n
			}
		}
	}
	return ""
}

// FileGlobs implements sut.Files: the file's data-files.
func (t *Target) FileGlobs(kind nemesis.FileKind) []string { return t.f.DataFiles[string(kind)] }

// Failpoints implements nemesis.Failpointer: the file's failpoints.points, or every
// point node's gofail endpoint lists.
func (t *Target) Failpoints(ctx context.Context, node string) ([]nemesis.Failpoint, error) {
	names := t.f.Failpoints.Points
	if len(names) == 0 {
		list, err := t.gofail(node).List(ctx)
		if err != nil {
			return nil, err
		}
		names = sortedKeys(list)
	}
	out := make([]nemesis.Failpoint, len(names))
	for i, n := range names {
		out[i] = nemesis.Failpoint{Name: n}
	}
	return out, nil
}

// SetFailpoint implements nemesis.Failpointer.
func (t *Target) SetFailpoint(ctx context.Context, node, name, term string) error {
	return t.gofail(node).Set(ctx, name, term)
}

// ClearFailpoint implements nemesis.Failpointer.
func (t *Target) ClearFailpoint(ctx context.Context, node, name string) error {
	return t.gofail(node).Clear(ctx, name)
}

func (t *Target) gofail(node string) *gofail.Client {
	return gofail.New(t.env.Reach(node, t.f.Ports[t.f.Failpoints.Port]))
}
