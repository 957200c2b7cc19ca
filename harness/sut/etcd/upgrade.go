package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/faultline/faultline/harness/sut"
)

// Releases: a live upgrade (or downgrade) of the members, one at a time, on their data:
// nemesis.Upgrader. The harness does the runtime's part for each member: stop it,
// SetVersion, start it again (Node then runs the new release's binary with that
// release's flags), wait for Healthy. For a downgrade it calls PrepareDowngrade first.

// Versions implements nemesis.Upgrader: Config.Versions, or the one release Config.Version.
func (t *Target) Versions() []string {
	if len(t.cfg.Versions) > 0 {
		return slices.Clone(t.cfg.Versions)
	}
	if t.cfg.Version == "" {
		return nil
	}
	return []string{t.cfg.Version}
}

// versionOf is the release node's next start runs; the caller holds t.mu.
func (t *Target) versionOf(node string) string {
	if v, ok := t.version[node]; ok {
		return v
	}
	if vs := t.Versions(); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// binaryOf is the server program of release version: Config.Binaries[version], else
// Config.Binary.
func (t *Target) binaryOf(version string) string {
	if b, ok := t.cfg.Binaries[version]; ok {
		return b
	}
	return t.cfg.Binary
}

// Version implements nemesis.Upgrader.
func (t *Target) Version(node string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.versionOf(node)
}

// SetVersion implements nemesis.Upgrader: node's next start runs version, which must be
// one of Versions, with a binary (in Binaries, or Binary for Version).
func (t *Target) SetVersion(node, version string) error {
	if !slices.Contains(t.names, node) {
		return fmt.Errorf("etcd: no node %q", node)
	}
	_, ok := t.cfg.Binaries[version]
	if !slices.Contains(t.Versions(), version) || !ok && version != t.cfg.Version {
		return fmt.Errorf("etcd: no binary for release %q (have %s)", version, strings.Join(t.Versions(), ", "))
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.version[node] = version
	return nil
}

// releaseLine parses "v3.6.16" (or "3.6.0") into 3, 6; ok false if it cannot.
func releaseLine(version string) (major, minor int, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	maj, err1 := strconv.Atoi(parts[0])
	mnr, err2 := strconv.Atoi(parts[1])
	return maj, mnr, err1 == nil && err2 == nil
}

// atLeast reports whether version is release line major.minor or newer.
func atLeast(version string, major, minor int) bool {
	maj, mnr, ok := releaseLine(version)
	return ok && (maj > major || maj == major && mnr >= minor)
}

// defaultCatchUpEntries is etcd's DefaultSnapshotCatchUpEntries (etcdserver/server.go, in
// every release 3.4–3.7).
const defaultCatchUpEntries = 5000

// catchUpFlag is the flag setting SnapshotCatchUpEntries in release version, "" if it
// has none. From each release's `etcd --help` and etcdmain/config.go:
//   - 3.4 (Debian's 3.4.23): none; etcdserver keeps DefaultSnapshotCatchUpEntries = 5000.
//   - 3.5 from 3.5.14 (3.5.35): --experimental-snapshot-catchup-entries, hidden from
//     --help (etcdmain/config.go registers it; config_test.go's TestFlagsPresentInHelp
//     exempts it as "supposed to only be used in tests"). 3.5.0–3.5.13 have none: their
//     etcdmain/config.go does not register it, and a 3.5.7 member given it exits
//     ("flag provided but not defined").
//   - 3.6 (3.6.16): --snapshot-catchup-entries, and the old name, deprecated.
//   - 3.7 (3.7.3): --snapshot-catchup-entries only (the --experimental-* flags are gone).
func catchUpFlag(version string) string {
	switch {
	case atLeast(version, 3, 6):
		return "--snapshot-catchup-entries"
	case atLeast(version, 3, 5) && patchOf(version) >= 14:
		return "--experimental-snapshot-catchup-entries"
	}
	return ""
}

// patchOf is version's patch number (v3.5.14: 14), -1 when it has none.
func patchOf(version string) int {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 3 {
		return -1
	}
	f := strings.FieldsFunc(parts[2], func(r rune) bool { return r == '-' || r == '+' })
	if len(f) == 0 {
		return -1
	}
	p, err := strconv.Atoi(f[0])
	if err != nil {
		return -1
	}
	return p
}

// catchUpArgs are the flags for Config.SnapshotCatchUpEntries on node's release: none
// when it is unset, or when the release has no flag for it (then it keeps 5000, which
// the run's log says).
func (t *Target) catchUpArgs(node, version string) []string {
	n := t.cfg.SnapshotCatchUpEntries
	if n <= 0 {
		return nil
	}
	f := catchUpFlag(version)
	if f == "" {
		if t.env.Logf != nil {
			t.env.Logf("etcd %s (%s) has no snapshot catch-up flag: it keeps %d entries, not %d",
				version, node, defaultCatchUpEntries, n)
		}
		return nil
	}
	return []string{f, strconv.Itoa(n)}
}

// CatchUpEntries is how many entries node's release keeps for a slow follower after a
// snapshot: a follower further behind than that is sent a snapshot.
func (t *Target) CatchUpEntries(node string) int { return catchUpEntries(t.cfg, t.Version(node)) }

// catchUpEntries is how many entries a member of cfg on release version keeps for a
// slow follower after a snapshot.
func catchUpEntries(cfg Config, version string) int {
	if n := cfg.SnapshotCatchUpEntries; n > 0 && catchUpFlag(version) != "" {
		return n
	}
	return defaultCatchUpEntries
}

// versions is what a member's /version endpoint answers (every release 3.4–3.7):
// {"etcdserver":"3.6.16","etcdcluster":"3.6.0"}.
type versions struct {
	Server  string `json:"etcdserver"`
	Cluster string `json:"etcdcluster"`
}

// httpGet GETs path from addr (host:port) within ctx and a 2 s bound, and returns the
// body of a 200 answer.
func httpGet(ctx context.Context, addr, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// versionsOf asks node's /version.
func (t *Target) versionsOf(ctx context.Context, node string) (versions, error) {
	b, err := httpGet(ctx, t.clientAddr(node), "/version")
	if err != nil {
		return versions{}, fmt.Errorf("%s: %w", node, err)
	}
	var v versions
	if err := json.Unmarshal(b, &v); err != nil {
		return versions{}, fmt.Errorf("%s: /version: %w", node, err)
	}
	return v, nil
}

// ClusterVersion implements nemesis.Upgrader: the cluster version etcd reports ("3.6.0":
// etcd's cluster version is always a major.minor.0), as every member that answers its
// /version agrees on. An error if none answers, if they disagree (the change is being
// applied: ask again), or while the cluster has not decided one ("not_decided").
func (t *Target) ClusterVersion(ctx context.Context) (string, error) {
	seen := map[string][]string{}
	var errs []error
	for _, n := range t.names {
		v, err := t.versionsOf(ctx, n)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen[v.Cluster] = append(seen[v.Cluster], n)
	}
	switch len(seen) {
	case 0:
		return "", fmt.Errorf("no member answered /version: %w", errors.Join(errs...))
	case 1:
		for v, ns := range seen {
			if v == "" || v == "not_decided" {
				return "", fmt.Errorf("the cluster version is not decided yet (%s)", strings.Join(ns, ", "))
			}
			return v, nil
		}
	}
	var parts []string
	for v, ns := range seen {
		parts = append(parts, fmt.Sprintf("%s says %q", strings.Join(ns, ", "), v))
	}
	slices.Sort(parts)
	return "", fmt.Errorf("members disagree on the cluster version: %s", strings.Join(parts, "; "))
}

// PrepareDowngrade implements nemesis.Upgrader with etcd's downgrade API: it validates,
// then enables the downgrade of the cluster to version's release line (one minor below
// the cluster version; etcd refuses anything else), and waits within ctx until every
// member reports it enabled (its peer URL's /downgrade/enabled) and has moved its storage
// version to the target (Status), after which its binary may be replaced. Enabling it
// lowers the cluster version to the target at once; etcd ends the downgrade by itself
// once every member runs the target release. Called again while the downgrade is in
// progress, it only waits.
//
// Only a cluster at version 3.6 or newer can: etcd's supported downgrades are 3.6 → 3.5
// and 3.7 → 3.6, made safe by the storage version that 3.6 introduced. etcd 3.4 has no
// downgrade API at all, and 3.5's (etcdserver/v3_server.go) is an unfinished experiment
// that leaves the data files as they are; for a 3.5 or older cluster it returns an error
// saying so, without calling etcd.
func (t *Target) PrepareDowngrade(ctx context.Context, version string) error {
	maj, mnr, ok := releaseLine(version)
	if !ok {
		return fmt.Errorf("etcd downgrade: %q is not a release version", version)
	}
	tv := fmt.Sprintf("%d.%d", maj, mnr)
	cv, err := t.ClusterVersion(ctx)
	if err != nil {
		return fmt.Errorf("etcd downgrade to %s: %w", tv, err)
	}
	via, err := t.changeOrder(ctx, "")
	if err != nil {
		return fmt.Errorf("etcd downgrade to %s: %w", tv, err)
	}
	// Enabling lowers the cluster version to the target: a cluster at the target with a
	// downgrade enabled is one an earlier call prepared, and only the wait is left.
	if !(strings.HasPrefix(cv, tv+".") && t.downgradeEnabled(ctx, via[0])) {
		if !atLeast(cv, 3, 6) {
			return fmt.Errorf("etcd downgrade to %s: the cluster runs %s, and etcd supports downgrades only from "+
				"3.6 on (3.6 → 3.5, 3.7 → 3.6): 3.4 has no downgrade API and 3.5's leaves the storage unmanaged", tv, cv)
		}
		for _, action := range []clientv3.DowngradeAction{clientv3.DowngradeValidate, clientv3.DowngradeEnable} {
			for _, n := range via {
				if err = t.downgrade(ctx, n, action, tv); err == nil {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("etcd downgrade to %s: %w", tv, err)
			}
		}
	}
	err = sut.Poll(ctx, 200*time.Millisecond, func(ctx context.Context) error {
		for _, n := range t.names {
			if !t.downgradeEnabled(ctx, n) {
				return fmt.Errorf("%s does not report the downgrade enabled", n)
			}
			st, err := t.status(ctx, n, time.Second)
			if err != nil {
				return err
			}
			if sv := st.storageVersion; sv != "" && !strings.HasPrefix(sv, tv+".") {
				return fmt.Errorf("%s's storage version is %s, not yet %s", n, sv, tv)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("etcd downgrade to %s: enabled, but: %w", tv, err)
	}
	return nil
}

// downgradeEnabled reports whether node says a downgrade is enabled (its peer URL's
// /downgrade/enabled, a linearizable read, in 3.5 and newer); false if it cannot tell.
func (t *Target) downgradeEnabled(ctx context.Context, node string) bool {
	b, err := httpGet(ctx, t.env.Reach(node, PeerPort), "/downgrade/enabled")
	return err == nil && strings.TrimSpace(string(b)) == "true"
}

// downgrade sends one downgrade action through node.
func (t *Target) downgrade(ctx context.Context, node string, action clientv3.DowngradeAction, version string) error {
	c, err := t.admin(node)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := c.Downgrade(dctx, action, version); err != nil {
		return fmt.Errorf("%s via %s: %w", downgradeName(action), node, err)
	}
	return nil
}

func downgradeName(a clientv3.DowngradeAction) string {
	switch a {
	case clientv3.DowngradeValidate:
		return "validate"
	case clientv3.DowngradeEnable:
		return "enable"
	}
	return "cancel"
}
