package harness

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// Inside a node's container: the program (the image's entrypoint) and where the node's
// data directory from the host is mounted.
const (
	ImageRepo        = "faultline-node"
	containerBin     = "/raftnode"
	containerDataDir = "/data"
)

// EnsureImage returns the node image that runs the program at binPath as /raftnode (its
// entrypoint), building it FROM scratch when no image of that content exists yet. The
// tag is faultline-node:<first 12 hex of the build context's sha256>, so a second run
// with the same binary does not rebuild. A static binary (CGO_ENABLED=0) is all the image
// holds; a dynamically linked one brings its loader and libraries (nodeImageFiles).
func EnsureImage(ctx context.Context, cli *client.Client, binPath string) (string, error) {
	files, libPath, err := nodeImageFiles(binPath)
	if err != nil {
		return "", err
	}
	tarball, err := buildContext(files, libPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(tarball)
	ref := ImageRepo + ":" + hex.EncodeToString(sum[:])[:12]
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !cerrdefs.IsNotFound(err) {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	res, err := cli.ImageBuild(ctx, bytes.NewReader(tarball), client.ImageBuildOptions{
		Tags: []string{ref}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Labels: map[string]string{LabelOurs: "1"}, Version: build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	defer res.Body.Close()
	if err := buildOutcome(res.Body); err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("build image %s: built, but %w", ref, err)
	}
	return ref, nil
}

// CheckNodeBinary reports whether the program at path can be put in the node image: a
// linux executable whose loader and libraries, if it has any, are on this host.
func CheckNodeBinary(path string) error {
	_, _, err := nodeImageFiles(path)
	return err
}

// EnsureNodeImage is EnsureImage with a client from the environment (for `make image`
// and the like).
func EnsureNodeImage(ctx context.Context, binPath string) (string, error) {
	cli, err := dockerClient()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return EnsureImage(ctx, cli, binPath)
}

// buildContext is the tar the image is built from: a Dockerfile and the root filesystem
// (files, under rootfs/). It is deterministic: the same files give the same bytes.
func buildContext(files []imageFile, libPath []string) ([]byte, error) {
	dockerfile := "FROM scratch\nCOPY rootfs/ /\n"
	if len(libPath) > 0 {
		dockerfile += "ENV LD_LIBRARY_PATH=" + strings.Join(libPath, ":") + "\n"
	}
	dockerfile += "ENTRYPOINT [\"" + containerBin + "\"]\n"
	all := append([]imageFile{{path: "Dockerfile", mode: 0o644, data: []byte(dockerfile)}}, files...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range all {
		name := f.path
		if name != "Dockerfile" {
			name = "rootfs" + f.path
		}
		hdr := &tar.Header{Name: name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("build context: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("build context: %w", err)
	}
	return buf.Bytes(), nil
}

// buildOutcome reads the build's JSON message stream to its end and returns the error it
// reports, if any.
func buildOutcome(body io.Reader) error {
	dec := json.NewDecoder(body)
	var tail []string
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("read build output: %w", err)
		}
		if m.Error != "" {
			return fmt.Errorf("%s (after: %s)", m.Error, strings.Join(tail, " | "))
		}
		if s := strings.TrimSpace(m.Stream); s != "" {
			tail = append(tail[max(0, len(tail)-3):], s)
		}
	}
}

// ensureImage builds (once) the image for the node program bin, unless one was given.
func (r *DockerRuntime) ensureImage(ctx context.Context, bin string) (string, error) {
	r.imgMu.Lock()
	defer r.imgMu.Unlock()
	if r.image == "" {
		ref, err := EnsureImage(ctx, r.cli, bin)
		if err != nil {
			return "", err
		}
		r.image = ref
	}
	return r.image, nil
}

// containerArgs rewrites a node's arguments (after the program) for its container: the
// host data directory given by --data-dir becomes containerDataDir (and is returned), and
// the node's own address in a --listen* flag becomes 0.0.0.0, so that a node restarted
// while disconnected from the network (the partition of last resort) can still bind.
func containerArgs(args []string, self netip.Addr) (out []string, dataDir string) {
	out = make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, value, inline := strings.Cut(a, "=")
		if !inline && i+1 < len(args) && strings.HasPrefix(a, "-") {
			value = args[i+1]
		}
		flag := strings.TrimLeft(name, "-")
		switch {
		case flag == "data-dir" && value != "":
			dataDir, value = value, containerDataDir
		case strings.HasPrefix(flag, "listen") && self.IsValid():
			value = strings.ReplaceAll(value, self.String()+":", "0.0.0.0:")
		default:
			out = append(out, a)
			continue
		}
		if inline {
			out = append(out, name+"="+value)
		} else {
			out = append(out, name, value)
			i++
		}
	}
	return out, dataDir
}

// create makes the node's container (not started): its image, address, hostname, data
// directory bind-mounted, labels, no restart policy, no extra privileges. It runs as the
// harness's own user, so that the data it writes on the host is the harness's.
func (r *DockerRuntime) create(ctx context.Context, node string, nc NodeCmd, logs *nodeLog) (*dockerNode, error) {
	img, err := r.ensureImage(ctx, nc.Args[0])
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	netName, addr := r.netName, r.addrs[node]
	r.mu.Unlock()
	if netName == "" || !addr.IsValid() {
		return nil, fmt.Errorf("no address for %s: Prepare the runtime first", node)
	}
	args, dataDir := containerArgs(nc.Args[1:], addr)
	var binds []string
	if dataDir != "" {
		abs, err := filepath.Abs(dataDir)
		if err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return nil, fmt.Errorf("data dir: %w", err)
		}
		binds = append(binds, abs+":"+containerDataDir)
	}
	logDir := filepath.Join(r.dir, "nodes", node)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	labels := r.labels()
	labels["faultline.node"] = node
	grace := int(StopGrace / time.Second)
	res, err := r.cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: r.containerName(node),
		Config: &container.Config{
			Image: img, Hostname: node, Cmd: args, Labels: labels, StopTimeout: &grace,
			User: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		},
		HostConfig: &container.HostConfig{
			Binds: binds, NetworkMode: container.NetworkMode(netName),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyDisabled},
			LogConfig:     container.LogConfig{Type: "json-file"},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			netName: {Aliases: []string{node}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: addr}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if logs == nil {
		logs = &nodeLog{path: filepath.Join(logDir, filepath.Base(nc.Args[0])+".log")}
	}
	n := &dockerNode{id: res.ID, args: slices.Clone(nc.Args), ctrArgs: args, logs: logs}
	r.mu.Lock()
	r.ctrs[node] = n
	r.mu.Unlock()
	return n, nil
}

// nodeLog appends a container's output to the node's log file across its lives: each
// start follows the container's log from just after the last line already copied.
type nodeLog struct {
	path string

	mu     sync.Mutex
	last   time.Time // timestamp of the last line copied
	done   chan struct{}
	cancel context.CancelFunc
}

// mark appends a line of the harness's own to the log.
func (l *nodeLog) mark(format string, args ...any) {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== faultline: %s %s\n", time.Now().UTC().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
}

// follow copies the container's output until it stops.
func (l *nodeLog) follow(cli *client.Client, id string) {
	ctx, cancel := context.WithCancel(context.Background())
	l.mu.Lock()
	since := ""
	if !l.last.IsZero() {
		t := l.last.Add(time.Nanosecond)
		since = fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
	}
	done := make(chan struct{})
	l.done, l.cancel = done, cancel
	l.mu.Unlock()
	go func() {
		defer close(done)
		defer cancel()
		rc, err := cli.ContainerLogs(ctx, id, client.ContainerLogsOptions{
			ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true, Since: since})
		if err != nil {
			l.mark("cannot follow the container's log: %v", err)
			return
		}
		defer rc.Close()
		f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return
		}
		defer f.Close()
		w := &stampWriter{log: l, out: bufio.NewWriter(f)}
		_, err = stdcopy.StdCopy(w, w, rc)
		w.out.Flush()
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(f, "=== faultline: log stream broke: %v\n", err)
		}
		if res, err := cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil && !res.Container.State.Running {
			fmt.Fprintf(f, "=== faultline: %s exited with code %d\n", time.Now().UTC().Format(time.RFC3339Nano), res.Container.State.ExitCode)
		}
	}()
}

// wait waits (at most max) for the current follower to reach the end of the container's
// output, which it does once the container has stopped; then it gives up on it.
func (l *nodeLog) wait(ctx context.Context, max time.Duration) {
	l.mu.Lock()
	done, cancel := l.done, l.cancel
	l.mu.Unlock()
	if done == nil {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	case <-ctx.Done():
	}
	cancel()
	<-done
}

// stampWriter takes docker's timestamped log lines, writes them without the stamp and
// remembers the last stamp (where the next follow starts).
type stampWriter struct {
	log     *nodeLog
	out     *bufio.Writer
	partial []byte
}

func (w *stampWriter) Write(p []byte) (int, error) {
	n := len(p)
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i+1]
		if ts, rest, ok := bytes.Cut(line, []byte{' '}); ok {
			if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
				w.log.mu.Lock()
				w.log.last = t
				w.log.mu.Unlock()
				line = rest
			}
		}
		if _, err := w.out.Write(line); err != nil {
			return 0, err
		}
		w.partial = w.partial[i+1:]
	}
	w.partial = bytes.Clone(w.partial)
	return n, w.out.Flush()
}
