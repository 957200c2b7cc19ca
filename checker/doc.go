// Package checker judges a history: pure functions from []history.Event to a Result,
// with three-valued verdicts in the porcupine style (valid, invalid, unknown). It opens
// no files; the views of a violation are rendered to writers it is given.
//
// The one loop inside Check:
//
//  1. pair each invoke with its completion on the same process (pairOps); a fail is
//     dropped (it never took effect), an info or an invoke never completed is kept with
//     an open end (it may take effect at any time after its invoke, or never);
//  2. by workload, run the checkers: linearizability with porcupine (the register model
//     for register histories, the list model for append histories), the set checker,
//     the append checker, and the stats, which never decide a verdict;
//  3. compose their verdicts: invalid beats unknown beats valid; then weigh the
//     evidence. A history without an acknowledged update and an acknowledged read
//     (Options.MinEvidence of each), a key with updates and no acknowledged read, or an
//     operation the checker could not interpret (a completion without an invoke, a
//     value of the wrong shape, an f the workload has no model for, …) make a valid
//     verdict unknown — never an invalid one — and Result.UnknownBecause says why, with
//     a machine-readable code. No evidence is never a pass.
//
// Linearizability is checked one key at a time (P-compositionality), a few keys at once,
// under one time budget: a key not decided in time is unknown, never valid. Before
// checking, indeterminate operations that cannot matter are dropped, which is sound and
// keeps porcupine's search small: an info read, and an info write (or cas, or append)
// whose value no read ever saw. Only the keys that failed are checked again verbosely,
// to explain the smallest failing piece in words and to draw porcupine's visualization.
package checker
