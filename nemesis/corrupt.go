package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// FileKind is a kind of data file a target keeps, as it names them (its globs): the
// corrupt fault's variants damage one kind.
type FileKind string

// The file kinds.
const (
	LogFiles      FileKind = "log"      // the write-ahead log's segments (etcd: member/wal/*.wal)
	SnapshotFiles FileKind = "snapshot" // raft snapshots (etcd: member/snap/*.snap)
	StateFiles    FileKind = "state"    // the applied state machine (etcd: the bbolt db)
)

// FileKinds lists the file kinds, in the order the variants take them.
func FileKinds() []FileKind { return []FileKind{LogFiles, SnapshotFiles, StateFiles} }

// Cap is the capability of a target that names its files of kind k.
func (k FileKind) Cap() Capability { return Capability(string(k) + "-files") }

// Damage is what the corrupt fault does to a file.
type Damage string

// The damages.
const (
	// Bitflip flips one bit at a random offset of the file's written part: a sector that
	// reads back wrong.
	Bitflip Damage = "bitflip"
	// Truncate cuts the file at a random offset of its written part: a tail that never
	// reached the disk.
	Truncate Damage = "truncate"
)

// Corrupter damages nodes' data files: the harness reaches a node's data directory
// while the node is down, and the target names its files (by kind).
type Corrupter interface {
	// Corrupt damages one file of kind on node (down), chosen with r, and says what it
	// did ("bitflip member/wal/0.wal at 12345 bit 3"). ok is false, with no error, when
	// node has no such file yet (nothing was damaged).
	Corrupt(ctx context.Context, node string, kind FileKind, d Damage, r *rand.Rand) (what string, ok bool, err error)
}

// corrupt damages a data file of a minority of followers while they are down — a bit
// flipped, a tail lost — and starts them again at the heal: a member must then refuse
// its data (and an operator replaces it: the heal does, where the target can change its
// membership) or repair it from its peers; one that serves the damage, or votes with a
// log it lost, breaks the cluster's guarantees. The leader is spared: a damaged leader
// that is killed loses its leadership anyway, and the variants then test what a
// follower's damage does to the cluster, which is where systems differ. A minority at
// most: a majority whose data is gone is a loss no system survives.
var corruptDef = &Def{
	Kind: Corrupt, Doc: "damage a data file of a minority of followers while they are down (a flipped bit, a lost tail), start them at the heal (a member that refuses its data is replaced)",
	Needs:    []Capability{CapKill, CapDataDirs},
	Uses:     []Capability{CapMembers},
	MinNodes: 3,
	Variants: corruptVariants(),
	Start:    "corrupt", End: "corrupt-restart", Verb: "corrupted", Healed: "restarted",
	Family: "kill", Color: "#8f86c4",
	// a member's start checks its data against its peers' (etcd's initial hash check
	// took 19 s here with two damaged members of five), then a refusal is replaced and
	// the new member catches up
	HealLimit: 2 * time.Minute,
	Inject:    injectCorrupt,
}

// corruptVariants are bitflip-log … truncate-state: each damage of each kind of file.
func corruptVariants() []Variant {
	docs := map[FileKind]string{LogFiles: "a write-ahead log segment", SnapshotFiles: "a snapshot file", StateFiles: "the state machine's file"}
	var out []Variant
	for _, d := range []Damage{Bitflip, Truncate} {
		for _, k := range FileKinds() {
			verb := "flip a bit of"
			if d == Truncate {
				verb = "truncate"
			}
			out = append(out, Variant{Name: string(d) + "-" + string(k), Weight: 1,
				Doc: verb + " " + docs[k], Needs: []Capability{k.Cap()}})
		}
	}
	return out
}

// corruptParts splits a variant's name into its damage and file kind.
func corruptParts(name string) (Damage, FileKind, error) {
	d, k, ok := strings.Cut(name, "-")
	if !ok || (Damage(d) != Bitflip && Damage(d) != Truncate) {
		return "", "", fmt.Errorf("corrupt: unknown variant %q", name)
	}
	return Damage(d), FileKind(k), nil
}

// refuseWait is how long a corrupted member is watched after its start for refusing
// its data (exiting): a check of its files runs before it serves.
const refuseWait = 5 * time.Second

// injectCorrupt kills a minority of followers (the nodes a combination's earlier part
// chose, if any), damages one file of the variant's kind on each, and leaves them down;
// the heal starts them. On a failure it starts them all again.
func injectCorrupt(ctx context.Context, env Env, v Variant) (Injection, error) {
	damage, kind, err := corruptParts(v.Name)
	if err != nil {
		return Injection{}, err
	}
	k := env.Powers.Nodes
	nodes, err := corruptTargets(ctx, env)
	if err != nil {
		return Injection{}, err
	}
	start := func(ctx context.Context) error { return eachNode(ctx, nodes, k.Start) }
	if err := killAll(ctx, k, nodes); err != nil {
		_ = start(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("corrupt: %w", err)
	}
	var done []string
	for _, n := range nodes {
		what, ok, err := env.Powers.Files.Corrupt(ctx, n, kind, damage, env.Rand)
		if err != nil {
			_ = start(context.WithoutCancel(ctx))
			return Injection{}, fmt.Errorf("corrupt %s: %w", n, err)
		}
		if !ok {
			env.note("corrupt-none", n, "no "+string(kind)+" file yet")
			continue
		}
		env.note("corrupted", n, what)
		done = append(done, n)
	}
	heal := func(ctx context.Context) error { return restartCorrupted(ctx, env, nodes, done) }
	return Injection{Nodes: nodes, Value: history.S1(v.Name), Heal: heal}, nil
}

// corruptTargets are the nodes the fault damages: the combination's focus, or a random
// minority of the running nodes other than the leader. A node down already (one that
// refused its damaged data where no one replaces it) counts toward the minority: the
// damage never reaches a majority, which no system survives.
func corruptTargets(ctx context.Context, env Env) ([]string, error) {
	if len(env.Focus) > 0 {
		return append([]string(nil), env.Focus...), nil
	}
	all := env.Cluster.Nodes()
	leader, _ := env.Cluster.Leader(ctx) // unknown: any minority will do
	var followers, down []string
	for _, n := range all {
		switch {
		case !env.Powers.Nodes.Running(n):
			down = append(down, n)
		case n != leader:
			followers = append(followers, n)
		}
	}
	m := max(1, (len(all)-1)/2) - len(down)
	if m <= 0 || len(followers) == 0 {
		return nil, fmt.Errorf("corrupt: %s still down: damaging another member could reach a majority", joinNodes(down))
	}
	env.Rand.Shuffle(len(followers), func(i, j int) { followers[i], followers[j] = followers[j], followers[i] })
	return sorted(followers[:min(m, len(followers))]), nil
}

// restartCorrupted starts the damaged nodes and watches the corrupted ones for
// refusing their data. A node that exits has refused it, as it should: it is noted, and
// replaced where the target can change its membership (removed, wiped, added back as a
// new member — what an operator does with a member whose disk failed). Elsewhere it
// stays down, noted, for the run's end to report among the nodes that exited. Where
// the membership is known, the heal ends once the damaged members have caught up.
func restartCorrupted(ctx context.Context, env Env, nodes, corrupted []string) error {
	k := env.Powers.Nodes
	var failed []string
	for _, n := range nodes {
		if err := k.Start(ctx, n); err != nil {
			if !slices.Contains(corrupted, n) {
				failed = append(failed, fmt.Sprintf("%s: %v", n, err))
			}
			// A damaged node that dies as it starts (a runtime may say so as an error)
			// refused its data: watched below like the others.
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("corrupt: start %s", strings.Join(failed, "; "))
	}
	refused := map[string]bool{}
	// handle notes the damaged nodes that have exited since — they refused their data —
	// and replaces them where the membership can change.
	handle := func() error {
		for _, n := range corrupted {
			if refused[n] || k.Running(n) {
				continue
			}
			refused[n] = true
			env.note("corrupt-refused", n, exitLine(k.LogTail(n)))
			if env.Powers.Members == nil {
				continue
			}
			if err := replace(ctx, env, n); err != nil {
				return fmt.Errorf("corrupt: replace %s: %w", n, err)
			}
		}
		return nil
	}
	deadline := time.Now().Add(refuseWait)
	for len(refused) < len(corrupted) && time.Now().Before(deadline) && Sleep(ctx, 100*time.Millisecond) {
		if err := handle(); err != nil {
			return err
		}
	}
	if env.Powers.Members == nil {
		return nil
	}
	// Raft assumes stable storage: a member that lost part of its log must catch up
	// before another fault, or a correct system can lose a write that member had
	// acknowledged (the leader dies, and a majority without the write elects). A
	// member's check of its data may take longer than refuseWait (etcd compares hashes
	// with its peers): one that refuses while the others catch up is replaced too.
	for {
		if err := handle(); err != nil {
			return err
		}
		hctx, cancel := context.WithTimeout(ctx, catchUpPoll)
		err := env.Powers.Members.Healthy(hctx)
		cancel()
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil || !Sleep(ctx, 200*time.Millisecond):
			return fmt.Errorf("corrupt: the damaged members did not catch up: %w", err)
		}
	}
}

// catchUpPoll is how long one wait for the damaged members' catch-up lasts before the
// heal looks again for a member that refused its data.
const catchUpPoll = 2 * time.Second

// exitLine is the line of a log tail that says why its node exited: the panic or fatal
// line LogTail puts first, else the last line; trimmed and bounded.
func exitLine(tail string) string {
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	for len(lines) > 1 && strings.HasPrefix(strings.TrimSpace(lines[len(lines)-1]), "=== ") {
		lines = lines[:len(lines)-1] // the runtime's line on the exit
	}
	l := lines[len(lines)-1]
	if f := lines[0]; strings.Contains(f, "panic") || strings.Contains(f, "fatal") {
		l = f
	}
	l = strings.TrimSpace(l)
	if len(l) > 200 {
		l = l[:200] + "…"
	}
	return l
}

func init() {
	for _, k := range FileKinds() {
		if k.Cap() != CapLogFiles && k.Cap() != CapSnapshotFiles && k.Cap() != CapStateFiles {
			panic("nemesis: file kind " + string(k) + " has no capability constant")
		}
	}
}
