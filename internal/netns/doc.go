// Package netns owns one run's network for the process runtime: a network namespace per
// node, each with its own address on a private /24, all joined by a bridge, reachable from
// the host. Faults are not its business (internal/netfilter filters packets inside the
// namespaces it makes); it only builds the network, runs commands inside it, and removes it.
//
// The shape of one run's network, for run id R with subnet 10.213.S.0/24:
//
//	host ── fl-R (10.213.S.1) ══veth══ uplink ─┐
//	                                           │ br0, inside the hub namespace "faultline-R"
//	"faultline-R-<node i>": eth0 (.10+i) ══veth══ v<i> ─┘
//
// The bridge lives in a namespace of its own (the hub), not on the host. Docker sets the
// host's FORWARD policy to DROP and turns on bridge netfilter, so frames crossing a host
// bridge that is not Docker's are dropped; the hub's own (empty) ruleset accepts them, so
// the run needs no host firewall rule, never touches Docker's, and cannot leak a rule when
// it crashes. The host sees one link per run (fl-R) and the namespaces.
//
// Every name the package makes is marked as faultline's: namespaces "faultline-R" and
// "faultline-R-<node>", the host link "fl-R". A live Network holds an flock on
// /run/faultline/netns-R.lock; CleanAll removes the networks whose lock nobody holds
// (runs that crashed or leaked) and leaves live runs alone.
package netns
