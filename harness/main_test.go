package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/internal/netns"
	"github.com/faultline/faultline/node"
)

// TestMain lets the test binary act as raftnode (raftnode.Bin links to this test binary,
// under that name), so the harness's tests run real nodes without another program.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "raftnode" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		code := node.Main(ctx, os.Args[1:], os.Stderr)
		stop()
		os.Exit(code)
	}
	if len(os.Args) > 2 && os.Args[1] == "dial" { // a probe run inside a namespace: "dial ADDR"
		hc := &http.Client{Timeout: time.Second}
		resp, err := hc.Get("http://" + os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		b, _ := io.ReadAll(resp.Body)
		fmt.Print(string(b))
		os.Exit(0)
	}
	// The programs the examples start, in a directory first in $PATH (onPath): set
	// here, before any test runs, so that no test changes the environment.
	dir, err := os.MkdirTemp("", "faultline-harness-path")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	pathDir = dir
	os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func needNetns(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs network namespaces (root): skipped in -short mode")
	}
	if ok, why := netns.Available(); !ok {
		t.Skip("needs network namespaces (root, ip, nsenter): " + why)
	}
}

// dockerSlots bounds the Docker clusters this package's tests run at once. The daemon is
// one resource that all of them share, and it slows down with every container that
// starts, stops and writes beside it (through fuse-overlayfs on these machines): with
// every such test at once (14 containers seen), a CI run saw a container's start take
// over 30 s, past a heal's bound, and a kill of three containers not finish in 25 s.
var dockerSlots = make(chan struct{}, 3)

// dockerHeld is the tests holding a slot, so that a test that starts two clusters, one
// after the other, takes one slot (and cannot wait on itself).
var dockerHeld sync.Map // *testing.T → true

// needDocker skips t without a Docker daemon. With one, it waits for one of dockerSlots
// and holds it until t and its cleanups (the cluster's removal) are done.
func needDocker(t *testing.T) {
	t.Helper()
	if ok, why := docker.Available(context.Background()); !ok {
		t.Skip("needs a docker daemon: " + why)
	}
	if _, held := dockerHeld.LoadOrStore(t, true); held {
		return
	}
	dockerSlots <- struct{}{}
	t.Cleanup(func() {
		dockerHeld.Delete(t)
		<-dockerSlots
	})
}
