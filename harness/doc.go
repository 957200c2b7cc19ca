// Package harness runs one faultline test from spec to verdict, and is the only package
// that imports all the others. It owns the run's lifecycle and the cleanup; the runtimes
// nodes run in are harness/runtime's sub-packages, the targets harness/sut's; fault
// logic lives in nemesis, check logic in checker.
//
// # The run (Run, in run.go)
//
//  1. Resolve: the spec was validated by ParseTestArgs/Resolve before anything starts;
//     a bad flag or key is a *UsageError (exit 4).
//  2. Open the run directory: test.json, faultline.log, and history.jsonl, which the
//     recorder appends to (and fsyncs in batches) for the whole run, so that a harness
//     that crashes still leaves a checkable prefix.
//  3. Choose the runtime (docker or process; auto picks docker when a daemon answers)
//     and make the target (targets.go: raftnode, or etcd, whose binary may be built
//     first) and the cluster the nemesis acts on; refuse any fault kind the runtime or
//     target cannot take (faultsFor: a usage error, exit 4, naming the reason).
//  4. Prepare the network, start the link proxy when packet faults are asked for, launch
//     every node, wait until the cluster serves.
//  5. Run the workload and the nemesis schedule together for the time limit.
//  6. Heal everything (HealAll: partitions, packet faults, pauses, killed or crashed
//     nodes, removed members, clocks), give the cluster its recovery window, read every
//     key once more.
//  7. Tear down on a context of its own: stop the nodes, remove namespaces, containers,
//     networks; then check the history, write results.json (and the linearizability
//     view of a violation), print the summary; the exit code is the verdict.
//
// Every step after the runtime is prepared ends in the teardown, also when the run is
// interrupted (the context ends: SIGINT, SIGTERM) or the harness panics. A run that was
// cut short is never valid: its verdict is at best unknown.
//
// # Runtimes and targets
//
// A runtime.Runtime runs programs: process.ProcessRuntime (child processes, each in a
// network namespace of its own on a bridge in a hub namespace; see internal/netns) and
// docker.DockerRuntime (FROM-scratch containers on a labelled bridge network). Both give
// each node its own address and network namespace (runtime.NetworkRuntime), so one set
// of fault code serves both, and neither knows any target. A sut.Target knows one
// system: raftnode (faultline's own node: command line, HTTP client, clock and membership
// hooks) and etcd (real etcd 3.4–3.7, clientv3). The cluster type joins a runtime and a
// target into the capabilities the nemesis asks for (Killer, Pauser, Partitioner,
// Clocker, Packeter, Membership), says which of them this pair really has (Unable), and
// remembers what is broken so that HealAll can mend all of it.
//
// # Cleanup
//
// Everything a run makes carries its run id (namespace and link names, container and
// network labels, node processes' environment) and the pid of its harness, so Clean
// (faultline clean) can remove what a dead run left without touching a live one.
package harness
