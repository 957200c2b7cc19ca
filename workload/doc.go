// Package workload owns what faultline's clients do: the operation mixes (register,
// set, append), the keys and their rotation, unique values, concurrency, rate and time
// limits, and the recording of every operation through a history.Recorder. It defines
// the Client interface that targets implement (in harness/) and knows nothing of
// targets or faults.
//
// Run starts Config.Concurrency workers. Each worker loops:
//
//  1. Wait for its turn under the shared rate limit; stop once the time limit has
//     passed or ctx has ended.
//  2. Open a client for its current process if it has none (Opener).
//  3. Draw the next operation from the shared generator, with the worker's own rand
//     seeded from Config.Seed, so that a worker's decisions (key slot, operation, the
//     recent value a cas expects) depend only on the seed. Values are unique per key;
//     register and append keys are retired after Config.OpsPerKey operations and a
//     fresh key takes the slot.
//  4. Record the invoke, then call the client under the op timeout, then record the
//     completion: ok; fail when the error is definite (IsDefinite, e.g. ErrMismatch);
//     info for any other error, a timeout, or ctx ending mid-call.
//  5. After an info, retire the process (Jepsen's rule: a process whose operation is
//     indeterminate is never reused): worker w continues as process w+Concurrency,
//     then w+2·Concurrency, and so on.
//
// Run returns once every worker has recorded the completion of its last operation.
// Progress holds live counters a renderer may poll and the keys touched, which
// FinalReads reads once more after the faults are healed.
//
// SimStore is a linearizable in-memory Client, with optional latency and lost replies,
// for tests of this package and of checkers.
package workload
