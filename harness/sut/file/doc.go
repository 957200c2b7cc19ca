// Package file is the target for any system described by a target file (YAML): how to
// start its node i (an argv template, env, config files), its ports and which one peers
// use, how to tell that a node is ready, the protocol the workloads' clients speak to
// it (http: faultline's HTTP/JSON KV protocol; etcd: the etcd v3 API; exec: a JSON-lines
// shim in any language), and optional hooks for the nemesis (leader, clock,
// membership). docs/target-file.md is the format's reference and walk-through;
// docs/protocol.md the http and exec protocols' contracts.
//
// Load reads a file strictly and checks it whole before anything runs: an unknown
// field, a missing section, a port name that names no port, a template that does not
// parse or does not render for a sample cluster, a program that is not there are all an
// *Error on one line. New makes the target of a loaded file for a run's nodes.
//
// At run time the target renders node i's command at each start (its current ID, the
// peers' addresses as sut.Env gives them, so the link proxy works for any TCP
// protocol). What can go wrong then on the harness's side is reported by Failed and
// Failure: an exec shim that dies or answers garbage, or a cluster not ready within
// ready.timeout, fails the target for good, and the harness stops the run.
package file
