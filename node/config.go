package node

import (
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Unsafe names a deliberate bug (see doc.go); "" is the correct node.
type Unsafe string

// The unsafe modes.
const (
	Safe            Unsafe = ""
	StaleRead       Unsafe = "stale-read"
	LeaseRead       Unsafe = "lease-read"
	AckBeforeCommit Unsafe = "ack-before-commit"
	AckBeforeFsync  Unsafe = "ack-before-fsync"
	NoFsync         Unsafe = "no-fsync"
)

// UnsafeModes lists the valid --unsafe values.
var UnsafeModes = []Unsafe{StaleRead, LeaseRead, AckBeforeCommit, AckBeforeFsync, NoFsync}

// ParseUnsafe validates an --unsafe value.
func ParseUnsafe(s string) (Unsafe, error) {
	if s == "" || s == "none" {
		return Safe, nil
	}
	for _, m := range UnsafeModes {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, len(UnsafeModes))
	for i, m := range UnsafeModes {
		names[i] = string(m)
	}
	return Safe, fmt.Errorf("unknown --unsafe mode %q (want one of %s)", s, strings.Join(names, ", "))
}

// Config is one node's configuration.
type Config struct {
	ID uint64
	// Peers maps every raft id to the URL this node sends its raft messages to. Without
	// Join it is also the initial membership; with Join it lists the current members and
	// this node.
	Peers         map[uint64]string
	ListenPeer    string
	ListenClient  string
	DataDir       string
	Join          bool
	SnapshotCount uint64
	Unsafe        Unsafe
	Logger        *slog.Logger
	// OnFatal is called, instead of panicking, when raft hits an unrecoverable state
	// (e.g. a log that lost committed entries): the process should exit non-zero with msg.
	OnFatal func(msg string)
}

// DefaultSnapshotCount is the number of applied entries between snapshots.
const DefaultSnapshotCount = 10000

// ParsePeers parses "1=http://h:p,2=http://h:p".
func ParsePeers(s string) (map[uint64]string, error) {
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("bad --peers entry %q: want ID=URL", part)
		}
		id, err := strconv.ParseUint(k, 10, 64)
		if err != nil || id == 0 {
			return nil, fmt.Errorf("bad --peers entry %q: id must be a positive integer", part)
		}
		u, err := url.Parse(v)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("bad --peers entry %q: want an http:// URL", part)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("bad --peers: id %d given twice", id)
		}
		out[id] = strings.TrimSuffix(v, "/")
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--peers is empty")
	}
	return out, nil
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.ID == 0 {
		return fmt.Errorf("--id must be a positive integer")
	}
	if _, ok := c.Peers[c.ID]; !ok {
		return fmt.Errorf("--peers has no entry for this node's id %d", c.ID)
	}
	if c.ListenPeer == "" || c.ListenClient == "" {
		return fmt.Errorf("--listen-peer and --listen-client are required")
	}
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	if c.SnapshotCount == 0 {
		return fmt.Errorf("--snapshot-count must be positive")
	}
	return nil
}

func sortedIDs(m map[uint64]string) []uint64 {
	ids := make([]uint64, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
