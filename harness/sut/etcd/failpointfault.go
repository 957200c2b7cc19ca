package etcd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/faultline/faultline/internal/freeport"
	"github.com/faultline/faultline/internal/gofail"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
)

// FailpointPort is where a member built with failpoints serves gofail's endpoint
// (GOFAIL_HTTP), reached by the harness only.
const FailpointPort = 22381

// defaultFailpoints are the points --etcd-failpoints uses when it names none: those a
// run reaches — every write passes the raft and commit points; the fault runs a
// defragmentation or a compaction for the others — where etcd's own robustness tests
// crash members. A release's binary has some of them (FailpointNames); the run uses
// those it has.
var defaultFailpoints = []nemesis.Failpoint{
	{Name: "raftBeforeSave"}, {Name: "raftAfterSave"}, {Name: "raftBeforeSaveWaitWalSync"},
	{Name: "raftBeforeLeaderSend"}, {Name: "raftBeforeFollowerSend"},
	{Name: "beforeCommit"}, {Name: "afterCommit"},
	{Name: "defragBeforeCopy", Trigger: nemesis.TriggerDefrag},
	{Name: "defragBeforeRename", Trigger: nemesis.TriggerDefrag},
	{Name: "compactBeforeCommitScheduledCompact", Trigger: nemesis.TriggerCompact},
	{Name: "compactAfterCommitScheduledCompact", Trigger: nemesis.TriggerCompact},
	{Name: "compactBeforeSetFinishedCompact", Trigger: nemesis.TriggerCompact},
	{Name: "compactAfterSetFinishedCompact", Trigger: nemesis.TriggerCompact},
	{Name: "compactBeforeCommitBatch", Trigger: nemesis.TriggerCompact},
	{Name: "compactAfterCommitBatch", Trigger: nemesis.TriggerCompact},
}

// triggerOf is the trigger of a failpoint by its name's prefix (a point named on the
// command line that is not among the defaults).
func triggerOf(name string) nemesis.Trigger {
	switch {
	case strings.HasPrefix(name, "defrag"):
		return nemesis.TriggerDefrag
	case strings.HasPrefix(name, "compact"):
		return nemesis.TriggerCompact
	}
	return nemesis.TriggerNone
}

// failpointsValue is --etcd-failpoints: "" (off), "all" (the flag given bare: the
// default points the binary has), or points named comma-separated.
type failpointsValue string

func (f *failpointsValue) String() string { return string(*f) }

func (f *failpointsValue) Set(s string) error {
	switch s {
	case "true", "all":
		*f = "all"
	case "false", "":
		*f = ""
	default:
		*f = failpointsValue(s)
	}
	return nil
}

// IsBoolFlag lets the flag stand alone (--etcd-failpoints) or take the points
// (--etcd-failpoints=raftBeforeSave,defragBeforeCopy).
func (f *failpointsValue) IsBoolFlag() bool { return true }

// resolveFailpoints picks the run's failpoints from those the binary has (have): the
// named ones, each of which it must have, or the defaults it has.
func resolveFailpoints(spec, version string, have []string) ([]nemesis.Failpoint, error) {
	if spec == "all" {
		var out []nemesis.Failpoint
		for _, fp := range defaultFailpoints {
			if slices.Contains(have, fp.Name) {
				out = append(out, fp)
			}
		}
		if len(out) == 0 {
			return nil, results.Usagef("etcd-failpoints: etcd %s has none of the failpoints a run reaches; name some of its own: %s", version, strings.Join(have, ", "))
		}
		return out, nil
	}
	var out []nemesis.Failpoint
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(have, name) {
			return nil, results.Usagef("etcd-failpoints: %q is no failpoint of etcd %s; it has: %s", name, version, strings.Join(have, ", "))
		}
		out = append(out, nemesis.Failpoint{Name: name, Trigger: triggerOf(name)})
	}
	if len(out) == 0 {
		return nil, results.Usagef("etcd-failpoints: %q names no failpoint", spec)
	}
	return out, nil
}

// FailpointNames lists the failpoints compiled into the etcd server bin, cached beside it
// (bin + ".failpoints"). gofail serves them from the moment the program starts, so bin is
// started on loopback with a throwaway data directory, asked, and killed.
func FailpointNames(ctx context.Context, bin string) ([]string, error) {
	cache := bin + ".failpoints-v2" // v1 files may hold a list taken during init, partial
	if b, err := os.ReadFile(cache); err == nil {
		if st, serr := os.Stat(bin); serr == nil {
			if cst, cerr := os.Stat(cache); cerr == nil && !cst.ModTime().Before(st.ModTime()) {
				return strings.Fields(string(b)), nil
			}
		}
	}
	if err := verifyFailpoints(bin); err != nil {
		return nil, err
	}
	names, err := askFailpoints(ctx, bin)
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(cache, []byte(strings.Join(names, "\n")+"\n"), 0o644) // a cache: best effort
	return names, nil
}

// askFailpoints starts bin briefly and lists its failpoints from its gofail endpoint.
func askFailpoints(ctx context.Context, bin string) ([]string, error) {
	ports, err := freeport.Ports(3)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "faultline-etcd-failpoints-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client, peer, fp := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1]), fmt.Sprintf("127.0.0.1:%d", ports[2])
	cmd := exec.CommandContext(ctx, bin, "--name", "probe", "--data-dir", dir,
		"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "probe=http://"+peer)
	cmd.Env = append(os.Environ(), "GOFAIL_HTTP="+fp)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives us
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s to list its failpoints: %w", bin, err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// gofail's endpoint answers from its package's init, before the packages that
	// declare failpoints have registered theirs: list only once etcd serves clients
	// (its main runs after every init).
	for {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", client)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list the failpoints of %s: it never served clients: %w", bin, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	gc := gofail.New(fp)
	for {
		list, err := gc.List(ctx)
		if err == nil {
			names := make([]string, 0, len(list))
			for n := range list {
				names = append(names, n)
			}
			slices.Sort(names)
			return names, nil
		}
		if !errors.Is(err, gofail.ErrNoEndpoint) || ctx.Err() != nil {
			return nil, fmt.Errorf("list the failpoints of %s: %w", bin, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("list the failpoints of %s: %w", bin, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Failpoints implements nemesis.Failpointer: the run's points, on every member.
func (t *Target) Failpoints(context.Context, string) ([]nemesis.Failpoint, error) {
	return slices.Clone(t.cfg.Failpoints), nil
}

// SetFailpoint implements nemesis.Failpointer, through node's gofail endpoint.
func (t *Target) SetFailpoint(ctx context.Context, node, name, term string) error {
	return gofail.New(t.env.Reach(node, FailpointPort)).Set(ctx, name, term)
}

// ClearFailpoint implements nemesis.Failpointer.
func (t *Target) ClearFailpoint(ctx context.Context, node, name string) error {
	return gofail.New(t.env.Reach(node, FailpointPort)).Clear(ctx, name)
}

var _ nemesis.Failpointer = (*Target)(nil)
