// Command raftnode is faultline's system under test: a Raft KV node (see package node).
// The faultline binary runs the same code when it is called by the name raftnode.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/faultline/faultline/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := node.Main(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}
