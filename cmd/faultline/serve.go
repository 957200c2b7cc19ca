//go:build !lean

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

// runServe implements
//
//	faultline serve [--results DIR] [--addr 127.0.0.1:8080]
//
// It serves the runs under the results directory to a browser until interrupted (exit
// 0); a directory that is not there or flags that do not parse are exit 4, an address
// it cannot listen on exit 3. It listens on loopback unless --addr says otherwise, and
// then warns: every run's files are readable by whoever reaches the address.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) results.ExitCode {
	fs := flag.NewFlagSet("faultline serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("results", harness.DefaultSpec().Results, "the results directory to browse")
	addr := fs.String("addr", "127.0.0.1:8080", "host:port to listen on (loopback by default)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return results.ExitValid
		}
		return results.ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "faultline serve: unexpected arguments %q\n", fs.Args())
		return results.ExitUsage
	}
	if st, err := os.Stat(*dir); err != nil || !st.IsDir() {
		fmt.Fprintf(stderr, "faultline serve: --results %s is not a directory (runs write it: faultline test --results %s)\n", *dir, *dir)
		return results.ExitUsage
	}
	if !results.IsLoopback(*addr) {
		fmt.Fprintf(stderr, "faultline serve: warning: %s is not a loopback address: whoever reaches it can read every run\n", *addr)
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := results.Serve(ctx, *addr, *dir, func(url string) { fmt.Fprintf(stdout, "faultline serve: %s at %s\n", *dir, url) })
	if err != nil {
		fmt.Fprintf(stderr, "faultline serve: %v\n", err)
		return results.ExitError
	}
	return results.ExitValid
}
