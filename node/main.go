package node

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"go.etcd.io/raft/v3"
)

// Exit codes of Main.
const (
	ExitOK    = 0
	ExitError = 1 // a runtime failure (storage, raft's own panic on a damaged log)
	ExitUsage = 2 // bad flags or an unusable data dir
)

// Main is raftnode's whole program: it parses args (without the program name), runs the
// node until ctx is done (SIGTERM/SIGINT in cmd/raftnode), the node is removed from the
// cluster, or it fails, and returns the exit code. Errors are one line on stderr.
func Main(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "raftnode: %v\n", oneLine(err))
		return ExitUsage
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(nodeGCPercent)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).
		With("node", cfg.ID)
	// raft's panics (a log that lost committed entries, e.g. after ack-before-fsync
	// lost its buffer) end the process with one line, not a goroutine dump or a hang.
	cfg.OnFatal = func(msg string) {
		fmt.Fprintf(stderr, "raftnode: fatal: %s\n", oneLine(errors.New(msg)))
		os.Exit(ExitError)
	}
	raft.SetLogger(NewRaftLogger(cfg.Logger, cfg.OnFatal))
	n, err := Start(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "raftnode: %v\n", oneLine(err))
		return ExitError
	}
	cfg.Logger.Info("raftnode started", "peer", cfg.ListenPeer, "client", cfg.ListenClient,
		"data_dir", cfg.DataDir, "unsafe", string(cfg.Unsafe), "join", cfg.Join)
	code := ExitOK
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down")
	case <-n.Removed():
		// Give the answer to the removal request a moment to leave, then exit.
		time.Sleep(500 * time.Millisecond)
		cfg.Logger.Info("removed from the cluster: exiting")
	case err := <-n.Failed():
		fmt.Fprintf(stderr, "raftnode: %v\n", oneLine(err))
		code = ExitError
	}
	if err := n.Stop(); err != nil {
		fmt.Fprintf(stderr, "raftnode: stop: %v\n", oneLine(err))
		code = ExitError
	}
	return code
}

// nodeGCPercent is the node's GOGC unless the environment sets one. A node's live heap
// is small (its state machine, the unapplied log, connection buffers), and most of what it
// allocates dies within one request; at the default 100 the collector ran several times a
// second under load and took about a twentieth of a follower's CPU.
const nodeGCPercent = 400

func parseFlags(args []string, stderr io.Writer) (Config, error) {
	var cfg Config
	fs := flag.NewFlagSet("raftnode", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	id := fs.Uint64("id", 0, "this node's raft id (positive)")
	peers := fs.String("peers", "", "ID=URL,... of every member's peer endpoint, this node included")
	fs.StringVar(&cfg.ListenPeer, "listen-peer", "", "address for raft traffic")
	fs.StringVar(&cfg.ListenClient, "listen-client", "", "address for the client HTTP API")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory of the WAL and snapshot")
	fs.BoolVar(&cfg.Join, "join", false, "join an existing cluster (start empty, wait for the leader)")
	fs.Uint64Var(&cfg.SnapshotCount, "snapshot-count", DefaultSnapshotCount, "applied entries between snapshots")
	unsafe := fs.String("unsafe", "", "deliberate bug: stale-read, lease-read, ack-before-commit, ack-before-fsync")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: raftnode --id N --peers 1=http://HOST:PORT,... --listen-peer ADDR --listen-client ADDR --data-dir DIR [flags]")
			fs.PrintDefaults()
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.ID = *id
	var err error
	if cfg.Peers, err = ParsePeers(*peers); err != nil {
		return cfg, err
	}
	if cfg.Unsafe, err = ParseUnsafe(*unsafe); err != nil {
		return cfg, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, checkDataDir(cfg.DataDir)
}

// checkDataDir makes sure the data dir exists and is writable.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	probe := filepath.Join(dir, ".writable")
	if err := os.WriteFile(probe, nil, 0o644); err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	return os.Remove(probe)
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
