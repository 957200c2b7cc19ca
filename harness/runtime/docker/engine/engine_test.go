package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeDaemon serves h on a unix socket in a temporary directory, and returns a client
// of it made from the environment (DOCKER_HOST), as faultline makes its own.
func fakeDaemon(t *testing.T, h http.Handler) *Client {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	c, err := FromEnv()
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// daemon is a fake daemon's handler: /_ping answers with apiVersion (none when ""),
// every other path goes to api with the version prefix taken off, and the version
// noted.
type daemon struct {
	apiVersion string
	api        http.HandlerFunc

	pings    atomic.Int32
	mu       sync.Mutex
	versions []string // of each API call, in order
}

func (d *daemon) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/_ping" {
		d.pings.Add(1)
		if d.apiVersion != "" {
			w.Header().Set("Api-Version", d.apiVersion)
		}
		w.Header().Set("Ostype", "linux")
		io.WriteString(w, "OK")
		return
	}
	v, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v"), "/")
	if !ok || !strings.HasPrefix(r.URL.Path, "/v") {
		http.Error(w, `{"message":"page not found"}`, http.StatusNotFound)
		return
	}
	d.mu.Lock()
	d.versions = append(d.versions, v)
	d.mu.Unlock()
	r.URL.Path = "/" + rest
	if d.api == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	d.api(w, r)
}

func (d *daemon) seen() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.versions...)
}

func TestNegotiatesTheLowerVersionOnce(t *testing.T) {
	for _, tc := range []struct{ daemon, want string }{
		{"1.41", "1.41"},        // an older daemon: its version
		{"1.99", MaxAPIVersion}, // a newer one: ours
		{"", MaxAPIVersion},     // one that does not say
		{MinAPIVersion, MinAPIVersion},
	} {
		t.Run("daemon "+tc.daemon, func(t *testing.T) {
			d := &daemon{apiVersion: tc.daemon}
			c := fakeDaemon(t, d)
			assert.Equal(t, "", c.APIVersion(), "nothing is negotiated before the first call")
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() { assert.NoError(t, c.ContainerStart(context.Background(), "x")) })
			}
			wg.Wait()
			assert.Equal(t, int32(1), d.pings.Load(), "negotiated once, by one of the concurrent calls")
			assert.Equal(t, tc.want, c.APIVersion())
			for _, v := range d.seen() {
				assert.Equal(t, tc.want, v)
			}
			_, err := c.Ping(context.Background())
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.APIVersion(), "a later ping keeps the version")
		})
	}
}

func TestRefusesADaemonTooOld(t *testing.T) {
	d := &daemon{apiVersion: "1.39"}
	c := fakeDaemon(t, d)
	err := c.ContainerStart(context.Background(), "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "below "+MinAPIVersion)
	assert.Empty(t, d.seen(), "no call is sent at a version the daemon cannot have")
	assert.Equal(t, "", c.APIVersion())
}

func TestNegotiationIsRetriedAfterAFailure(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	d := &daemon{apiVersion: "1.43"}
	c := fakeDaemon(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/_ping" && fail.Load() {
			http.Error(w, `{"message":"starting up"}`, http.StatusServiceUnavailable)
			return
		}
		d.ServeHTTP(w, r)
	}))
	err := c.ContainerStart(context.Background(), "x")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "starting up")
	fail.Store(false)
	require.NoError(t, c.ContainerStart(context.Background(), "x"))
	assert.Equal(t, []string{"1.43"}, d.seen())
}

func TestFixedVersionFromTheEnvironment(t *testing.T) {
	d := &daemon{apiVersion: "1.41"}
	fakeDaemon(t, d) // sets DOCKER_HOST
	t.Setenv("DOCKER_API_VERSION", "v1.43")
	c, err := FromEnv()
	require.NoError(t, err)
	defer c.Close()
	assert.Equal(t, "1.43", c.APIVersion())
	require.NoError(t, c.ContainerStart(context.Background(), "x"))
	assert.Equal(t, []string{"1.43"}, d.seen())
	assert.Zero(t, d.pings.Load(), "a fixed version is not negotiated")

	t.Setenv("DOCKER_API_VERSION", "latest")
	_, err = FromEnv()
	assert.ErrorContains(t, err, "DOCKER_API_VERSION")
}

func TestErrorsCarryTheCallStatusAndMessage(t *testing.T) {
	c := fakeDaemon(t, &daemon{apiVersion: "1.41", api: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/containers/gone/json":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"message":"No such container: gone"}`)
		case "/containers/create":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusConflict)
			io.WriteString(w, `{"message":"Conflict. The container name \"/n1\" is already in use"}`)
		case "/networks/create":
			http.Error(w, "pool overlaps with other one on this address space", http.StatusForbidden)
		case "/containers/stopped/stop":
			w.WriteHeader(http.StatusNotModified)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}})
	ctx := context.Background()

	_, err := c.ContainerInspect(ctx, "gone")
	require.Error(t, err)
	assert.True(t, IsNotFound(err))
	assert.False(t, IsConflict(err))
	assert.True(t, IsNotFound(fmt.Errorf("inspect n1: %w", err)), "wrapped, still not found")
	assert.Equal(t, "docker GET /containers/gone/json: 404 Not Found: No such container: gone", err.Error())

	_, err = c.ContainerCreate(ctx, "n1", ContainerSpec{ContainerConfig: ContainerConfig{Image: "i"}})
	assert.True(t, IsConflict(err))
	assert.False(t, IsNotFound(err))
	assert.ErrorContains(t, err, "409 Conflict: Conflict. The container name")

	_, err = c.NetworkCreate(ctx, NetworkSpec{Name: "n"})
	var e *Error
	require.ErrorAs(t, err, &e)
	assert.Equal(t, http.StatusForbidden, e.StatusCode)
	assert.Contains(t, err.Error(), "overlap", "a body that is not JSON is the message")

	assert.NoError(t, c.ContainerStop(ctx, "stopped", nil), "304: already stopped, no error")

	err = c.ContainerPause(ctx, "x")
	require.ErrorAs(t, err, &e)
	assert.Equal(t, "(no message)", e.Message)
	assert.False(t, IsNotFound(err) || IsConflict(err))

	assert.False(t, IsNotFound(errors.New("404")), "only the daemon's answers are classified")
	assert.ErrorContains(t, c.ContainerStart(ctx, ""), "empty id", "an empty id is refused, not sent")
}

func TestRequestsHaveTheShapeOfTheAPI(t *testing.T) {
	type got struct {
		method, path string
		query        map[string][]string
		body         map[string]any
	}
	var mu sync.Mutex
	var calls []got
	c := fakeDaemon(t, &daemon{apiVersion: "1.41", api: func(w http.ResponseWriter, r *http.Request) {
		g := got{method: r.Method, path: r.URL.Path, query: r.URL.Query()}
		if r.Header.Get("Content-Type") == "application/json" {
			require.NoError(t, json.NewDecoder(r.Body).Decode(&g.body))
		}
		mu.Lock()
		calls = append(calls, g)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/containers/create":
			io.WriteString(w, `{"Id":"c1","Warnings":[]}`)
		case "/containers/json":
			io.WriteString(w, `[{"Id":"c1","Names":["/n1"],"Labels":{"faultline":"1"}}]`)
		case "/networks":
			io.WriteString(w, `[{"Id":"n1","Name":"net","IPAM":{"Driver":"default","Config":[{"Subnet":"10.214.3.0/24","Gateway":"10.214.3.1"}]}}]`)
		case "/volumes":
			io.WriteString(w, `{"Volumes":[{"Name":"v1","Labels":{"faultline":"1"}}],"Warnings":null}`)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}})
	ctx := context.Background()
	grace := 5
	id, err := c.ContainerCreate(ctx, "faultline-r-n1", ContainerSpec{
		ContainerConfig: ContainerConfig{Image: "img", Cmd: []string{"--x"}, StopTimeout: &grace, Labels: map[string]string{"faultline": "1"}},
		HostConfig:      &HostConfig{Binds: []string{"/h:/data"}, NetworkMode: "net", RestartPolicy: RestartPolicy{Name: "no"}},
		NetworkingConfig: &NetworkingConfig{EndpointsConfig: map[string]*EndpointSettings{
			"net": {Aliases: []string{"n1"}, IPAMConfig: &EndpointIPAMConfig{IPv4Address: "10.214.3.10"}}}},
	})
	require.NoError(t, err)
	assert.Equal(t, "c1", id)
	ctrs, err := c.ContainerList(ctx, true, Filters{"label": {"faultline.run=r"}})
	require.NoError(t, err)
	require.Len(t, ctrs, 1)
	assert.Equal(t, []string{"/n1"}, ctrs[0].Names)
	nets, err := c.NetworkList(ctx, nil)
	require.NoError(t, err)
	require.Len(t, nets, 1)
	assert.Equal(t, "10.214.3.0/24", nets[0].IPAM.Config[0].Subnet)
	vols, err := c.VolumeList(ctx, Filters{"label": {"faultline=1"}})
	require.NoError(t, err)
	assert.Equal(t, []Volume{{Name: "v1", Labels: map[string]string{"faultline": "1"}}}, vols)
	require.NoError(t, c.ContainerStop(ctx, "c1", &grace))
	require.NoError(t, c.ContainerKill(ctx, "c1", "KILL"))
	require.NoError(t, c.ContainerRemove(ctx, "c1", RemoveOptions{Force: true, Volumes: true}))
	require.NoError(t, c.NetworkDisconnect(ctx, "net", "c1", true))
	require.NoError(t, c.ImageRemove(ctx, "faultline-node:0123456789ab", ImageRemoveOptions{}))

	require.Len(t, calls, 9)
	create := calls[0]
	assert.Equal(t, "POST /containers/create", create.method+" "+create.path)
	assert.Equal(t, []string{"faultline-r-n1"}, create.query["name"])
	assert.Equal(t, "img", create.body["Image"], "the container's config is at the top of the body")
	assert.Equal(t, float64(5), create.body["StopTimeout"])
	assert.Equal(t, "net", create.body["HostConfig"].(map[string]any)["NetworkMode"])
	assert.Equal(t, map[string]any{"Name": "no"}, create.body["HostConfig"].(map[string]any)["RestartPolicy"])
	assert.NotContains(t, create.body["HostConfig"], "LogConfig", "unset, not sent")
	ep := create.body["NetworkingConfig"].(map[string]any)["EndpointsConfig"].(map[string]any)["net"].(map[string]any)
	assert.Equal(t, map[string]any{"IPv4Address": "10.214.3.10"}, ep["IPAMConfig"])

	assert.Equal(t, []string{"1"}, calls[1].query["all"])
	assert.JSONEq(t, `{"label":{"faultline.run=r":true}}`, calls[1].query["filters"][0])
	assert.NotContains(t, calls[2].query, "filters", "no filters, none sent")
	assert.Equal(t, "GET /volumes", calls[3].method+" "+calls[3].path)
	assert.Equal(t, "POST /containers/c1/stop", calls[4].method+" "+calls[4].path)
	assert.Equal(t, []string{"5"}, calls[4].query["t"])
	assert.Equal(t, []string{"KILL"}, calls[5].query["signal"])
	assert.Equal(t, "DELETE /containers/c1", calls[6].method+" "+calls[6].path)
	assert.Equal(t, []string{"1"}, calls[6].query["force"])
	assert.Equal(t, []string{"1"}, calls[6].query["v"])
	assert.Equal(t, map[string]any{"Container": "c1", "Force": true}, calls[7].body)
	assert.Equal(t, "DELETE /images/faultline-node:0123456789ab", calls[8].method+" "+calls[8].path)
	assert.Empty(t, calls[8].query, "neither force nor noprune: the daemon's defaults")
}

// buildDaemon answers /build with lines, after checking the request.
func buildDaemon(t *testing.T, lines ...string) *Client {
	return fakeDaemon(t, &daemon{apiVersion: "1.41", api: func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/build", r.URL.Path)
		assert.Equal(t, "application/x-tar", r.Header.Get("Content-Type"))
		q := r.URL.Query()
		assert.Equal(t, []string{"faultline-node:abc"}, q["t"])
		assert.Equal(t, "1", q.Get("version"))
		assert.Equal(t, "1", q.Get("forcerm"))
		assert.JSONEq(t, `{"faultline":"1"}`, q.Get("labels"))
		hdr, err := tar.NewReader(r.Body).Next()
		if assert.NoError(t, err) {
			assert.Equal(t, "Dockerfile", hdr.Name, "the context came through")
		}
		w.Header().Set("Content-Type", "application/json")
		for _, l := range lines {
			io.WriteString(w, l+"\r\n")
			w.(http.Flusher).Flush()
		}
	}})
}

func buildContext(t *testing.T) io.Reader {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	df := []byte("FROM scratch\n")
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(df))}))
	_, err := tw.Write(df)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	return &buf
}

var buildOpts = BuildOptions{Tags: []string{"faultline-node:abc"}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true,
	Labels: map[string]string{"faultline": "1"}, Version: "1"}

func TestBuildFailsOnTheErrorLine(t *testing.T) {
	c := buildDaemon(t,
		`{"stream":"Step 1/3 : FROM scratch\n"}`,
		`{"stream":"\n"}`,
		`{"stream":"Step 2/3 : COPY rootfs/ /\n"}`,
		`{"errorDetail":{"message":"COPY failed: no source files were specified"},"error":"COPY failed: no source files were specified"}`,
		`{"stream":"never read\n"}`)
	_, err := c.ImageBuild(context.Background(), buildContext(t), buildOpts)
	var be *BuildError
	require.ErrorAs(t, err, &be)
	assert.Equal(t, "COPY failed: no source files were specified", be.Message)
	assert.Equal(t, []string{"Step 1/3 : FROM scratch", "Step 2/3 : COPY rootfs/ /"}, be.Before)
	assert.Contains(t, err.Error(), "(after: Step 1/3 : FROM scratch | Step 2/3 : COPY rootfs/ /)")
}

func TestBuildErrorDetailAlone(t *testing.T) {
	c := buildDaemon(t, `{"errorDetail":{"message":"no space left on device"}}`)
	_, err := c.ImageBuild(context.Background(), buildContext(t), buildOpts)
	assert.ErrorContains(t, err, "no space left on device")
}

func TestBuildSucceeds(t *testing.T) {
	c := buildDaemon(t,
		`{"stream":"Step 1/3 : FROM scratch\n"}`,
		`{"aux":{"ID":"sha256:0123"}}`,
		`{"stream":"Successfully built 0123\n"}`,
		`{"stream":"Successfully tagged faultline-node:abc\n"}`)
	id, err := c.ImageBuild(context.Background(), buildContext(t), buildOpts)
	require.NoError(t, err)
	assert.Equal(t, "sha256:0123", id)
}

func TestBuildStreamCutShort(t *testing.T) {
	c := buildDaemon(t, `{"stream":"Step 1/3 : FROM scr`)
	_, err := c.ImageBuild(context.Background(), buildContext(t), buildOpts)
	assert.ErrorContains(t, err, "read the build's output")
}

// frame is one frame of a multiplexed stream.
func frame(stream byte, s string) []byte {
	b := make([]byte, 8, 8+len(s))
	b[0] = stream
	binary.BigEndian.PutUint32(b[4:], uint32(len(s)))
	return append(b, s...)
}

func TestDemux(t *testing.T) {
	stream := slicesConcat(frame(1, "out 1\n"), frame(2, "err 1\n"), frame(1, "out 2\n"), frame(0, ""), frame(2, "err 2\n"))
	var out, errb bytes.Buffer
	// One byte at a time: frames split across reads come out whole.
	require.NoError(t, Demux(&out, &errb, &oneByte{bytes.NewReader(stream)}))
	assert.Equal(t, "out 1\nout 2\n", out.String())
	assert.Equal(t, "err 1\nerr 2\n", errb.String())

	out.Reset()
	err := Demux(&out, &errb, bytes.NewReader(stream[:len(stream)-3]))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut within a payload")
	err = Demux(&out, &errb, bytes.NewReader(frame(1, "x")[:5]))
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF, "cut within a header")

	err = Demux(&out, &errb, bytes.NewReader(slicesConcat(frame(1, "a\n"), frame(3, "log driver failed"), frame(1, "b\n"))))
	assert.ErrorContains(t, err, "log driver failed")
	err = Demux(&out, &errb, strings.NewReader("2026-11-23T19:00:00Z plain text, not frames\n"))
	assert.ErrorContains(t, err, "not a multiplexed stream")
}

func slicesConcat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// logsDaemon serves a container's logs as a daemon of version apiVersion would: the
// media type said only from 1.42, frames only without a TTY.
func logsDaemon(t *testing.T, apiVersion string, tty bool) (*Client, *atomic.Int32) {
	var inspects atomic.Int32
	c := fakeDaemon(t, &daemon{apiVersion: apiVersion, api: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/containers/c1/json":
			inspects.Add(1)
			fmt.Fprintf(w, `{"Id":"c1","Config":{"Tty":%t},"State":{"Running":true}}`, tty)
		case "/containers/c1/logs":
			q := r.URL.Query()
			assert.Equal(t, "1", q.Get("stdout"))
			assert.Equal(t, "1", q.Get("timestamps"))
			assert.Equal(t, "1700000000.000000001", q.Get("since"))
			if !versionLess(apiVersion, "1.42") {
				w.Header().Set("Content-Type", map[bool]string{false: multiplexedStream, true: rawStream}[tty])
			}
			if tty {
				io.WriteString(w, "out\nerr\n")
			} else {
				w.Write(slicesConcat(frame(1, "out\n"), frame(2, "err\n")))
			}
		default:
			http.NotFound(w, r)
		}
	}})
	return c, &inspects
}

func TestLogsDemuxedWithoutATTY(t *testing.T) {
	for _, tc := range []struct {
		version     string
		tty         bool
		wantInspect int32
	}{
		{"1.41", false, 1}, // no media type: the container is asked
		{"1.41", true, 1},
		{"1.43", false, 0}, // the media type says
		{"1.43", true, 0},
	} {
		t.Run(fmt.Sprintf("%s tty=%t", tc.version, tc.tty), func(t *testing.T) {
			c, inspects := logsDaemon(t, tc.version, tc.tty)
			l, err := c.ContainerLogs(context.Background(), "c1", LogsOptions{Stdout: true, Stderr: true, Timestamps: true, Since: "1700000000.000000001"})
			require.NoError(t, err)
			defer l.Close()
			assert.Equal(t, !tc.tty, l.Multiplexed())
			var out, errb bytes.Buffer
			require.NoError(t, l.CopyTo(&out, &errb))
			if tc.tty {
				assert.Equal(t, "out\nerr\n", out.String())
				assert.Empty(t, errb.String())
			} else {
				assert.Equal(t, "out\n", out.String())
				assert.Equal(t, "err\n", errb.String())
			}
			assert.Equal(t, tc.wantInspect, inspects.Load())
		})
	}
}

func TestCancelEndsAFollowedLog(t *testing.T) {
	c := fakeDaemon(t, &daemon{apiVersion: "1.43", api: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", multiplexedStream)
		w.Write(frame(1, "first\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // a running container: the stream stays open
	}})
	ctx, cancel := context.WithCancel(context.Background())
	l, err := c.ContainerLogs(ctx, "c1", LogsOptions{Stdout: true, Follow: true})
	require.NoError(t, err)
	defer l.Close()
	var out syncBuffer
	done := make(chan error, 1)
	go func() { done <- l.CopyTo(&out, io.Discard) }()
	require.Eventually(t, func() bool { return out.String() == "first\n" }, 5*time.Second, 5*time.Millisecond)
	cancel()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, context.Canceled)
	case <-time.After(5 * time.Second):
		t.Fatal("the stream did not end with its context")
	}
}

func TestContextBoundsACall(t *testing.T) {
	c := fakeDaemon(t, &daemon{apiVersion: "1.43", api: func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // a daemon that does not answer
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := c.ContainerStart(ctx, "c1")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDockerHost(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("DOCKER_TLS_VERIFY", "")
	for _, tc := range []struct{ host, wantHost, wantBase, wantErr string }{
		{"", DefaultHost, "http://docker.localhost", ""},
		{"unix:///run/user/1000/docker.sock", "unix:///run/user/1000/docker.sock", "http://docker.localhost", ""},
		{"tcp://10.0.0.1:2375", "tcp://10.0.0.1:2375", "http://10.0.0.1:2375", ""},
		{"tcp://builder:2375/proxy/", "tcp://builder:2375/proxy/", "http://builder:2375/proxy", ""},
		{"10.0.0.1:2375", "", "", "want unix:///path or tcp://host:port"},
		{"unix://", "", "", "want unix:///path or tcp://host:port"},
		{"ssh://ci@builder", "", "", "scheme ssh is not supported"},
		{"tcp://", "", "", "want unix:///path"},
	} {
		t.Setenv("DOCKER_HOST", tc.host)
		c, err := FromEnv()
		if tc.wantErr != "" {
			assert.ErrorContains(t, err, tc.wantErr, "DOCKER_HOST=%q", tc.host)
			continue
		}
		require.NoError(t, err, "DOCKER_HOST=%q", tc.host)
		assert.Equal(t, tc.wantHost, c.Host())
		assert.Equal(t, tc.wantBase, c.base)
	}
}

func TestDockerHostTCP(t *testing.T) {
	d := &daemon{apiVersion: "1.44"}
	srv := httptest.NewServer(d)
	defer srv.Close()
	t.Setenv("DOCKER_HOST", "tcp://"+srv.Listener.Addr().String())
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("DOCKER_CERT_PATH", "")
	t.Setenv("NO_PROXY", "*")
	c, err := FromEnv()
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.ContainerStart(context.Background(), "c1"))
	assert.Equal(t, []string{"1.44"}, d.seen())
}

func TestDockerHostTLS(t *testing.T) {
	d := &daemon{apiVersion: "1.44"}
	srv := httptest.NewTLSServer(d)
	defer srv.Close()
	certs := t.TempDir()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	require.NoError(t, os.WriteFile(filepath.Join(certs, "ca.pem"), ca, 0o644))
	t.Setenv("DOCKER_HOST", "tcp://"+srv.Listener.Addr().String())
	t.Setenv("DOCKER_API_VERSION", "")
	t.Setenv("NO_PROXY", "*")
	t.Setenv("DOCKER_CERT_PATH", certs)
	ctx := context.Background()

	t.Setenv("DOCKER_TLS_VERIFY", "1")
	c, err := FromEnv()
	require.NoError(t, err)
	assert.Equal(t, "https://"+srv.Listener.Addr().String(), c.base)
	assert.NoError(t, c.ContainerStart(ctx, "c1"), "the daemon's certificate chains to ca.pem")
	c.Close()

	ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: selfSigned(t)}) // another CA
	require.NoError(t, os.WriteFile(filepath.Join(certs, "ca.pem"), ca, 0o644))
	c, err = FromEnv()
	require.NoError(t, err)
	assert.ErrorContains(t, c.ContainerStart(ctx, "c1"), "certificate", "verified against the wrong CA")
	c.Close()

	t.Setenv("DOCKER_TLS_VERIFY", "")
	c, err = FromEnv()
	require.NoError(t, err)
	assert.NoError(t, c.ContainerStart(ctx, "c1"), "without DOCKER_TLS_VERIFY the certificate is not checked")
	c.Close()

	require.NoError(t, os.WriteFile(filepath.Join(certs, "cert.pem"), ca, 0o644)) // no key.pem
	_, err = FromEnv()
	assert.ErrorContains(t, err, "DOCKER_CERT_PATH", "a client certificate without its key")

	t.Setenv("DOCKER_TLS_VERIFY", "1")
	require.NoError(t, os.Remove(filepath.Join(certs, "ca.pem")))
	require.NoError(t, os.Remove(filepath.Join(certs, "cert.pem")))
	_, err = FromEnv()
	assert.ErrorContains(t, err, "ca.pem", "verify needs the CA")
}

// selfSigned returns a new self-signed CA certificate (DER).
func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the daemon's CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return der
}
