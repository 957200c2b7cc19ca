// Command raftnode is faultline's system under test: a Raft KV node (see package node).
// The faultline binary runs the same code when it is called by the name raftnode.
//
// FAULTLINE_CPUPROFILE=FILE writes a CPU profile of the node until it stops (SIGTERM or
// SIGINT), as the faultline binary does; go tool pprof reads it.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/faultline/faultline/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := profiled(func() int { return node.Main(ctx, os.Args[1:], os.Stderr) })
	stop()
	os.Exit(code)
}

// profiled runs f under a CPU profile when FAULTLINE_CPUPROFILE names a file.
func profiled(f func() int) int {
	path := os.Getenv("FAULTLINE_CPUPROFILE")
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "raftnode: cpu profile: %v\n", err)
		return node.ExitError
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintf(os.Stderr, "raftnode: cpu profile: %v\n", err)
		return node.ExitError
	}
	defer pprof.StopCPUProfile()
	return f()
}
