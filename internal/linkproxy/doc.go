// Package linkproxy puts message-level faults on a cluster's peer links: delay with
// jitter, loss, duplication and reordering of raft messages, which the host kernel cannot
// do for us (there is no netem qdisc), done by a userspace proxy the harness owns, as
// etcd's e2e proxy and Toxiproxy do.
//
// # Why the message level
//
// A node sends raft messages to a peer as HTTP/1.1 requests, POST <peer_url>/raft with a
// batch of messages as the body, answered 204 No Content. These POSTs are one-way
// messages: the answer carries nothing but "received". So the proxy can treat each POST
// as one datagram and delay, drop, duplicate or reorder it whole, which a byte-level
// (TCP) proxy cannot do without head-of-line blocking: on a stream a delayed message
// delays everything behind it, and nothing can overtake anything.
//
// # Topology
//
// There is one listener per destination node: each node's peer URL for node j is
// URL(j). The proxy recognises the sender of a request by the source address of its
// connection (each node has its own address, Endpoint.Addr), so a request on j's listener
// from i's address travels the directed Link{From: i, To: j}. A request from an address
// that is no node's is still forwarded, on Link{From: "", To: j}.
//
// # Dialling through the sender
//
// The harness partitions nodes with packet filters inside each node's network namespace;
// a proxy that dialled the destination itself would route around the partition. So every
// forward on Link{i, j} uses a connection made by Config.Dial(ctx, i, target), which the
// harness makes from inside i's namespace: a partition between i and j makes the forward
// fail (or hang until its timeout) exactly as i's own request would.
//
// # The two paths
//
// A link whose Faults are the zero value is transparent: the proxy forwards each request
// while the sender waits, and relays the destination's status, headers and body. A
// destination that cannot be reached answers the sender 502 Bad Gateway, or the sender's
// own timeout expires first (a partition drops packets, so the dial hangs); either way the
// sender sees a failed POST, as it would without the proxy.
//
// A link with any fault answers every POST 204 No Content at once ("204 at once"), before
// the message is delivered, and hands the message to the link's wire. This is what makes
// delay without blocking the sender possible, and later messages able to overtake earlier
// ones; it is correct because the answer carries nothing. The cost: on a faulty link the
// sender never learns that its message was lost or that the destination is unreachable
// (raft does not need to; it retries on its own). Requests that are not POSTs always take
// the transparent path, since their answers may carry data.
//
// # The wire
//
// Each link holds its messages in a queue ordered by due time (then arrival), and one
// goroutine per link, running only while the queue is not empty, delivers them one after
// another as they fall due. For each POST the proxy draws, under one mutex, from one
// seeded source:
//
//  1. loss: drop it (counted, never delivered);
//  2. the wait: Delay ± Jitter (uniform, never below 0), plus ReorderBy with probability
//     Reorder, so that later messages overtake it;
//  3. duplicate: with probability Duplicate, queue a second copy with a wait of its own
//     (Delay ± Jitter, never reordered).
//
// Messages that fall due at the same time keep their order, so a link with only loss or
// a fixed delay does not reorder; only Jitter and Reorder do. Delivery errors are counted
// (Stats.Failed), never reported to the sender. Each link holds at most 1024 copies and
// 512 MiB (the largest body accepted); a copy beyond that is dropped and counted. A
// delivery that takes longer than Config.Timeout fails; the wire then goes on with the
// next one.
//
// Set and Clear change what happens to messages that arrive afterwards. Messages already
// held keep their schedule and are still delivered after a Clear (a heal does not destroy
// what is already on the wire; a stale message arriving after the heal is a fault raft
// must tolerate anyway). Close drops what is still held and cancels deliveries in flight.
//
// The random draws are seeded (Config.Seed), but the order in which concurrent requests
// draw depends on the scheduler: a seed makes a run's faults reproducible in distribution,
// not message by message.
package linkproxy
