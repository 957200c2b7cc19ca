// Package netfilter injects network faults inside one network namespace, given by its
// path (a process-runtime node's /run/netns/NAME, or a container's /proc/PID/ns/net), with
// nftables rules installed from the host through `nsenter --net=PATH nft -f -`. The
// node's own image needs no tools and no NET_ADMIN.
//
// All its rules live in one table, inet faultline, in two pairs of base chains hooked at
// the raw priority (before conntrack, so a drop applies to established connections too;
// there is deliberately no rule accepting ESTABLISHED traffic):
//
//	partition_in / partition_out   Apply: drop everything from / to the grudge's peers
//	loss_in / loss_out             Loss: drop a random share of packets from / to peers
//
// Each call replaces its own pair of chains in a single nft transaction (the table and
// chains are added if missing, flushed, and refilled atomically), so a partition and a
// loss compose, and a half-applied fault is never visible. Clear deletes the table.
//
// A one-way drop still stalls TCP both ways (the ACKs are lost): a true asymmetric
// partition needs the message level, not packet filters. Partition shapes (which node
// drops whom) are the nemesis's business, not this package's.
package netfilter
