package nemesis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
)

// Link is a directed link between two nodes: what From sends to To.
type Link struct{ From, To string }

// Packets are the faults a link suffers. Zero is a healthy link. Duplicate and Reorder
// are message faults (a link of one-way messages); Rate and Blackhole are stream faults
// (a link of long-lived TCP streams, where nothing can overtake anything).
type Packets struct {
	Delay, Jitter time.Duration // each message (each byte, on a stream) waits Delay ± Jitter
	Loss          float64       // probability a packet (message) is lost
	Duplicate     float64       // probability a message arrives twice
	Reorder       float64       // probability a message is held back ReorderBy, so later ones overtake it
	ReorderBy     time.Duration
	Rate          int64 // bytes per second the link carries (0: unlimited)
	Blackhole     bool  // the link carries nothing (held, not lost: a one-way cut)
}

func (p Packets) String() string {
	var parts []string
	if p.Delay > 0 || p.Jitter > 0 {
		parts = append(parts, fmt.Sprintf("delay %v±%v", p.Delay, p.Jitter))
	}
	for _, x := range []struct {
		name string
		p    float64
	}{{"loss", p.Loss}, {"duplicate", p.Duplicate}, {"reorder", p.Reorder}} {
		if x.p > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f%%", x.name, 100*x.p))
		}
	}
	if p.Reorder > 0 {
		parts[len(parts)-1] += fmt.Sprintf(" by %v", p.ReorderBy)
	}
	if p.Rate > 0 {
		parts = append(parts, fmt.Sprintf("rate %d B/s", p.Rate))
	}
	if p.Blackhole {
		parts = append(parts, "blackhole")
	}
	if parts == nil {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// packet degrades some links for a while, one way: a link's reverse is untouched. On
// links of one-way messages (raftnode's) the faults are delay with jitter, loss,
// duplication and reordering; on long-lived TCP streams (etcd's rafthttp), where
// nothing can overtake anything, delay with jitter, loss, a throughput limit and a
// blackhole (the link carries nothing). Each acts on the links out of one node, into
// one node, or between every pair.
var packetDef = &Def{
	Kind: Packet, Doc: "degrade links between nodes one way (the run's link proxy), heal them at the end",
	Needs: []Capability{CapLinks}, MinNodes: 2,
	Variants: []Variant{
		{Name: "delay", Weight: 1, Doc: "delay each message (each byte of a stream) by 50-500 ms with jitter"},
		{Name: "loss", Weight: 1, Doc: "lose 10-50% of the messages (of the packets, on streams: between every pair)"},
		{Name: "duplicate", Weight: 1, Needs: []Capability{CapMessages}, Doc: "deliver 20-80% of the messages twice"},
		{Name: "reorder", Weight: 1, Needs: []Capability{CapMessages}, Doc: "hold 20-60% of the messages back 20-100 ms, so later ones overtake them"},
		{Name: "rate", Weight: 1, Needs: []Capability{CapStreams}, Doc: "limit a stream to 4-64 KiB/s"},
		{Name: "blackhole", Weight: 1, Needs: []Capability{CapStreams}, Doc: "a stream carries nothing (held, not lost: a one-way cut)"},
	},
	Start: "start-packet", End: "stop-packet", Verb: "packet faults", Healed: "healed",
	Family: "packet", Color: "#f8cfa4",
	Inject: injectPacket,
}

// injectPacket picks the links (out of a node, into it, or between all; the node is the
// Focus a combination gave it, if any) and the fault's figures, and applies them.
func injectPacket(ctx context.Context, env Env, v Variant) (Injection, error) {
	pk := env.Powers.Links
	nodes := env.Cluster.Nodes()
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+env.Rand.IntN(hi-lo+1)) * time.Millisecond }
	var p Packets
	switch v.Name {
	case "delay":
		p.Delay = ms(50, 500)
		p.Jitter = p.Delay / time.Duration(2+env.Rand.IntN(4))
	case "loss":
		p.Loss = float64(10+env.Rand.IntN(41)) / 100
	case "rate":
		p.Rate = int64(4+env.Rand.IntN(61)) << 10 // 4-64 KiB/s
	case "duplicate":
		p.Duplicate = float64(20+env.Rand.IntN(61)) / 100
	case "blackhole":
		p.Blackhole = true
	case "reorder":
		p.Reorder = float64(20+env.Rand.IntN(41)) / 100
		p.ReorderBy = ms(20, 100)
	default:
		return Injection{}, fmt.Errorf("packet: unknown variant %q", v.Name)
	}
	centre := nodes[env.Rand.IntN(len(nodes))]
	if len(env.Focus) > 0 {
		centre = env.Focus[0]
	}
	var links []Link
	shape := []string{"out of", "into", "between all"}[env.Rand.IntN(3)]
	if !pk.Messages() && p.Loss > 0 {
		shape = "between all" // on streams, loss is done in the kernel, on every link
	}
	for _, a := range nodes {
		for _, b := range nodes {
			if a == b {
				continue
			}
			if shape == "between all" || shape == "out of" && a == centre || shape == "into" && b == centre {
				links = append(links, Link{From: a, To: b})
			}
		}
	}
	what := shape
	if shape != "between all" {
		what += " " + centre
	}
	if err := pk.Packets(ctx, links, p); err != nil {
		_ = pk.HealPackets(context.WithoutCancel(ctx))
		return Injection{}, fmt.Errorf("packets %s: %w", what, err)
	}
	touched := nodes
	if shape != "between all" {
		touched = []string{centre}
	}
	return Injection{Nodes: slices.Clone(touched), Value: history.L(p.String(), what),
		Heal: pk.HealPackets}, nil
}
