// Package harness runs one faultline test from spec to verdict, and is the only package
// that imports all the others. It owns the plan, the run's lifecycle and the cleanup;
// the runtimes nodes run in are harness/runtime's sub-packages, the targets are plug-ins
// of harness/sut (harness/sut/builtin links the shipped ones); fault logic lives in
// nemesis, check logic in checker.
//
// # The plan (NewPlan, in plan.go)
//
// Before anything exists — no directory, no build, no process — the spec is resolved
// (ParseTestArgs, Spec.Resolve: every flag and key, the target's section), the runtime
// chosen (auto: the registered runtime of highest rank that can run here) and its
// abilities read, the target's declared capabilities joined to them, and every
// --nemesis entry resolved to the variants this cluster can take (nemesis.Choose). A
// bad flag or key, a fault the cluster cannot take, a workload the target's clients do
// not support: a *UsageError, exit 4, one line, nothing written. --dry-run prints it.
//
// # The run (RunPlan, in run.go)
//
//  1. Prepare the target (etcd: build its releases, once, cached); still nothing of the
//     run exists, and a release that does not exist is a usage error.
//  2. Open the run directory: test.json (results.TestInfo: the plan), faultline.log,
//     and history.jsonl, which the recorder appends to (and fsyncs in batches) for the
//     whole run, so that a harness that crashes still leaves a checkable prefix.
//  3. Make the runtime and the target, and the cluster the nemesis acts on: its powers
//     (nemesis.Powers) are the runtime's part (kills, pauses, partitions over the nodes'
//     namespaces, the link proxy) and the target's own capabilities.
//  4. Prepare the network, start the link proxy when packet faults are planned, launch
//     every node, wait until the cluster serves.
//  5. Run the workload and the nemesis schedule together for the time limit.
//  6. Heal everything (HealAll: partitions, packet faults, pauses, killed or crashed
//     nodes, removed members, clocks), give the cluster its recovery window, read every
//     key once more.
//  7. Tear down on a context of its own: stop the nodes, remove namespaces, containers,
//     networks; then check the history, write results.json (and the linearizability
//     view of a violation), print the summary; the exit code is the verdict.
//
// Every step after the runtime is made ends in the teardown, also when the run is
// interrupted (the context ends: SIGINT, SIGTERM) or the harness panics. A run that was
// cut short is never valid: its verdict is at best unknown. The whole lifecycle is
// tested in milliseconds on the in-memory runtime and the simulated target
// (lifecycle_test.go), in synthetic time.
//
// # Runtimes and targets
//
// A runtime.Runtime runs programs: process (child processes, each in a network
// namespace of its own on a bridge in a hub namespace; see internal/netns), docker
// (FROM-scratch containers on a labelled bridge network), memory (state in this process,
// for tests). Each declares its runtime.Abilities before it starts anything, and none
// knows any target. A sut.Target knows one system. The cluster type joins a runtime and
// a target into the powers the nemesis uses, and remembers what is broken so that
// HealAll can mend all of it; partitions are implemented once here (partition.go), over
// a runtime's namespaces, its own filter, or its way of isolating nodes.
//
// # Cleanup
//
// Everything a run makes carries its run id (namespace and link names, container and
// network labels, node processes' environment) and the pid of its harness, so Clean
// (faultline clean) can remove what a dead run left without touching a live one.
package harness
