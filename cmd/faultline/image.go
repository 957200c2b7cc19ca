//go:build !lean

package main

import (
	"context"
	"fmt"
	"github.com/faultline/faultline/results"
	"io"
	"os"

	_ "github.com/faultline/faultline/harness" // the targets, and their programs
	"github.com/faultline/faultline/harness/runtime/docker"
	"github.com/faultline/faultline/harness/sut"
)

// runImage builds (or finds, by content hash) the node images that the docker runtime
// runs for the node programs this binary carries: FROM scratch, holding this very
// binary, which runs the program it is called by.
func runImage(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "faultline image: takes no arguments")
		return results.ExitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "faultline image: %v\n", err)
		return results.ExitError
	}
	for _, name := range sut.ProgramNames() {
		ref, err := docker.EnsureNodeImage(ctx, self, name)
		if err != nil {
			fmt.Fprintf(stderr, "faultline image: %v\n", err)
			return results.ExitError
		}
		fmt.Fprintln(stdout, ref)
	}
	return results.ExitValid
}
