package docker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/docker/engine"
	"github.com/faultline/faultline/harness/runtime/vclock"
)

// Labels on everything the docker runtime creates. LabelOurs marks an object as
// faultline's (what `faultline clean` removes); LabelRun names the run that made it.
const (
	LabelOurs = "faultline"
	LabelRun  = "faultline.run"
	// LabelHarness is "<host>/<pid>" of the harness running the run: DockerCleanAll
	// leaves the objects of a harness that is still alive on this host.
	LabelHarness = "faultline.harness"
)

// DockerRuntime runs each node as a container built FROM scratch around the node's
// program (a static binary; a dynamically linked one brings its loader and libraries), on
// a bridge network made for the run, each at a fixed address.
//
// Faults: kill is SIGKILL to the container and restart starts the same container again
// (same data, bind-mounted from the run directory); pause is the cgroup freezer (docker
// pause). The harness filters packets inside the container's network namespace
// (NetNS: /proc/<pid>/ns/net of its current incarnation: a restarted container has a new
// pid and a fresh namespace, which the harness gives the partition in force again).
// Containers get no privileges and no capabilities beyond docker's default.
//
// When the daemon's namespaces are out of reach (a remote daemon, or no root here), it
// can only take whole containers off the run's network (Isolate).
type DockerRuntime struct {
	runID  string
	dir    string
	cli    *engine.Client
	image  string            // the image given to New ("" builds one per program)
	images map[string]string // program path -> image built for it
	// nsWhy says why partitions cannot use the containers' namespaces ("" when they can).
	nsWhy string

	imgMu sync.Mutex // serializes the image build

	mu      sync.Mutex
	netName string
	subnet  netip.Prefix
	addrs   map[string]netip.Addr
	nodes   []string
	ctrs    map[string]*dockerNode

	cutMu sync.Mutex      // serializes Isolate
	cut   map[string]bool // nodes taken off the network (Isolate)
}

type dockerNode struct {
	id   string
	cmd  runtime.NodeCmd // the command it was created for
	logs *nodeLog
}

// dockerClient returns a client configured from the environment (DOCKER_HOST,
// DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_API_VERSION) that negotiates the API
// version with the daemon on its first request.
func dockerClient() (*engine.Client, error) {
	cli, err := engine.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return cli, nil
}

// Available reports whether a Docker daemon answers, and says which (or why not).
// It waits at most 3 seconds.
func Available(ctx context.Context) (bool, string) {
	cli, err := dockerClient()
	if err != nil {
		return false, err.Error()
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	ping, err := cli.Ping(ctx)
	if err != nil {
		return false, fmt.Sprintf("no docker daemon answers at %s: %v", cli.Host(), err)
	}
	if ping.OSType != "" && ping.OSType != "linux" {
		return false, fmt.Sprintf("the docker daemon at %s runs %s containers, not linux", cli.Host(), ping.OSType)
	}
	return true, fmt.Sprintf("docker API %s at %s", cli.APIVersion(), cli.Host())
}

// New returns a docker runtime for one run; dir is the run's directory (node logs go to
// dir/nodes/<name>/, data to dir/data/<name>/). image is the node image to run; "" builds
// one for each program a node is launched with (see EnsureImage).
func New(runID, dir, image string) (*DockerRuntime, error) {
	cli, err := dockerClient()
	if err != nil {
		return nil, err
	}
	r := &DockerRuntime{runID: runID, dir: dir, cli: cli, image: image, images: map[string]string{},
		addrs: map[string]netip.Addr{}, ctrs: map[string]*dockerNode{}, cut: map[string]bool{}}
	r.nsWhy = namespacesWhy(cli.Host())
	return r, nil
}

// namespacesWhy says why the containers' network namespaces cannot be entered from here
// ("" when they can): that needs a daemon on this host and root.
func namespacesWhy(host string) string {
	switch {
	case !strings.HasPrefix(host, "unix://"):
		return "the docker daemon is remote (" + host + "), its containers' namespaces are out of reach"
	case os.Geteuid() != 0:
		return "entering a container's network namespace needs root"
	}
	return netfilterWhy()
}

// Name implements Runtime.
func (r *DockerRuntime) Name() string { return "docker" }

// Image returns the node image in use for program ("" before its first Launch, unless
// an image was given to New).
func (r *DockerRuntime) Image(program string) string {
	r.imgMu.Lock()
	defer r.imgMu.Unlock()
	if r.image != "" {
		return r.image
	}
	return r.images[program]
}

// Network returns the name of the run's network and its subnet.
func (r *DockerRuntime) Network() (string, netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.netName, r.subnet
}

func (r *DockerRuntime) labels() map[string]string {
	return map[string]string{LabelOurs: "1", LabelRun: r.runID, LabelHarness: harnessID(os.Getpid())}
}

// harnessID names the harness process pid on this host, for LabelHarness.
func harnessID(pid int) string {
	host, _ := os.Hostname()
	return host + "/" + strconv.Itoa(pid)
}

// harnessAlive reports whether the harness a LabelHarness value names is a live process
// of this host other than this one (a harness elsewhere counts as alive: not ours to judge).
func harnessAlive(label string) bool {
	host, pid, ok := strings.Cut(label, "/")
	if !ok {
		return false
	}
	me, _ := os.Hostname()
	if host != me {
		return true
	}
	p, err := strconv.Atoi(pid)
	return err == nil && p != os.Getpid() && runtime.Alive(p)
}

func (r *DockerRuntime) containerName(node string) string {
	return "faultline-" + r.runID + "-" + node
}

// HostPort implements Runtime: the container's own address, which both the host and the
// other containers reach over the run's bridge.
func (r *DockerRuntime) HostPort(node string, port int) string {
	return netip.AddrPortFrom(r.Addr(node), uint16(port)).String()
}

// Addr implements NetworkRuntime.
func (r *DockerRuntime) Addr(node string) netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrs[node]
}

// HostAddr implements NetworkRuntime: the run network's gateway, the host's address on
// its bridge.
func (r *DockerRuntime) HostAddr() netip.Addr {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.subnet.IsValid() {
		return netip.Addr{}
	}
	return r.subnet.Addr().Next()
}

// NetNS implements NetworkRuntime: the network namespace of the node's running
// container, from its current pid.
func (r *DockerRuntime) NetNS(node string) (string, error) {
	if why := r.nsWhy; why != "" {
		return "", errors.New(why)
	}
	pid, err := r.pid(context.Background(), node)
	if err != nil {
		return "", err
	}
	return "/proc/" + strconv.Itoa(pid) + "/ns/net", nil
}

// pid inspects the node's container for the pid of its first process.
func (r *DockerRuntime) pid(ctx context.Context, node string) (int, error) {
	st, err := r.state(ctx, node)
	if err != nil {
		return 0, err
	}
	if !st.Running || st.Pid == 0 {
		return 0, fmt.Errorf("%s is not running", node)
	}
	return st.Pid, nil
}

func (r *DockerRuntime) node(node string) *dockerNode {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctrs[node]
}

func (r *DockerRuntime) state(ctx context.Context, node string) (*engine.ContainerState, error) {
	n := r.node(node)
	if n == nil {
		return nil, fmt.Errorf("%s was never launched", node)
	}
	res, err := r.cli.ContainerInspect(ctx, n.id)
	if err != nil {
		return nil, fmt.Errorf("inspect %s: %w", node, err)
	}
	if res.State == nil {
		return nil, fmt.Errorf("inspect %s: no state", node)
	}
	return res.State, nil
}

// Running implements Runtime (paused counts as running). Once it says a node is not
// running, the node's log holds all that its container wrote: the log's copy lags the
// container, so it waits (5 s at most) for the copy to reach the container's end, and
// what a node said as it exited (why it refused its data, say) is there to read. It
// waits for the follower of the life it saw end, never for one a Launch started since.
func (r *DockerRuntime) Running(node string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var done chan struct{}
	var stop context.CancelFunc
	if n := r.node(node); n != nil {
		done, stop = n.logs.current() // before the inspect: this life's, or an ended one's
	}
	st, err := r.state(ctx, node)
	if err != nil {
		return false
	}
	if !st.Running {
		drain(ctx, done, stop, 5*time.Second)
	}
	return st.Running
}

// Kill implements Runtime: SIGKILL, then wait until the container is not running.
func (r *DockerRuntime) Kill(ctx context.Context, node string) error {
	n := r.node(node)
	if n == nil {
		return fmt.Errorf("kill: %s was never launched", node)
	}
	if err := r.cli.ContainerKill(ctx, n.id, "KILL"); err != nil {
		return fmt.Errorf("kill %s: %w", node, err)
	}
	return r.waitStopped(ctx, node)
}

// waitStopped polls until the node's container is not running, then waits for its log to
// be drained.
func (r *DockerRuntime) waitStopped(ctx context.Context, node string) error {
	for {
		st, err := r.state(ctx, node)
		if err != nil {
			return err
		}
		if !st.Running {
			r.node(node).logs.wait(ctx, 5*time.Second)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to stop: %w", node, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop implements Runtime: SIGTERM, SIGKILL after StopGrace (docker does both). A paused
// container is thawed first, so that it can shut down.
func (r *DockerRuntime) Stop(ctx context.Context, node string) error {
	n := r.node(node)
	if n == nil {
		return nil
	}
	if st, err := r.state(ctx, node); err == nil && st.Paused {
		_ = r.Resume(ctx, node)
	}
	secs := int(runtime.StopGrace / time.Second)
	if err := r.cli.ContainerStop(ctx, n.id, &secs); err != nil {
		return fmt.Errorf("stop %s: %w", node, err)
	}
	return r.waitStopped(ctx, node)
}

// Pause implements Runtime with docker pause (the cgroup freezer).
func (r *DockerRuntime) Pause(ctx context.Context, node string) error {
	n := r.node(node)
	if n == nil {
		return fmt.Errorf("pause: %s was never launched", node)
	}
	if err := r.cli.ContainerPause(ctx, n.id); err != nil {
		return fmt.Errorf("pause %s: %w", node, err)
	}
	return nil
}

// Resume implements Runtime with docker unpause.
func (r *DockerRuntime) Resume(ctx context.Context, node string) error {
	n := r.node(node)
	if n == nil {
		return fmt.Errorf("resume: %s was never launched", node)
	}
	if err := r.cli.ContainerUnpause(ctx, n.id); err != nil {
		return fmt.Errorf("resume %s: %w", node, err)
	}
	return nil
}

// Abilities implements Runtime. Without access to the containers' namespaces only whole
// containers can be taken off the network (Isolate).
func (r *DockerRuntime) Abilities() runtime.Abilities { return abilitiesFor(r.nsWhy) }

func abilitiesFor(nsWhy string) runtime.Abilities {
	if nsWhy != "" {
		return runtime.Abilities{Isolate: true, Why: nsWhy + "; partitions can only take whole containers off the run's network",
			DisksWhy: nsWhy + "; the nodes' data directories are bind mounts the harness cannot put on its own disks",
			ClockWhy: nsWhy + "; the harness cannot reach the containers' processes to give them clocks of their own"}
	}
	// A local daemon in the host's mount namespace binds a node's data directory from
	// the host at each start: what the harness mounts there is what the container sees.
	// Its containers' processes are this host's: the harness ptraces them from here
	// (vclock), the containers keep no privilege for it.
	a := runtime.Abilities{Partition: true, Isolate: true, Links: true, Disks: true, DataDirs: true, Clock: true}
	switch err := vclock.Supported(); {
	case err != nil:
		a.Clock, a.ClockWhy = false, err.Error()
	case os.Geteuid() != 0:
		a.Clock, a.ClockWhy = false, "the containers' processes are root's, and ptrace needs root to reach them (run faultline as root)"
	}
	return a
}

// SetClock implements runtime.Clocker: the clocks of the container's processes, set
// from the host through vclock. A paused (frozen) container's processes cannot be
// stopped to be patched; one patched before takes new clocks all the same.
func (r *DockerRuntime) SetClock(ctx context.Context, node string, c vclock.Clocks) error {
	if r.nsWhy != "" {
		return fmt.Errorf("clock of %s: %s", node, r.nsWhy)
	}
	pid, err := r.pid(ctx, node)
	if err != nil {
		if c == (vclock.Clocks{}) {
			return nil // a node that is down starts with true clocks
		}
		return fmt.Errorf("clock: %w", err)
	}
	if err := vclock.SetTree(pid, c); err != nil {
		return fmt.Errorf("clock of %s: %w", node, err)
	}
	return nil
}

// HostDataDir implements runtime.HostDirs: the host directory bound at /data.
func (r *DockerRuntime) HostDataDir(node string) string {
	abs, _ := filepath.Abs(r.dataDir(node))
	return abs
}

func init() {
	runtime.Register(runtime.Kind{
		Name: "docker", Auto: 2,
		Doc: "each node a container FROM scratch around its program, on a bridge network of the run's",
		Probe: func(ctx context.Context) (bool, string) {
			ok, why := Available(ctx)
			if !ok {
				return false, why
			}
			self, err := os.Executable()
			if err == nil {
				err = CheckBinary(self)
			}
			if err != nil {
				return false, "docker answers, but " + err.Error()
			}
			return true, why
		},
		Abilities: func(context.Context) runtime.Abilities {
			cli, err := dockerClient()
			if err != nil {
				return runtime.Abilities{Why: err.Error()}
			}
			defer cli.Close()
			return abilitiesFor(namespacesWhy(cli.Host()))
		},
		New: func(runID, dir string) (runtime.Runtime, error) { return New(runID, dir, "") },
	})
}

// Launch implements Runtime. The first Launch of a node creates its container (building
// the image first if none was given); later ones start the same container again, with
// its data. A partition in force is applied to the new namespace before Launch returns
// (the node may run unfiltered for the few milliseconds between). Launches of different
// nodes may run concurrently; of the same node, not.
func (r *DockerRuntime) Launch(ctx context.Context, node string, nc runtime.NodeCmd) error {
	if nc.Program == "" {
		return fmt.Errorf("launch %s: no program", node)
	}
	n, err := r.container(ctx, node, nc)
	if err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	n.logs.wait(ctx, 5*time.Second) // the previous life's log is drained
	n.logs.mark("starting %s %v (in container %s as %s)", nc.Program, nc.Args, r.containerName(node), inImage(nc.Program))
	if err := r.cli.ContainerStart(ctx, n.id); err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	n.logs.follow(r.cli, n.id)
	pid, err := r.pid(ctx, node)
	if err != nil {
		return fmt.Errorf("launch %s: %w", node, err)
	}
	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid), "ns", "net")); err != nil && r.nsWhy == "" {
		return fmt.Errorf("launch %s: the container's pid %d is not visible here (is the daemon in another pid namespace?)", node, pid)
	}
	return nil
}

// container returns the node's container for nc: created at the first launch, the same
// one after that (same data, same address), or made anew when the command changed (a
// member re-added with other flags), keeping its name, address, data and log.
func (r *DockerRuntime) container(ctx context.Context, node string, nc runtime.NodeCmd) (*dockerNode, error) {
	n := r.node(node)
	if n == nil {
		return r.create(ctx, node, nc, nil)
	}
	st, err := r.state(ctx, node)
	if err != nil {
		return nil, err
	}
	if st.Running {
		return nil, fmt.Errorf("already running (pid %d)", st.Pid)
	}
	if n.cmd.Equal(nc) {
		return n, nil
	}
	n.logs.wait(ctx, 5*time.Second)
	if err := r.cli.ContainerRemove(ctx, n.id, engine.RemoveOptions{Force: true, Volumes: true}); err != nil {
		return nil, fmt.Errorf("replace the container: %w", err)
	}
	r.mu.Lock()
	delete(r.ctrs, node)
	r.cut[node] = false
	r.mu.Unlock()
	return r.create(ctx, node, nc, n.logs)
}

// netfilterWhy says which host tool the namespace filters need is missing ("" if none).
func netfilterWhy() string {
	for _, tool := range []string{"nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "no " + tool + " on this host"
		}
	}
	return ""
}

func (r *DockerRuntime) nodeNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.nodes)
}
