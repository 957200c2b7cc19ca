// Package nemesis owns faultline's faults: each a small value that injects itself into a
// cluster and returns how to heal, partition shapes as pure functions from nodes to a
// grudge, and the schedule that runs faults one after another for a run.
//
// The schedule's loop, for as long as its context lives:
//
//  1. wait a random time around the interval;
//  2. pick a fault (seeded), record its start as an invoke event, inject it, and record
//     ok — or fail, and stop the schedule: a run never claims a fault it did not inject;
//  3. hold it for a random time around the interval;
//  4. heal it on a context of its own (healing must happen even when the run is being
//     cancelled), and record the end.
//
// Faults act through small capability interfaces (Killer, Pauser, Partitioner) that the
// harness's runtimes implement; a fault whose capability the runtime lacks is not
// Available, and the harness refuses to run a nemesis it cannot inject. nemesis never
// talks to clients.
package nemesis
