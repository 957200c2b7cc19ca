package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/harness/runtime/docker"
)

// runImage builds (or finds, by content hash) the node image that the docker runtime
// runs: FROM scratch, holding this very binary, which runs raftnode when called so.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "faultline image: takes no arguments")
		return harness.ExitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "faultline image: %v\n", err)
		return harness.ExitError
	}
	ref, err := docker.EnsureNodeImage(ctx, self, "raftnode")
	if err != nil {
		fmt.Fprintf(stderr, "faultline image: %v\n", err)
		return harness.ExitError
	}
	fmt.Fprintln(stdout, ref)
	return 0
}
