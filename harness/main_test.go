package harness

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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
