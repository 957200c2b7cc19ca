package netns

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Available reports whether this host can make networks of namespaces: root, the ip and
// nsenter commands, and network namespaces in the kernel. If not, why says what is missing.
func Available() (ok bool, why string) {
	if os.Geteuid() != 0 {
		return false, "not root"
	}
	for _, tool := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return false, "no " + tool + " command"
		}
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return false, "no network namespaces in this kernel"
	}
	return true, ""
}

// CleanAll removes the networks that runs left behind on this host: every namespace named
// faultline-R or faultline-R-<node> and every veth named fl-R, for each run R whose
// network no live process holds (see Network). It touches nothing not named as ours. It
// returns what it removed, as "netns NAME" and "link NAME".
func CleanAll(ctx context.Context) (removed []string, err error) {
	spaces, links, err := leftovers(ctx)
	if err != nil {
		return nil, fmt.Errorf("clean networks: %w", err)
	}
	runs := map[string]bool{}
	for r := range spaces {
		runs[r] = true
	}
	for r := range links {
		runs[r] = true
	}
	// Lock files of runs that crashed with nothing left to remove go too.
	locks, _ := filepath.Glob(filepath.Join(lockDir, "netns-*.lock"))
	for _, l := range locks {
		r := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(l), "netns-"), ".lock")
		if runIDRE.MatchString(r) {
			runs[r] = true
		}
	}
	if len(runs) == 0 {
		return nil, nil
	}
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("clean networks: %w", err)
	}
	var errs []error
	for _, r := range slices.Sorted(maps.Keys(runs)) {
		lock, lerr := flock(lockPath(r), false)
		if errors.Is(lerr, errLocked) {
			continue // a live run's network
		}
		if lerr != nil {
			errs = append(errs, lerr)
			continue
		}
		for _, l := range links[r] {
			if e := deleteLink(ctx, l); e != nil {
				errs = append(errs, e)
			} else {
				removed = append(removed, "link "+l)
			}
		}
		// Nodes first, the hub (whose name sorts first) last.
		for _, ns := range slices.Backward(slices.Sorted(slices.Values(spaces[r]))) {
			if e := deleteNS(ctx, ns); e != nil {
				errs = append(errs, e)
			} else {
				removed = append(removed, "netns "+ns)
			}
		}
		_ = os.Remove(lock.Name())
		_ = lock.Close()
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("clean networks: %w", errors.Join(errs...))
	}
	return removed, nil
}

// leftovers lists our namespaces and host links on this host, by run id.
func leftovers(ctx context.Context) (spaces, links map[string][]string, err error) {
	spaces, links = map[string][]string{}, map[string][]string{}
	out, err := command(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line) // "name" or "name (id: 3)"
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(f[0], nsPrefix)
		r, _, _ := strings.Cut(rest, "-")
		if runIDRE.MatchString(r) {
			spaces[r] = append(spaces[r], f[0])
		}
	}
	out, err = command(ctx, "ip", "-o", "link", "show", "type", "veth")
	if err != nil {
		return nil, nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line) // "91: fl-R@if3: <...> ..."
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		r, ok := strings.CutPrefix(name, linkPrefix)
		if ok && runIDRE.MatchString(r) {
			links[r] = append(links[r], name)
		}
	}
	return spaces, links, nil
}
