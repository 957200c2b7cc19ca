//go:build !lean

package main

import (
	"context"
	"io"
	"os"
	"path/filepath"

	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/results"
)

func main() {
	if prog, ok := sut.Program(filepath.Base(os.Args[0])); ok {
		os.Exit(profiled(os.Stderr, func() int { return prog(os.Args[1:]) }))
	}
	os.Exit(profiled(os.Stderr, func() int { return int(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }))
}

// harnessCommands are the commands that run the harness: the whole binary's.
var harnessCommands = map[string]command{
	"test":  runTest,
	"serve": runServe,
	"clean": runClean,
	"image": runImage,
	"campaign": func(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
		return runCampaign(ctx, "faultline campaign", args, stdout, stderr)
	},
	"zoo": func(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
		return runCampaign(ctx, "faultline zoo", args, stdout, stderr)
	},
	"bisect": runBisect,
	"shrink": runShrink,
}
