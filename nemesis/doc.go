// Package nemesis owns faultline's faults: each a small value that injects itself into a
// cluster and returns how to heal, partition shapes as pure functions from nodes to a
// grudge, and the schedule that runs faults one after another for a run.
//
// The schedule's loop, for as long as its context lives:
//
//  1. take the next kind of the round (a seeded shuffle of the kinds asked for; a new one
//     when it is used up) and, for a kind with variants, one of them at random;
//  2. wait a quiet time (20-40% of the interval);
//  3. record the fault's start as an invoke event, inject it, and record ok — or fail,
//     and stop the schedule: a run never claims a fault it did not inject;
//  4. hold it (50-90% of the interval);
//  5. heal it on a context of its own (healing must happen even when the run is being
//     cancelled), and record the end.
//
// Faults act through small capability interfaces (Killer, Pauser, Partitioner, Clocker,
// Packeter, Membership) that the harness implements over its runtimes and targets; a
// fault whose capability is missing is not Available, and the harness refuses to run a
// nemesis it cannot inject. nemesis never talks to clients.
package nemesis
