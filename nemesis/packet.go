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

// Packeter degrades links: Packets replaces the packet faults in force with p on these
// links (the others are healthy); HealPackets makes every link healthy.
type Packeter interface {
	Packets(ctx context.Context, links []Link, p Packets) error
	HealPackets(ctx context.Context) error
}

// PacketFault degrades some links for a while: delays with jitter, loss, duplication or
// reordering (one of them, chosen at random), on the links out of one node, into one
// node, or between every pair. One-way faults are real: a link's reverse is untouched.
//
// With Stream set, the links are long-lived TCP streams (etcd's rafthttp) rather than
// one-way messages: the faults are then delay with jitter, a throughput limit, a
// blackhole (the link carries nothing), or packet loss between every pair.
type PacketFault struct {
	Stream bool
}

func (PacketFault) Name() string             { return "packet" }
func (PacketFault) Events() (string, string) { return "start-packet", "stop-packet" }
func (PacketFault) Available(c Cluster) (bool, string) {
	return has[Packeter](c, "packet", "this runtime cannot delay or drop packets of nodes")
}

// Inject picks the faults and the links and applies them.
func (f PacketFault) Inject(ctx context.Context, env Env) (Injection, error) {
	pk := env.Cluster.(Packeter)
	nodes := env.Cluster.Nodes()
	if len(nodes) < 2 {
		return Injection{}, fmt.Errorf("packet faults need at least 2 nodes")
	}
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+env.Rand.IntN(hi-lo+1)) * time.Millisecond }
	var p Packets
	kind := env.Rand.IntN(4)
	switch {
	case kind == 0:
		p.Delay = ms(50, 500)
		p.Jitter = p.Delay / time.Duration(2+env.Rand.IntN(4))
	case kind == 1:
		p.Loss = float64(10+env.Rand.IntN(41)) / 100
	case kind == 2 && f.Stream:
		p.Rate = int64(4+env.Rand.IntN(61)) << 10 // 4-64 KiB/s
	case kind == 2:
		p.Duplicate = float64(20+env.Rand.IntN(61)) / 100
	case f.Stream:
		p.Blackhole = true
	default:
		p.Reorder = float64(20+env.Rand.IntN(41)) / 100
		p.ReorderBy = ms(20, 100)
	}
	centre := nodes[env.Rand.IntN(len(nodes))]
	var links []Link
	shape := []string{"out of", "into", "between all"}[env.Rand.IntN(3)]
	if f.Stream && p.Loss > 0 {
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
