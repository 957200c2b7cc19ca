// Package node is raftnode, faultline's system under test: a replicated key-value store
// (registers with CAS, and append-only lists) on go.etcd.io/raft/v3, with a durable log,
// an HTTP/JSON API, a clock hook, and --unsafe modes that are deliberate, named bugs.
// It knows nothing of the harness that tests it. Its client is package node/client.
//
// # Storage
//
// The data dir holds two files. "wal" is an append-only log of CRC-framed records (raft
// entries and HardStates; see wal.go); "snap" is the latest snapshot (the KV state as
// JSON, with the membership), replaced atomically (temp file, fsync, rename, fsync of the
// directory). After a snapshot the WAL is rewritten the same way, keeping only the log
// tail. On open, a torn or CRC-bad final WAL record (a crash mid-append: never fsynced,
// so never acknowledged) is truncated; a bad record followed by a valid one is
// corruption and the node refuses to start. The WAL file is allocated ahead of its last
// record, in 1 MiB steps of zeros made durable, so that a record's fdatasync flushes only
// its data (as etcd preallocates its segments); the zeros after the last record read as a
// torn tail.
//
// # The Ready loop
//
// One goroutine (run, in ready.go) owns raft. Ticks come from the node clock; each Ready
// is handled in this order (but where a step says a part of it comes earlier), and
// Advance is called only after the last step:
//
//  1. Remember the leader (SoftState): requests arriving while none is known wait for
//     one, and fail definitely (never proposed) if none appears in time.
//  2. Persist: a snapshot from the leader is written first (snap file, then a WAL holding
//     only what follows it); then the Ready's entries and HardState are appended to the
//     WAL with one write and one fsync; then they are given to raft's MemoryStorage.
//     A HardState that only moves the commit index is not written on its own (it goes
//     with the next durable record): the commit index need not survive a crash, and an
//     fsync there would sit between committing a write and applying it.
//     No client is acknowledged before its entry is on this node's disk, and a follower
//     or candidate sends no message that speaks for its log or vote (a vote, an append's
//     acknowledgement) until the entries and HardState of this Ready are on disk; the
//     proposals and read indexes it forwards to the leader claim nothing and go at
//     once. The leader sends its messages before it writes (raft thesis §10.2.1, as
//     etcd does): its appends reach the followers while it fsyncs, and its own entries
//     commit only in a later Ready, after this one's write, so no entry is acknowledged
//     before a majority, the leader included, has it on disk.
//  3. Send the messages: each peer has a bounded queue and one sender goroutine that
//     POSTs batches to <peer_url>/raft, pipelined on one connection (the next batch
//     does not wait for the previous answer; the peer answers in order, so messages
//     arrive in the order sent), each answer due within one second; a full queue, an
//     answer not in time or a failed dial is reported to raft as unreachable (and a
//     snapshot's outcome, sent on its own, with ReportSnapshot).
//  4. Apply the committed entries in order: a normal entry is a JSON Command whose
//     random request id wakes the HTTP request that proposed it (if it came through this
//     node); a ConfChange is applied to raft and to the membership (and the transport).
//     Committed entries that were already on disk before this Ready are applied before
//     its write (their clients need not wait for the next fsync); those this Ready
//     writes (a single voter commits what it appends) only after it.
//  5. Hand each ReadState to the read that asked for it (ReadIndex): the read then waits
//     until the applied index reaches the read index and answers from the local state.
//     A read re-sent while unanswered gets a fresh request context each time: with a
//     reused one, delayed heartbeat acknowledgements of an earlier attempt can confirm a
//     retry at a deposed leader (etcd #20418; faultline's pause fault found it here too).
//  6. Every --snapshot-count applied entries, snapshot the KV, compact the in-memory log
//     (keeping up to 1000 entries for slow followers) and rewrite the WAL. Also right
//     after a member is added: a leader sends a new member its latest snapshot, and raft
//     ignores a snapshot whose configuration does not name the receiver.
//
// # Durability and definiteness
//
// A write is acknowledged only after its entry was committed (so a majority fsynced it)
// and applied here. A read is answered after a ReadIndex round confirmed leadership with
// a quorum and the local state caught up: reads are linearizable. Any node accepts any
// request: followers forward proposals to the leader inside raft (MsgProp) and ask it for
// read indexes (MsgReadIndex). An error is "definite" only when the operation was never
// handed to raft (no leader, node stopping, dropped proposal) or is a read; a proposal
// that timed out may still commit, so its error is indefinite.
//
// # Clock
//
// Node time is base + offset + rate·(monotonic elapsed). Raft ticks every 100 ms of node
// time (ElectionTick 10, HeartbeatTick 1, CheckQuorum and PreVote on), like a
// time.Ticker on that clock (Clock.Tick): missed ticks are dropped when time merely passes
// (a paused node gets one tick on resuming, so it trusts a lease it should have lost), a
// backward jump stalls ticks until node time catches up (a stalled leader stops
// heartbeating and never steps down by itself), a forward jump fires the ticks that fell
// due, up to 20 (a follower campaigns at once). PUT /clock changes offset and rate; offset
// 0 with rate 1 is a reset, which re-arms the ticker from true time.
//
// # Unsafe modes
//
// Each mode is a realistic bug, exposed by a specific fault; without one the node is
// meant to be linearizable and durable under partitions, kills, pauses, clock faults and
// membership changes.
//
//   - stale-read: reads answer from the local applied state at once, on any node, with no
//     ReadIndex. Exposed by partitions (a cut-off node serves old values) and by plain lag.
//   - lease-read: raft's ReadOnlyLeaseBased: the leader answers read indexes from its own
//     commit index while it believes its lease (CheckQuorum, counted in ticks) is valid.
//     Exposed by a partition and a clock fault at once (an isolated leader whose clock is
//     slowed or set back keeps its lease after the others elected a new leader and wrote;
//     alone, either fault lets it hear of the new term within a heartbeat), and, rarely,
//     by pauses (a resumed old leader serves reads before it hears of the new term).
//   - ack-before-commit: a put or append is acknowledged once its entry is in the log of
//     the node the client asked, before it commits (on the leader: at append; on a
//     follower: when the leader's append reaches it). CAS still waits for apply. Exposed
//     by partitions: an isolated old leader acknowledges writes that are later truncated.
//   - ack-before-fsync: on every node, entries and HardState go to a user-space buffer
//     flushed and fsynced in the background every 1.5 s; messages are sent and clients
//     acknowledged before that. Exposed by SIGKILL of a majority: acknowledged writes
//     are lost. A node whose log lost entries the others committed may hit raft's panic
//     on restart; it exits non-zero with a one-line reason.
//   - no-fsync: the WAL is written at once but never fsynced (etcd's --unsafe-no-fsync):
//     what a node acknowledged is in the kernel's page cache, which a SIGKILL does not
//     lose. Exposed only by a power loss (faultline's power-loss fault): acknowledged
//     writes are lost.
package node
