package netfilter

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
)

const table = "inet faultline"

// lossScale is the resolution of Loss: a fraction is rounded to a multiple of 1/lossScale.
const lossScale = 1000

// Apply makes the namespace at nsPath drop every packet from the given addresses and every
// packet to them, established connections included, replacing the partition it had (if
// any). No addresses: the namespace's partition is healed (a Loss stays).
func Apply(ctx context.Context, nsPath string, drop []netip.Addr) error {
	return Partition(ctx, nsPath, drop, false)
}

// Partition is Apply, and with reset, TCP packets are refused with a reset instead of
// dropped: established connections die at once on both ends (their unsent and
// unacknowledged data with them) rather than stall until the partition heals, as behind
// a firewall that rejects. Other packets are dropped.
func Partition(ctx context.Context, nsPath string, drop []netip.Addr, reset bool) error {
	rules, err := match(drop, "", reset)
	if err != nil {
		return fmt.Errorf("partition %s: %w", nsPath, err)
	}
	if err := nft(ctx, nsPath, replace("partition", rules)); err != nil {
		return fmt.Errorf("partition %s: %w", nsPath, err)
	}
	return nil
}

// Loss makes the namespace at nsPath drop a random fraction (0 to 1, in steps of 0.001) of
// the packets from the given peers, and the same fraction of the packets to them,
// replacing the loss it had (if any). A fraction of 0, or no peers, heals the loss (a
// partition stays). Both directions of a link lose packets in the one namespace, so lossy
// links need Loss on one end each: on both ends a link would lose 1-(1-f)² each way.
func Loss(ctx context.Context, nsPath string, peers []netip.Addr, fraction float64) error {
	if math.IsNaN(fraction) || fraction < 0 || fraction > 1 {
		return fmt.Errorf("loss %s: fraction %v is not between 0 and 1", nsPath, fraction)
	}
	n := int(math.Round(fraction * lossScale))
	if n == 0 {
		peers = nil
	}
	cond := fmt.Sprintf("numgen random mod %d < %d ", lossScale, n)
	if n == lossScale {
		cond = "" // every packet (nft rejects "< 1000" as out of range)
	}
	rules, err := match(peers, cond, false)
	if err != nil {
		return fmt.Errorf("loss %s: %w", nsPath, err)
	}
	if err := nft(ctx, nsPath, replace("loss", rules)); err != nil {
		return fmt.Errorf("loss %s: %w", nsPath, err)
	}
	return nil
}

// Available reports whether this host can filter packets inside namespaces: root, and the
// nsenter and nft commands. If not, why says what is missing.
func Available() (ok bool, why string) {
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	for _, tool := range []string{"nsenter", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, "no " + tool + " command"
		}
	}
	return true, ""
}

// Clear removes every fault this package put in the namespace at nsPath (its table). It
// is idempotent.
func Clear(ctx context.Context, nsPath string) error {
	// Adding the table first makes the delete succeed when there was none; both happen in
	// one transaction.
	if err := nft(ctx, nsPath, "add table "+table+"\ndelete table "+table+"\n"); err != nil {
		return fmt.Errorf("clear %s: %w", nsPath, err)
	}
	return nil
}

// Rules returns the namespace's faultline table as nft prints it ("" when there is none),
// for logs and reports.
func Rules(ctx context.Context, nsPath string) (string, error) {
	out, err := run(ctx, nsPath, "", "list", "table", table)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return "", nil
		}
		return "", fmt.Errorf("rules %s: %w", nsPath, err)
	}
	return out, nil
}

// rules is what one fault puts in its chains, per direction.
type rules struct{ in, out []string }

// match returns rules that drop packets from (in) and to (out) the addresses, when cond
// (an nft expression followed by a space, or "") holds; with reset, TCP packets are
// first refused with a reset.
func match(addrs []netip.Addr, cond string, reset bool) (rules, error) {
	var v4, v6 []string
	for _, a := range addrs {
		if !a.IsValid() {
			return rules{}, errors.New("invalid address (a node without one?)")
		}
		a = a.Unmap()
		if a.Is4() {
			v4 = append(v4, a.String())
		} else {
			v6 = append(v6, a.WithZone("").String())
		}
	}
	var r rules
	for _, fam := range []struct {
		proto string
		set   []string
	}{{"ip", v4}, {"ip6", v6}} {
		if len(fam.set) == 0 {
			continue
		}
		slices.Sort(fam.set)
		set := "{ " + strings.Join(slices.Compact(fam.set), ", ") + " }"
		if reset {
			// The resets the rejects make must get through the drops (a reset never
			// answers a reset, so this cannot loop); then TCP is refused, the rest dropped.
			r.in = append(r.in, fmt.Sprintf("%s saddr %s tcp flags & rst == rst accept", fam.proto, set),
				fmt.Sprintf("%s saddr %s meta l4proto tcp counter reject with tcp reset", fam.proto, set))
			r.out = append(r.out, fmt.Sprintf("%s daddr %s tcp flags & rst == rst accept", fam.proto, set),
				fmt.Sprintf("%s daddr %s meta l4proto tcp counter reject with tcp reset", fam.proto, set))
		}
		r.in = append(r.in, fmt.Sprintf("%s saddr %s %scounter drop", fam.proto, set, cond))
		r.out = append(r.out, fmt.Sprintf("%s daddr %s %scounter drop", fam.proto, set, cond))
	}
	return r, nil
}

// replace returns an nft script that (re)creates the fault's pair of chains and fills them
// with r, all in one transaction. The chains hook in at raw priority, before conntrack.
func replace(fault string, r rules) string {
	var b strings.Builder
	fmt.Fprintf(&b, "add table %s\n", table)
	for _, dir := range []struct {
		chain, hook string
		rules       []string
	}{{fault + "_in", "input", r.in}, {fault + "_out", "output", r.out}} {
		fmt.Fprintf(&b, "add chain %s %s { type filter hook %s priority -300; policy accept; }\n", table, dir.chain, dir.hook)
		fmt.Fprintf(&b, "flush chain %s %s\n", table, dir.chain)
		for _, rule := range dir.rules {
			fmt.Fprintf(&b, "add rule %s %s %s\n", table, dir.chain, rule)
		}
	}
	return b.String()
}

// nft runs an nft script in the namespace at nsPath.
func nft(ctx context.Context, nsPath, script string) error {
	_, err := run(ctx, nsPath, script, "-f", "-")
	return err
}

// run runs nft with args in the namespace at nsPath, script on its stdin; the error names
// the command and carries nft's stderr (and the script, when there is one).
func run(ctx context.Context, nsPath, script string, args ...string) (string, error) {
	if err := notOurs(nsPath); err != nil {
		return "", err
	}
	argv := append([]string{"--net=" + nsPath, "--", "nft"}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Stdin = strings.NewReader(script)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if script != "" {
			msg += "\nscript:\n" + script
		}
		return "", fmt.Errorf("nsenter %s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return stdout.String(), nil
}

// ownNS is the network namespace the harness started in, read once at start: later, a
// thread of ours may be inside a node's namespace for a moment (netns.Do), and
// /proc/self names the main thread's, which may be such a thread.
var ownNS, ownNSErr = func() (syscall.Stat_t, error) {
	var st syscall.Stat_t
	err := syscall.Stat("/proc/thread-self/ns/net", &st)
	return st, err
}()

// notOurs returns an error unless nsPath is a network namespace other than the harness's
// own: a fault must never land on the host. (A process just started with nsenter is in
// the host's namespace until it has entered its own: a /proc/PID/ns/net read too early
// names the host's.)
func notOurs(nsPath string) error {
	var target syscall.Stat_t
	if err := syscall.Stat(nsPath, &target); err != nil {
		return fmt.Errorf("network namespace: %w", err)
	}
	if ownNSErr != nil {
		return fmt.Errorf("the harness's own network namespace: %w", ownNSErr)
	}
	if target.Dev == ownNS.Dev && target.Ino == ownNS.Ino {
		return fmt.Errorf("network namespace %s is the harness's own: refusing to filter the host's network", nsPath)
	}
	return nil
}
