package etcd

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/faultline/faultline/harness/internal/etcdclient"

	bolt "go.etcd.io/bbolt"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
)

// End-to-end tests of Consistent on members whose key-value data really differ on disk:
// one member is stopped, one stored revision of one key in its bbolt backend
// (data-dir/member/snap/db, bucket "key") gets other value bytes, still a valid
// mvccpb.KeyValue at the same revision, and the member is started again on it. Its raft
// log, its revision, its index and every other key are untouched, so it starts, catches
// up and answers HashKV at the cluster's revision like the others, with another hash.
//
// etcd v3.7.3 checks nothing of the kind by default: InitialCorruptCheck is a feature
// gate off by default (server/v3/features), --corrupt-check-time defaults to 0s (the
// periodic check off) and CompactHashCheck is off too (and needs compactions); the
// --experimental-* spellings of 3.5 are gone in 3.7. The target's command line
// (Target.Node) turns the start-up check on (a run's corrupt fault relies on it); these
// tests leave it out (Config.NoCorruptCheck), so that TestConsistentTamperedMember has
// Consistent as the only check; TestEtcdChecksTamperedMember turns
// etcd's own checks on, in the test's copy of the arguments only, to show what they do
// and what Consistent then says.

// tamperedValue is the value written over the stored one.
const tamperedValue = "tampered"

// tamper rewrites, in the backend of a stopped member (dataDir/member/snap/db), the value
// of key's latest stored revision in the "key" bucket to value: the record is decoded as
// an mvccpb.KeyValue, its Value changed and re-encoded under the same revision key, so it
// stays valid. It returns that revision and the value it replaced.
func tamper(t *testing.T, dataDir, key, value string) (rev int64, old string) {
	t.Helper()
	path := filepath.Join(dataDir, "member", "snap", "db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("key"))
		if b == nil {
			return errors.New(`no "key" bucket`)
		}
		var at []byte
		var kv *mvccpb.KeyValue
		c := b.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			// A revision key is 8 bytes main revision, '_', 8 bytes sub revision; a
			// tombstone has a trailing 't'.
			if len(k) != 17 {
				continue
			}
			var x mvccpb.KeyValue
			if err := proto.Unmarshal(v, &x); err != nil {
				return fmt.Errorf("revision key %x: %w", k, err)
			}
			if string(x.Key) == key {
				at, kv = slices.Clone(k), &x
			}
		}
		if kv == nil {
			return fmt.Errorf("no revision of %q", key)
		}
		rev = int64(binary.BigEndian.Uint64(at[:8]))
		if rev != kv.ModRevision {
			return fmt.Errorf("revision key %x holds mod revision %d", at, kv.ModRevision)
		}
		old = string(kv.Value)
		kv.Value = []byte(value)
		buf, err := proto.Marshal(kv)
		if err != nil {
			return err
		}
		return b.Put(at, buf)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("tamper with %s: %v", path, err)
	}
	return rev, old
}

// withArgs is cmd with extra etcd flags.
func withArgs(cmd runtime.NodeCmd, extra ...string) runtime.NodeCmd {
	cmd.Args = append(slices.Clone(cmd.Args), extra...)
	return cmd
}

// startTargetArgs is startTarget with extra flags on every member's command line.
func startTargetArgs(t *testing.T, cfg Config, n int, extra ...string) *testCluster {
	t.Helper()
	r := newTestRT(t, n)
	tg := New(cfg, r.env())
	t.Cleanup(func() { _ = tg.Close() })
	c := &testCluster{testRT: r, tg: tg}
	for _, node := range r.names {
		c.launch(node, withArgs(tg.Node(c.nodeEnv(node)), extra...))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := sut.Poll(ctx, 200*time.Millisecond, tg.Ready); err != nil {
		c.fatal("cluster not ready: %v", err)
	}
	return c
}

// follower is a member that is not the leader, the last one of the names if it can be,
// and the leader.
func (c *testCluster) follower(ctx context.Context) (node, leader string) {
	c.t.Helper()
	l, err := c.tg.Leader(ctx)
	if err != nil || l == "" {
		c.fatal("leader %q, %v", l, err)
	}
	for i := len(c.names) - 1; i >= 0; i-- {
		if c.names[i] != l {
			return c.names[i], l
		}
	}
	c.fatal("no follower")
	return "", ""
}

// revision is node's revision (Status).
func (c *testCluster) revision(ctx context.Context, node string) int64 {
	c.t.Helper()
	st, err := c.tg.status(ctx, node, 2*time.Second)
	if err != nil {
		c.fatal("status of %s: %v", node, err)
	}
	return st.revision
}

// waitRevision waits until node, started again, answers Status at revision rev.
func (c *testCluster) waitRevision(ctx context.Context, node string, rev int64) {
	c.t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := sut.Poll(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		if !c.running(node) {
			return fmt.Errorf("%s exited", node)
		}
		st, err := c.tg.status(ctx, node, time.Second)
		if err != nil {
			return err
		}
		if st.revision != rev {
			return fmt.Errorf("%s at revision %d, not %d", node, st.revision, rev)
		}
		return nil
	})
	if err != nil {
		c.fatal("%s back at revision %d: %v", node, rev, err)
	}
}

// localValue is key's value in node's own store (a serializable read).
func (c *testCluster) localValue(ctx context.Context, node, key string) string {
	c.t.Helper()
	cli, err := clientv3.New(etcdclient.RawConfig(c.addr(node, ClientPort), zap.NewNop()))
	if err != nil {
		c.t.Fatal(err)
	}
	defer cli.Close()
	r, err := cli.Get(ctx, key, clientv3.WithSerializable())
	if err != nil || len(r.Kvs) != 1 {
		c.fatal("get %s on %s: %v, %v", key, node, r, err)
	}
	return string(r.Kvs[0].Value)
}

// alarms are the cluster's alarms, as node reports them.
func (c *testCluster) alarms(ctx context.Context, node string) []*pb.AlarmMember {
	c.t.Helper()
	cli, err := c.tg.admin(node)
	if err != nil {
		c.t.Fatal(err)
	}
	actx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	r, err := cli.AlarmList(actx)
	if err != nil {
		c.fatal("alarms on %s: %v", node, err)
	}
	return r.Alarms
}

// logLines logs the lines of node's log that say any of says.
func (c *testCluster) logLines(node string, says ...string) {
	c.t.Helper()
	for _, l := range strings.Split(c.logOf(node), "\n") {
		for _, s := range says {
			if strings.Contains(l, s) {
				c.t.Logf("%s: %s", node, l)
				break
			}
		}
	}
}

// logOf is node's whole log.
func (c *testCluster) logOf(node string) string {
	b, _ := os.ReadFile(c.logPath(node))
	return string(b)
}

// others are the names but node, sorted, as compareHashes lists a group.
func (c *testCluster) others(node string) string {
	var o []string
	for _, n := range c.names {
		if n != node {
			o = append(o, n)
		}
	}
	slices.Sort(o)
	return strings.Join(o, ", ")
}

// hashIn is the hash compareHashes gives group in detail ("n1, n2 hash 0x1234abcd").
func hashIn(detail, group string) string {
	_, after, ok := strings.Cut(detail, group+" hash 0x")
	if !ok || len(after) < 8 {
		return ""
	}
	return after[:8]
}

// setUpTampered is the common start of both tests: a 3-member cluster of v3.7.3 (extra
// flags on every member), 50 keys written, Consistent valid on it; then, after
// beforeStop (if any), one follower, victim, is stopped and its latest revision of k7
// rewritten (tamper). It returns the cluster, the victim, the cluster's revision and the
// hash all members agreed on.
func setUpTampered(t *testing.T, ctx context.Context, beforeStop func(c *testCluster, leader string),
	extra ...string) (c *testCluster, victim string, rev int64, hash string) {
	t.Helper()
	c = startTargetArgs(t, Config{Binary: releaseBin(t, "v3.7.3"), Version: "v3.7.3", NoCorruptCheck: true}, 3, extra...)
	c.putN(ctx, "n1", "k", 50)
	victim, leader := c.follower(ctx)
	rev = c.revision(ctx, leader)

	// Before the tampering: the same cluster is consistent, at that revision.
	start := time.Now()
	res := c.tg.Consistent(ctx)
	if res.Valid == nil || !*res.Valid || !strings.Contains(res.Detail, "all 3 members hash 0x") ||
		!strings.Contains(res.Detail, fmt.Sprintf("at revision %d", rev)) {
		c.fatal("before the tampering: %+v, want valid at revision %d", res, rev)
	}
	_, hash, _ = strings.Cut(res.Detail, "hash 0x")
	hash = hash[:8]
	t.Logf("before (%v): %s", time.Since(start).Round(time.Millisecond), res.Detail)
	if beforeStop != nil {
		beforeStop(c, leader)
	}

	c.stop(victim)
	if c.running(victim) {
		c.fatal("%s still running", victim)
	}
	trev, old := tamper(t, c.dataDir(victim), "k7", tamperedValue)
	if old != "v" || trev <= 0 || trev > rev {
		c.fatal("tampered revision %d of k7 (was %q): want a revision ≤ %d holding \"v\"", trev, old, rev)
	}
	t.Logf("stopped %s (leader %s); on its disk, k7 at revision %d: %q → %q", victim, leader, trev, old, tamperedValue)
	return c, victim, rev, hash
}

// TestConsistentTamperedMember (etcd v3.7.3, cached): a member whose stored value of one
// key revision differs from the others' is reported by Consistent as divergent, named,
// at the revision, while etcd itself (with the target's command line less the start-up
// check, NoCorruptCheck: none of its corruption checks on) starts the member, serves the tampered value and raises no alarm.
func TestConsistentTamperedMember(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, time.Minute)
	c, victim, rev, hash := setUpTampered(t, ctx, nil)

	c.start(victim) // the target's own command line, unchanged
	c.waitRevision(ctx, victim, rev)
	// The data really differ: the member serves the tampered bytes, the others not.
	if v := c.localValue(ctx, victim, "k7"); v != tamperedValue {
		c.fatal("k7 on %s = %q, want %q", victim, v, tamperedValue)
	}
	for _, n := range c.names {
		if n != victim {
			if v := c.localValue(ctx, n, "k7"); v != "v" {
				c.fatal("k7 on %s = %q, want \"v\"", n, v)
			}
		}
	}

	start := time.Now()
	res := c.tg.Consistent(ctx)
	took := time.Since(start)
	t.Logf("after (%v): %s", took.Round(time.Millisecond), res.Detail)
	if res.Valid == nil || *res.Valid {
		c.fatal("after the tampering: %s %+v, want invalid", fmtBool(res.Valid), res)
	}
	if want := fmt.Sprintf("differ at revision %d", rev); !strings.Contains(res.Detail, want) {
		t.Errorf("detail %q does not say %q", res.Detail, want)
	}
	// The others keep the hash all three had; the victim alone has another.
	if h := hashIn(res.Detail, c.others(victim)); h != hash {
		t.Errorf("detail %q: %s hash %q, want the earlier 0x%s", res.Detail, c.others(victim), h, hash)
	}
	if h := hashIn(res.Detail, victim); h == "" || h == hash {
		t.Errorf("detail %q: %s hash %q, want one of its own", res.Detail, victim, h)
	}

	// What etcd did about it: nothing. The member runs, no alarm, and its start-up log
	// shows the checks off.
	if !c.running(victim) {
		c.fatal("%s exited", victim)
	}
	if a := c.alarms(ctx, victim); len(a) != 0 {
		t.Errorf("alarms: %v", a)
	}
	// (etcd 3.7 logs its vestigial "initial-corrupt-check" field false whatever the gate
	// says: the gate is what counts, and no gate is set: all at their defaults.)
	log := c.logOf(victim)
	for _, s := range []string{`"corrupt-check-time-interval":"0s"`, `"feature-gates":""`} {
		if !strings.Contains(log, s) {
			t.Errorf("%s's log does not say %s", victim, s)
		}
	}
	for _, s := range []string{"initial corruption check", "enabled corruption checking", "CORRUPT"} {
		if strings.Contains(log, s) {
			t.Errorf("%s's log after the restart mentions %q", victim, s)
		}
	}
}

// TestEtcdChecksTamperedMember (etcd v3.7.3, cached): with etcd's own corruption checks
// turned on (the test's copy of the command line only), etcd catches the tampered member
// itself, and Consistent is never valid. The periodic check (--corrupt-check-time 1s) runs
// on every member from the start; the start-up check (--feature-gates
// InitialCorruptCheck=true) on the tampered member's first restart makes it refuse to
// start: Consistent is unknown, naming it. Started again without the start-up check, it
// runs, the leader's periodic check raises a CORRUPT alarm on it, writes fail, and
// Consistent is invalid, naming it.
func TestEtcdChecksTamperedMember(t *testing.T) {
	t.Parallel()
	ctx := ctxT(t, time.Minute)
	periodic := []string{"--corrupt-check-time", "1s"}
	var leader string
	// Before the tampering, the leader's periodic check has run on all three members at
	// the current revision, and passed: no alarm.
	checked := func(c *testCluster, l string) {
		leader = l
		const done = `"number-of-peers-checked":2`
		skip := strings.Count(c.logOf(l), done)
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := sut.Poll(pctx, 100*time.Millisecond, func(context.Context) error {
			if strings.Count(c.logOf(l), done) <= skip {
				return errors.New("no periodic check since")
			}
			return nil
		})
		if err != nil {
			c.fatal("the leader %s's periodic corruption check: %v", l, err)
		}
		if a := c.alarms(ctx, l); len(a) != 0 {
			c.fatal("alarms before the tampering: %v", a)
		}
	}
	c, victim, rev, hash := setUpTampered(t, ctx, checked, periodic...)
	victimID := c.idOf(victim)
	if l, err := c.tg.Leader(ctx); err != nil || l != leader {
		c.fatal("leader %q (%v), was %s", l, err, leader)
	}

	// The start-up check: the member exits, saying why.
	start := time.Now()
	c.launch(victim, withArgs(c.tg.Node(c.nodeEnv(victim)), append(slices.Clone(periodic),
		"--feature-gates", "InitialCorruptCheck=true")...))
	if !c.waitExit(victim, 20*time.Second) {
		c.fatal("%s with InitialCorruptCheck did not exit", victim)
	}
	t.Logf("%s with InitialCorruptCheck exited after %v", victim, time.Since(start).Round(time.Millisecond))
	c.logLines(victim, "corruption check", "found different hash values", "checkInitialHashKV")
	log := c.logOf(victim)
	for _, s := range []string{"found different hash values from remote peer", "checkInitialHashKV failed",
		fmt.Sprintf("%x found data inconsistency with peers", victimID)} {
		if !strings.Contains(log, s) {
			t.Errorf("%s's log does not say %q:\n%s", victim, s, c.logTail(victim, 10))
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 3*time.Second) // else it waits 30 s for the victim
	res := c.tg.Consistent(sctx)
	cancel()
	t.Logf("with %s refused: %s", victim, res.Detail)
	if res.Valid != nil || !strings.Contains(res.Detail, victim) {
		t.Errorf("with %s refused: %s %+v, want unknown naming it", victim, fmtBool(res.Valid), res)
	}

	// The periodic check: the member starts, the leader raises the alarm on it.
	c.launch(victim, withArgs(c.tg.Node(c.nodeEnv(victim)), periodic...))
	c.waitRevision(ctx, victim, rev)
	start = time.Now()
	actx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var alarms []*pb.AlarmMember
	err := sut.Poll(actx, 200*time.Millisecond, func(ctx context.Context) error {
		if alarms = c.alarms(ctx, leader); len(alarms) == 0 {
			return errors.New("no alarm")
		}
		return nil
	})
	if err != nil {
		c.fatal("no alarm on the leader %s: %v", leader, err)
	}
	t.Logf("alarms after %v: %v (%s is %x)", time.Since(start).Round(time.Millisecond), alarms, victim, victimID)
	if len(alarms) != 1 || alarms[0].Alarm != pb.AlarmType_CORRUPT || alarms[0].MemberID != victimID {
		t.Errorf("alarms %v, want one CORRUPT on %s (%x)", alarms, victim, victimID)
	}
	c.logLines(leader, "same compact revision then hashes must match")
	if !strings.Contains(c.logOf(leader), "same compact revision then hashes must match") {
		t.Errorf("the leader %s's log does not say why", leader)
	}
	cli, err := c.tg.admin(leader)
	if err != nil {
		t.Fatal(err)
	}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = cli.Put(pctx, "after", "alarm")
	cancel()
	t.Logf("a write after the alarm: %v", err)
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("a write after the alarm: %v, want etcd's corrupt cluster error", err)
	}

	res = c.tg.Consistent(ctx)
	t.Logf("with the alarm: %s", res.Detail)
	if res.Valid != nil && *res.Valid {
		c.fatal("with the alarm: valid %+v", res)
	}
	if res.Valid == nil || !strings.Contains(res.Detail, fmt.Sprintf("differ at revision %d", rev)) ||
		hashIn(res.Detail, c.others(victim)) != hash || hashIn(res.Detail, victim) == "" {
		t.Errorf("with the alarm: %s %+v, want invalid at revision %d, %s apart", fmtBool(res.Valid), res, rev, victim)
	}
}

// idOf is node's member id, as it last reported it.
func (c *testCluster) idOf(node string) uint64 {
	c.tg.mu.Lock()
	defer c.tg.mu.Unlock()
	return c.tg.ids[node]
}
