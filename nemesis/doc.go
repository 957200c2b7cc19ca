// Package nemesis owns faultline's faults: the registry of fault kinds (Def, one row a
// kind: its variants, the capabilities it needs, its history events, its heal, its
// colour), the capabilities clusters declare (Caps) and implement (Powers), partition
// shapes as pure functions from nodes to a grudge, and the schedule that runs faults one
// after another for a run.
//
// A run's --nemesis entries are resolved before anything starts (Choose): each names a
// kind ("kill"), a kind's variant ("kill:all"), or kinds held together
// ("partition:leader+clock:slow"); a kind the cluster cannot take, or a variant it
// cannot, is refused with the reason its runtime or target declared.
//
// The schedule's loop, for as long as its context lives:
//
//  1. take the next fault of the round (a seeded shuffle of the entries; a new one when
//     it is used up) and draw its turn: the variant of each kind (by weight, unless one
//     was named) and the seed of each kind's own random stream;
//  2. wait a quiet time (20-40% of the interval);
//  3. record the fault's start as an invoke event (its value: the variants), inject it,
//     and record ok — or fail, and stop the schedule: a run never claims a fault it did
//     not inject;
//  4. hold it (50-90% of the interval);
//  5. heal it on a context of its own (healing must happen even when the run is being
//     cancelled), and record the end.
//
// Adding a fault kind is a Def in a file of its own and its line in registry: the
// choice, the schedule, the history's events and the report all read the row. nemesis
// never talks to clients.
package nemesis
