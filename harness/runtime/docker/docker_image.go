package docker

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/runtime/docker/engine"
)

// ImageRepo is the repository of every node image; containerDataDir is where a node's
// data directory from the host is mounted in its container.
const (
	ImageRepo        = "faultline-node"
	containerDataDir = "/data"
)

// inImage is where a program is put in its node image: /<its base name>, so that a
// program that looks at its own name sees the same one as on the host.
func inImage(program string) string { return "/" + filepath.Base(program) }

// EnsureImage returns the node image whose entrypoint is the program at binPath, as
// /<name>, building it FROM scratch when no image of that content exists yet. The tag is
// faultline-node:<first 12 hex of the build context's sha256>, so a second run with the
// same binary does not rebuild. A static binary (CGO_ENABLED=0) is all the image holds; a
// dynamically linked one brings its loader and libraries (nodeImageFiles).
func EnsureImage(ctx context.Context, cli *engine.Client, binPath, name string) (string, error) {
	entry := "/" + filepath.Base(name)
	files, libPath, err := nodeImageFiles(binPath, entry)
	if err != nil {
		return "", err
	}
	tarball, err := buildContext(files, libPath, entry)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(tarball)
	ref := ImageRepo + ":" + hex.EncodeToString(sum[:])[:12]
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	} else if !engine.IsNotFound(err) {
		return "", fmt.Errorf("image %s: %w", ref, err)
	}
	_, err = cli.ImageBuild(ctx, bytes.NewReader(tarball), engine.BuildOptions{
		Tags: []string{ref}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
		Labels: map[string]string{LabelOurs: "1"}, Version: "1", // the classic builder: no session
	})
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", ref, err)
	}
	if _, err := cli.ImageInspect(ctx, ref); err != nil {
		return "", fmt.Errorf("build image %s: built, but %w", ref, err)
	}
	return ref, nil
}

// CheckBinary reports whether the program at path can be put in a node image: a linux
// executable whose loader and libraries, if it has any, are on this host.
func CheckBinary(path string) error {
	_, _, err := nodeImageFiles(path, inImage(path))
	return err
}

// EnsureNodeImage is EnsureImage with a client from the environment (for `make image`
// and the like).
func EnsureNodeImage(ctx context.Context, binPath, name string) (string, error) {
	cli, err := dockerClient()
	if err != nil {
		return "", err
	}
	defer cli.Close()
	return EnsureImage(ctx, cli, binPath, name)
}

// buildContext is the tar the image is built from: a Dockerfile and the root filesystem
// (files, under rootfs/). It is deterministic: the same files give the same bytes.
func buildContext(files []imageFile, libPath []string, entry string) ([]byte, error) {
	dockerfile := "FROM scratch\nCOPY rootfs/ /\n"
	if len(libPath) > 0 {
		dockerfile += "ENV LD_LIBRARY_PATH=" + strings.Join(libPath, ":") + "\n"
	}
	dockerfile += "ENTRYPOINT [\"" + entry + "\"]\n"
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

// ensureImage builds (once per program) the image for the node program bin, unless an
// image was given to New.
func (r *DockerRuntime) ensureImage(ctx context.Context, bin string) (string, error) {
	r.imgMu.Lock()
	defer r.imgMu.Unlock()
	if r.image != "" {
		return r.image, nil
	}
	if ref, ok := r.images[bin]; ok {
		return ref, nil
	}
	ref, err := EnsureImage(ctx, r.cli, bin, bin)
	if err != nil {
		return "", err
	}
	r.images[bin] = ref
	return ref, nil
}

// Env implements Runtime: in its container a node binds every address (so that one
// restarted while disconnected from the network, the partition of last resort, can still
// bind), and finds its data at /data, the host's data/<node>/ of the run.
func (r *DockerRuntime) Env(node string) runtime.NodeEnv {
	return runtime.NodeEnv{Name: node, DataDir: containerDataDir,
		Bind: func(port int) string { return "0.0.0.0:" + strconv.Itoa(port) }}
}

func (r *DockerRuntime) dataDir(node string) string { return filepath.Join(r.dir, "data", node) }

// Wipe implements Runtime: the node's data directory on the host is emptied (the
// container, stopped, keeps its mount of it).
func (r *DockerRuntime) Wipe(ctx context.Context, node string) error {
	if r.node(node) != nil && r.Running(node) {
		return fmt.Errorf("wipe %s: it is running", node)
	}
	dir := r.dataDir(node)
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("wipe %s: %w", node, err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("wipe %s: %w", node, err)
		}
	}
	return nil
}

// create makes the node's container (not started): its image, address, hostname, data
// directory bind-mounted, labels, no restart policy, no extra privileges. It runs as the
// harness's own user, so that the data it writes on the host is the harness's.
func (r *DockerRuntime) create(ctx context.Context, node string, nc runtime.NodeCmd, logs *nodeLog) (*dockerNode, error) {
	img, err := r.ensureImage(ctx, nc.Program)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	netName, addr := r.netName, r.addrs[node]
	r.mu.Unlock()
	if netName == "" || !addr.IsValid() {
		return nil, fmt.Errorf("no address for %s: Prepare the runtime first", node)
	}
	abs, err := filepath.Abs(r.dataDir(node))
	if err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	binds := []string{abs + ":" + containerDataDir}
	logDir := filepath.Join(r.dir, "nodes", node)
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, fmt.Errorf("log dir: %w", err)
	}
	labels := r.labels()
	labels["faultline.node"] = node
	grace := int(runtime.StopGrace / time.Second)
	id, err := r.cli.ContainerCreate(ctx, r.containerName(node), engine.ContainerSpec{
		ContainerConfig: engine.ContainerConfig{
			Image: img, Hostname: node, Cmd: nc.Args, Env: nc.Env, Labels: labels, StopTimeout: &grace,
			User: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid()),
		},
		HostConfig: &engine.HostConfig{
			Binds: binds, NetworkMode: netName,
			RestartPolicy: engine.RestartPolicy{Name: "no"},
			LogConfig:     engine.LogConfig{Type: "json-file"},
		},
		NetworkingConfig: &engine.NetworkingConfig{EndpointsConfig: map[string]*engine.EndpointSettings{
			netName: {Aliases: []string{node}, IPAMConfig: &engine.EndpointIPAMConfig{IPv4Address: addr.String()}},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("create container: %w", err)
	}
	if logs == nil {
		logs = &nodeLog{path: filepath.Join(logDir, filepath.Base(nc.Program)+".log")}
	}
	n := &dockerNode{id: id, cmd: nc, logs: logs}
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
func (l *nodeLog) follow(cli *engine.Client, id string) {
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
		rc, err := cli.ContainerLogs(ctx, id, engine.LogsOptions{
			Stdout: true, Stderr: true, Follow: true, Timestamps: true, Since: since})
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
		err = rc.CopyTo(w, w)
		w.out.Flush()
		if err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(f, "=== faultline: log stream broke: %v\n", err)
		}
		if res, err := cli.ContainerInspect(ctx, id); err == nil && res.State != nil && !res.State.Running {
			fmt.Fprintf(f, "=== faultline: %s exited with code %d\n", time.Now().UTC().Format(time.RFC3339Nano), res.State.ExitCode)
		}
	}()
}

// wait waits (at most max) for the current follower to reach the end of the container's
// output, which it does once the container has stopped; then it gives up on it.
func (l *nodeLog) wait(ctx context.Context, max time.Duration) {
	done, cancel := l.current()
	drain(ctx, done, cancel, max)
}

// current returns the current follower's done channel and cancel (nil, nil if none).
func (l *nodeLog) current() (chan struct{}, context.CancelFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.done, l.cancel
}

// drain waits (at most max) for the follower (done, cancel) to reach the end of its
// container's output, then gives up on it.
func drain(ctx context.Context, done chan struct{}, cancel context.CancelFunc, max time.Duration) {
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
