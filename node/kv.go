package node

import (
	"encoding/json"
	"fmt"
	"sort"
	"sync"

	"github.com/faultline/faultline/node/client"
)

// Op names a state-machine command.
type Op string

// The commands a proposal can carry.
const (
	OpPut    Op = "put"
	OpCAS    Op = "cas"
	OpAppend Op = "append"
)

// Command is the payload of one normal raft entry. ID matches the applied entry to the
// request that proposed it; it is unique per proposal (random per process, then counted).
type Command struct {
	ID    uint64 `json:"id"`
	Op    Op     `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

// Result is what applying a Command did. CASMismatch is set when a CAS found a value other
// than From (or no value): the command was applied as a no-op. Duplicate is set when the
// command's id was applied already: it was skipped.
type Result struct {
	CASMismatch bool
	Duplicate   bool
}

// DedupWindow is how many recent command ids the state machine remembers, so that a
// command delivered twice (a forwarded proposal whose message the network duplicated:
// raft appends it twice) takes effect once. A write applied twice could otherwise undo a
// later write. Duplicates arrive close together; the window covers seconds of traffic.
const DedupWindow = 10000

// Member is one raft member as the state machine knows it (from applied ConfChanges). It
// is the client package's wire type, so that what a node says and what a client reads
// cannot drift apart.
type Member = client.Member

// KV is the replicated state machine: registers, append-only lists, and the membership.
// It is safe for concurrent use: the Ready loop applies, HTTP handlers read.
type KV struct {
	mu      sync.RWMutex
	regs    map[string]string
	lists   map[string][]string
	members map[uint64]string
	recent  []uint64 // the last DedupWindow command ids applied, oldest first
	seen    map[uint64]bool
}

// kvSnapshot is the JSON form of a KV, the data of a raft snapshot. Recent is part of the
// state: every replica must skip the same duplicates, also one restored from a snapshot.
type kvSnapshot struct {
	Regs    map[string]string   `json:"regs"`
	Lists   map[string][]string `json:"lists"`
	Members []Member            `json:"members"`
	Recent  []uint64            `json:"recent,omitempty"`
}

// NewKV returns an empty state machine.
func NewKV() *KV {
	return &KV{regs: map[string]string{}, lists: map[string][]string{}, members: map[uint64]string{},
		seen: map[uint64]bool{}}
}

// Apply applies one command and says what it did. A command whose id (non-zero) was
// among the last DedupWindow applied is skipped.
func (kv *KV) Apply(c Command) Result {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	if c.ID != 0 {
		if kv.seen[c.ID] {
			return Result{Duplicate: true}
		}
		kv.remember(c.ID)
	}
	switch c.Op {
	case OpPut:
		kv.regs[c.Key] = c.Value
	case OpCAS:
		cur, ok := kv.regs[c.Key]
		if !ok || cur != c.From {
			return Result{CASMismatch: true}
		}
		kv.regs[c.Key] = c.Value
	case OpAppend:
		kv.lists[c.Key] = append(kv.lists[c.Key], c.Value)
	}
	return Result{}
}

// remember adds id to the window, forgetting the oldest beyond DedupWindow.
func (kv *KV) remember(id uint64) {
	kv.seen[id] = true
	kv.recent = append(kv.recent, id)
	if len(kv.recent) > DedupWindow {
		delete(kv.seen, kv.recent[0])
		kv.recent = kv.recent[1:]
	}
}

// Get returns the value of a register.
func (kv *KV) Get(key string) (string, bool) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	v, ok := kv.regs[key]
	return v, ok
}

// List returns a copy of a list (empty, not nil, for a missing key).
func (kv *KV) List(key string) []string {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return append([]string{}, kv.lists[key]...)
}

// SetMember records an added member; RemoveMember forgets one.
func (kv *KV) SetMember(id uint64, peerURL string) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.members[id] = peerURL
}

// RemoveMember forgets a member.
func (kv *KV) RemoveMember(id uint64) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	delete(kv.members, id)
}

// Members returns the members sorted by id.
func (kv *KV) Members() []Member {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	return kv.membersLocked()
}

func (kv *KV) membersLocked() []Member {
	out := make([]Member, 0, len(kv.members))
	for id, u := range kv.members {
		out = append(out, Member{ID: id, PeerURL: u})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Snapshot returns the state as JSON.
func (kv *KV) Snapshot() ([]byte, error) {
	kv.mu.RLock()
	defer kv.mu.RUnlock()
	b, err := json.Marshal(kvSnapshot{Regs: kv.regs, Lists: kv.lists, Members: kv.membersLocked(), Recent: kv.recent})
	if err != nil {
		return nil, fmt.Errorf("encode kv snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the state with a snapshot made by Snapshot. Empty data is the empty state.
func (kv *KV) Restore(data []byte) error {
	s := kvSnapshot{}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("decode kv snapshot: %w", err)
		}
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.regs, kv.lists, kv.members = s.Regs, s.Lists, map[uint64]string{}
	if kv.regs == nil {
		kv.regs = map[string]string{}
	}
	if kv.lists == nil {
		kv.lists = map[string][]string{}
	}
	for _, m := range s.Members {
		kv.members[m.ID] = m.PeerURL
	}
	kv.recent, kv.seen = nil, map[uint64]bool{}
	for _, id := range s.Recent {
		kv.remember(id)
	}
	return nil
}
