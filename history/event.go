package history

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Type is the kind of an event: an invocation or one of the three completions.
type Type string

// Event types, as Jepsen names them.
const (
	Invoke Type = "invoke"
	OK     Type = "ok"
	Fail   Type = "fail"
	Info   Type = "info"
)

// NemesisProcess is the process of every nemesis event. It is encoded as the JSON
// string "nemesis"; client processes are non-negative integers.
const NemesisProcess = -1

// Event is one line of a history.
type Event struct {
	// Index is the event's position in the history: 0, 1, 2, … in recording order.
	Index int64
	// Time is nanoseconds since the run's base time (monotonic).
	Time int64
	// Process is the client's id, or NemesisProcess.
	Process int
	Type    Type
	// F is the operation: read, write, cas, add, append, … for clients;
	// start-partition, stop-partition, kill, start, pause, resume, … for the nemesis.
	F   string
	Key string
	// Value is the argument of an invoke and the argument or result of a completion:
	// a read's ok carries what it read (None for a missing key), a cas carries
	// [from, to], a list read carries the list.
	Value Value
	// Node names the node the client talked to, or the nodes a fault touched.
	Node  string
	Error string
	// Rev, on an ok completion, is the store's revision the answer was made at, where
	// the target's client reports one (etcd's response header: for a write, the
	// revision it made); 0: none. The revision check (checker.RevisionResult) holds
	// them to real time across every key.
	Rev int64
}

// The F of clients' operations: one vocabulary for the workloads that issue them and
// the checkers that read them.
const (
	OpRead   = "read"   // a key's value (register), or its list or set
	OpWrite  = "write"  // a register's new value
	OpCAS    = "cas"    // compare and set: Value [from, to]
	OpAppend = "append" // append a value to a key's list
	OpAdd    = "add"    // add an element to a key's set

	// The lease workload's: each of its keys is attached to a lease of its own.
	OpGrant     = "grant"     // grant a lease: invoke Value the TTL asked, in seconds; ok Value [lease, TTL granted]
	OpPut       = "put"       // put a key attached to a lease: Value [value, lease]
	OpKeepAlive = "keepalive" // renew a lease: invoke Value the lease; ok Value [lease, TTL]
	OpRevoke    = "revoke"    // revoke a lease (deleting its keys): Value the lease

	// OpTxn is the txn workload's: a transaction of micro-operations (Value a Txn).
	OpTxn = "txn"

	// The keyspace operations, as Kubernetes drives etcd: every write is conditional
	// on the key's mod revision, every answer carries revisions (decimal strings).
	// A write's ok Value is the revision it made; its fail (Error Conflict) Value is
	// the key's mod revision the server found ("0": absent).
	OpCreate  = "create"  // Key; invoke Value the value; written only if the key is absent
	OpUpdate  = "update"  // Key; invoke Value [value, expected mod revision]
	OpDelete  = "delete"  // Key; invoke Value the expected mod revision
	OpGet     = "get"     // Key; ok Value [header revision, mod revision, value], or [header revision, "0"] when absent
	OpList    = "list"    // Key the prefix; invoke Value [revision ("0": the latest), start key, limit ("0": none)]; ok Value [header revision, more ("0"/"1"), then key, mod revision, value for each key]
	OpCompact = "compact" // invoke Value the revision; fail (Error Compacted) when at or below the one compacted
	// OpWatch watches a prefix (Key) from a revision (invoke Value) for a while; its
	// completion's Value is every event received, five strings each: revision, type
	// (WatchPut, WatchDelete or WatchProgress), key, value, the previous value ("" when
	// none, and for a progress notification's key and values). A watch the server
	// cancelled because its revision was compacted fails with Error Compacted, its Value
	// the events received before and, last, the cancel (WatchCompacted) at the
	// compacted revision the server gave, when it gave one.
	OpWatch = "watch"
)

// The nemesis's own compactions of a revisioned store (the maintenance fault; a
// failpoint reached by compacting), recorded as nemesis events whose Value is the
// revision: NemesisCompact once the compaction was acknowledged, NemesisCompactAsked
// when it was asked but not acknowledged (it may have happened). The keyspace check
// takes them as compactions asked at the event's time.
const (
	NemesisCompact      = "compact"
	NemesisCompactAsked = "compact-asked"
)

// The types of a watch's events.
const (
	WatchPut      = "put"
	WatchDelete   = "delete"
	WatchProgress = "progress" // a progress notification: every event up to its revision was sent
	// WatchCompacted is a watch's cancel for compaction, last of its events: the
	// server's compact revision, below which the watch could not go on.
	WatchCompacted = "compacted"
)

// Conflict is the Error of a conditional keyspace write whose condition did not hold
// (the key's mod revision was not the one expected): a definite answer.
const Conflict = "conflict"

// Compacted is the Error of a keyspace read at, or a compaction to, a revision already
// compacted away: a definite answer.
const Compacted = "compacted"

// LeaseNotFound is the Error of a lease operation the server answered with "no such
// lease" (expired or revoked): a definite answer, and a statement about the lease.
const LeaseNotFound = "lease not found"

// HealAll is the F of the nemesis info event a run records once every fault is healed,
// before its final reads: a run's history without one is partial (the run was cut
// short before its end).
const HealAll = "heal-all"

// NemesisStart is the F of the nemesis info event a run records when its fault
// schedule starts: the offsets of a schedule's faults are planned from it.
const NemesisStart = "nemesis-start"

// LeaderChange is the F of the nemesis info event a run records when it sees another
// node lead (Node): an observation, not a fault.
const LeaderChange = "leader"

// IsMarker reports whether f is one of the nemesis info events a run records about
// itself (NemesisStart, HealAll, LeaderChange): marks on its timeline, never a fault's
// start or end.
func IsMarker(f string) bool {
	return f == NemesisStart || f == HealAll || f == LeaderChange
}

// Mismatch is the Error of a cas that failed because the key held another value: a
// definite, normal answer of a working system (not unavailability).
const Mismatch = "mismatch"

// IsNemesis reports whether the event was recorded by the nemesis.
func (e Event) IsNemesis() bool { return e.Process == NemesisProcess }

// IsCompletion reports whether the event ends an operation (ok, fail or info).
func (e Event) IsCompletion() bool { return e.Type == OK || e.Type == Fail || e.Type == Info }

type wireEvent struct {
	Index   int64           `json:"index"`
	Time    int64           `json:"time"`
	Process json.RawMessage `json:"process"`
	Type    Type            `json:"type"`
	F       string          `json:"f"`
	Key     string          `json:"key,omitempty"`
	Value   Value           `json:"value"`
	Node    string          `json:"node,omitempty"`
	Error   string          `json:"error,omitempty"`
	Rev     int64           `json:"rev,omitempty"`
}

var nemesisJSON = json.RawMessage(`"nemesis"`)

// MarshalJSON encodes the event as one JSONL object (see docs/design.md).
func (e Event) MarshalJSON() ([]byte, error) {
	w := wireEvent{Index: e.Index, Time: e.Time, Type: e.Type, F: e.F, Key: e.Key,
		Value: e.Value, Node: e.Node, Error: e.Error, Rev: e.Rev}
	if e.Process == NemesisProcess {
		w.Process = nemesisJSON
	} else {
		w.Process = json.RawMessage(strconv.Itoa(e.Process))
	}
	return json.Marshal(w)
}

// AppendJSON appends e's JSONL encoding to b: byte for byte what MarshalJSON gives,
// without its reflection (a run encodes two events per operation, and json.Marshal was
// most of what recording cost a client). A transaction's value, and a string that
// needs escaping, are left to encoding/json.
func (e Event) AppendJSON(b []byte) ([]byte, error) {
	if e.Value.Kind == Txn {
		return appendMarshal(b, e)
	}
	var err error
	str := func(s string) {
		if err == nil {
			b, err = appendJSONString(b, s)
		}
	}
	b = append(b, `{"index":`...)
	b = strconv.AppendInt(b, e.Index, 10)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	b = append(b, `,"process":`...)
	if e.Process == NemesisProcess {
		b = append(b, nemesisJSON...)
	} else {
		b = strconv.AppendInt(b, int64(e.Process), 10)
	}
	b = append(b, `,"type":`...)
	str(string(e.Type))
	b = append(b, `,"f":`...)
	str(e.F)
	if e.Key != "" {
		b = append(b, `,"key":`...)
		str(e.Key)
	}
	b = append(b, `,"value":`...)
	switch e.Value.Kind {
	case Str:
		str(e.Value.S)
	case List:
		b = append(b, '[')
		for i, s := range e.Value.L {
			if i > 0 {
				b = append(b, ',')
			}
			str(s)
		}
		b = append(b, ']')
	default:
		b = append(b, "null"...)
	}
	if e.Node != "" {
		b = append(b, `,"node":`...)
		str(e.Node)
	}
	if e.Error != "" {
		b = append(b, `,"error":`...)
		str(e.Error)
	}
	if e.Rev != 0 {
		b = append(b, `,"rev":`...)
		b = strconv.AppendInt(b, e.Rev, 10)
	}
	return append(b, '}'), err
}

// appendJSONString appends s as encoding/json writes it: as it is, quoted, when it is
// printable ASCII that JSON and HTML leave alone; else by encoding/json itself.
func appendJSONString(b []byte, s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return appendMarshal(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), nil
}

func appendMarshal(b []byte, v any) ([]byte, error) {
	j, err := json.Marshal(v)
	return append(b, j...), err
}

// UnmarshalJSON decodes an event, checking its type and process.
func (e *Event) UnmarshalJSON(b []byte) error {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	switch w.Type {
	case Invoke, OK, Fail, Info:
	default:
		return fmt.Errorf("unknown event type %q", w.Type)
	}
	p := NemesisProcess
	if !bytes.Equal(bytes.TrimSpace(w.Process), nemesisJSON) {
		if err := json.Unmarshal(w.Process, &p); err != nil || p < 0 {
			return fmt.Errorf("process %s is neither \"nemesis\" nor a non-negative integer", w.Process)
		}
	}
	if w.Rev < 0 {
		return fmt.Errorf("rev %d is negative", w.Rev)
	}
	*e = Event{Index: w.Index, Time: w.Time, Process: p, Type: w.Type, F: w.F, Key: w.Key,
		Value: w.Value, Node: w.Node, Error: w.Error, Rev: w.Rev}
	return nil
}
