package docker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/faultline/faultline/harness/runtime/docker/engine"
)

// The run's docker objects: its network, made in Prepare, cut in the partitions of last
// resort, and everything removed in Close, and by DockerCleanAll.

// Prepare implements Runtime: it makes the nodes' data directories, creates the run's
// bridge network on a /24 of 10.214.0.0/16 that no other docker network uses, and gives
// node i the address .10+i.
func (r *DockerRuntime) Prepare(ctx context.Context, nodes []string, _ []int) error {
	if len(nodes) > 200 {
		return fmt.Errorf("docker runtime: %d nodes do not fit in a /24", len(nodes))
	}
	for _, n := range nodes {
		if err := os.MkdirAll(r.dataDir(n), 0o755); err != nil {
			return fmt.Errorf("docker runtime: data dir: %w", err)
		}
	}
	name := "faultline-" + r.runID
	var lastErr error
	for attempt := range 4 {
		subnet, err := r.freeSubnet(ctx, attempt)
		if err != nil {
			return err
		}
		gw := subnet.Addr().Next()
		_, err = r.cli.NetworkCreate(ctx, engine.NetworkSpec{
			Name: name, Driver: "bridge", Labels: r.labels(),
			IPAM: &engine.IPAM{Driver: "default", Config: []engine.IPAMConfig{{Subnet: subnet.String(), Gateway: gw.String()}}},
		})
		if err != nil {
			lastErr = err
			if strings.Contains(err.Error(), "overlap") {
				continue // another run took it in the meantime
			}
			break
		}
		r.mu.Lock()
		r.netName, r.subnet, r.nodes = name, subnet, slices.Clone(nodes)
		a := subnet.Addr().As4()
		for i, n := range nodes {
			a[3] = byte(10 + i)
			r.addrs[n] = netip.AddrFrom4(a)
		}
		r.mu.Unlock()
		return nil
	}
	return fmt.Errorf("docker runtime: create network %s: %w", name, lastErr)
}

// freeSubnet picks 10.214.<n>.0/24 not overlapping any docker network or this host's
// (narrower than /16) interface networks, starting at a place given by the run id (so
// that concurrent runs rarely race for the same one).
func (r *DockerRuntime) freeSubnet(ctx context.Context, skip int) (netip.Prefix, error) {
	nets, err := r.cli.NetworkList(ctx, nil)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("docker runtime: list networks: %w", err)
	}
	var used []netip.Prefix
	if addrs, err := net.InterfaceAddrs(); err == nil { // and none of this host's networks
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Bits() >= 16 {
				used = append(used, p.Masked())
			}
		}
	}
	for _, n := range nets {
		for _, c := range n.IPAM.Config {
			if p, err := netip.ParsePrefix(c.Subnet); err == nil {
				used = append(used, p)
			}
		}
	}
	h := fnv.New32a()
	h.Write([]byte(r.runID))
	start := int(h.Sum32() % 256)
	for i := range 256 {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 214, byte(start + i), 0}), 24)
		if slices.ContainsFunc(used, p.Overlaps) {
			continue
		}
		if skip == 0 {
			return p, nil
		}
		skip--
	}
	return netip.Prefix{}, errors.New("docker runtime: no free /24 left in 10.214.0.0/16")
}

// Isolate implements runtime.Isolator, the partition of last resort: these nodes are
// disconnected from the run's network, the others (re)connected. A container made anew
// (a member re-added with other flags) starts connected: call Isolate again after it.
func (r *DockerRuntime) Isolate(ctx context.Context, cut []string) error {
	r.cutMu.Lock()
	defer r.cutMu.Unlock()
	nodes := r.nodeNames()
	isolated := map[string]bool{}
	for _, n := range cut {
		isolated[n] = true
	}
	netName, _ := r.Network()
	var errs []error
	for _, n := range nodes {
		c := r.node(n)
		r.mu.Lock()
		same := isolated[n] == r.cut[n]
		r.mu.Unlock()
		if c == nil || same {
			continue
		}
		var err error
		if isolated[n] {
			err = r.cli.NetworkDisconnect(ctx, netName, c.id, true)
		} else {
			err = r.cli.NetworkConnect(ctx, netName, c.id, &engine.EndpointSettings{Aliases: []string{n},
				IPAMConfig: &engine.EndpointIPAMConfig{IPv4Address: r.Addr(n).String()}})
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("partition %s: %w", n, err))
			continue
		}
		r.mu.Lock()
		r.cut[n] = isolated[n]
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Close implements Runtime: it stops every container of the run (gracefully, in
// parallel, thawing paused ones), lets their logs drain, then removes every container,
// network and volume labelled with this run's id. It is idempotent and ignores its
// context's cancellation (not its values).
func (r *DockerRuntime) Close(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	// Nodes we launched: stop them gracefully, in parallel, so their logs end cleanly.
	var wg sync.WaitGroup
	for _, node := range r.launched() {
		wg.Add(1)
		go func() { defer wg.Done(); _ = r.Stop(ctx, node) }()
	}
	wg.Wait()
	_, err := removeLabelled(ctx, r.cli, LabelRun+"="+r.runID, true)
	return err
}

func (r *DockerRuntime) launched() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.ctrs))
	for n := range r.ctrs {
		names = append(names, n)
	}
	return names
}

// DockerCleanAll removes every container, network and volume labelled faultline=1 that a
// run left behind (its harness is gone), and nothing else. It returns what it removed.
// Images are kept: they are a cache keyed by content (see DockerRemoveImages).
func CleanAll(ctx context.Context) ([]string, error) {
	cli, err := dockerClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	return removeLabelled(ctx, cli, LabelOurs+"=1", false)
}

// DockerRemoveImages removes the node images faultline built (labelled faultline=1): a
// cache keyed by content, which grows by one image per faultline build used. Images in
// use by a container are left. It returns what it removed.
func RemoveImages(ctx context.Context) ([]string, error) {
	cli, err := dockerClient()
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	imgs, err := cli.ImageList(ctx, engine.Filters{"label": {LabelOurs + "=1"}})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var removed []string
	var errs []error
	for _, img := range imgs {
		if img.Labels[LabelOurs] != "1" {
			continue
		}
		name := img.ID
		if len(img.RepoTags) > 0 {
			name = img.RepoTags[0]
		}
		if err := cli.ImageRemove(ctx, img.ID, engine.ImageRemoveOptions{}); err != nil && !engine.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove image %s: %w", name, err))
			continue
		}
		removed = append(removed, "image "+name)
	}
	return removed, errors.Join(errs...)
}

// removeLabelled removes the containers (with their anonymous volumes), then networks,
// then volumes carrying the label (key=value) and faultline=1: with live, also those of a
// harness still alive (a run removing its own objects), else only those whose harness is
// gone. The daemon filters by the label, and each object's labels are checked again here
// before it is removed.
func removeLabelled(ctx context.Context, cli *engine.Client, label string, live bool) ([]string, error) {
	key, value, _ := strings.Cut(label, "=")
	ours := func(labels map[string]string) bool {
		if labels[key] != value || labels[LabelOurs] != "1" {
			return false
		}
		h, has := labels[LabelHarness]
		return live || !has || !harnessAlive(h)
	}
	filter := engine.Filters{"label": {label}}
	var removed []string
	var errs []error
	gone := func(err error) bool { return err == nil || engine.IsNotFound(err) }

	ctrs, err := cli.ContainerList(ctx, true, filter)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	for _, c := range ctrs {
		if !ours(c.Labels) {
			continue
		}
		err := cli.ContainerRemove(ctx, c.ID, engine.RemoveOptions{Force: true, Volumes: true})
		if !gone(err) {
			errs = append(errs, fmt.Errorf("remove container %s: %w", containerLabel(c), err))
			continue
		}
		removed = append(removed, "container "+containerLabel(c))
	}
	nets, err := cli.NetworkList(ctx, filter)
	if err != nil {
		return removed, errors.Join(append(errs, fmt.Errorf("list networks: %w", err))...)
	}
	for _, n := range nets {
		if !ours(n.Labels) {
			continue
		}
		if err := cli.NetworkRemove(ctx, n.ID); !gone(err) {
			errs = append(errs, fmt.Errorf("remove network %s: %w", n.Name, err))
			continue
		}
		removed = append(removed, "network "+n.Name)
	}
	vols, err := cli.VolumeList(ctx, filter)
	if err != nil {
		return removed, errors.Join(append(errs, fmt.Errorf("list volumes: %w", err))...)
	}
	for _, v := range vols {
		if !ours(v.Labels) {
			continue
		}
		if err := cli.VolumeRemove(ctx, v.Name, true); !gone(err) {
			errs = append(errs, fmt.Errorf("remove volume %s: %w", v.Name, err))
			continue
		}
		removed = append(removed, "volume "+v.Name)
	}
	return removed, errors.Join(errs...)
}

func containerLabel(c engine.ContainerSummary) string {
	if len(c.Names) > 0 {
		return strings.TrimPrefix(c.Names[0], "/")
	}
	return c.ID[:min(12, len(c.ID))]
}
