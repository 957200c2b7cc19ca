package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/faultline/faultline/node"
)

// runRaftnode runs the raftnode server (package node) until SIGTERM or SIGINT, so that a
// link named raftnode to this binary is the node the harness starts, in a process or in a
// FROM-scratch image: one static binary carries both the harness and its default target.
func runRaftnode(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return node.Main(ctx, args, os.Stderr)
}
