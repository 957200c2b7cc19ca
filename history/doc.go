// Package history is faultline's shared record of a run: one Event type for client
// operations and nemesis faults, and its codecs.
//
// A history is a sequence of events in the order they were recorded. Every client
// operation is an invoke event followed, on the same process, by exactly one completion:
// ok (it took effect, with its result), fail (it definitely did not and will not take
// effect), or info (indeterminate: it may take effect at any time after its invoke).
// A process whose operation ended in info is never reused. Nemesis events use the
// process NemesisProcess and come in start/end pairs named by F.
//
// Times are nanoseconds since the run's single base time and never go backwards.
//
// The package is a leaf: it imports nothing of faultline's, so every other package may
// import it.
package history
