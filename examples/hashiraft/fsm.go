package main

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// command is one raft log entry: put, cas (From → Value) or append.
type command struct {
	Op    string `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value"`
	From  string `json:"from,omitempty"`
}

// errMismatch is the result of a cas whose From was not the value (nothing changed).
var errMismatch = errors.New("mismatch")

// fsm is the replicated state: registers and lists.
type fsm struct {
	mu    sync.Mutex
	regs  map[string]string
	lists map[string][]string
}

func newFSM() *fsm { return &fsm{regs: map[string]string{}, lists: map[string][]string{}} }

// Apply implements raft.FSM: it returns nil, or errMismatch for a cas that did not match.
func (f *fsm) Apply(l *raft.Log) any {
	var c command
	if err := json.Unmarshal(l.Data, &c); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch c.Op {
	case "put":
		f.regs[c.Key] = c.Value
	case "cas":
		if v, ok := f.regs[c.Key]; !ok || v != c.From {
			return errMismatch
		}
		f.regs[c.Key] = c.Value
	case "append":
		f.lists[c.Key] = append(f.lists[c.Key], c.Value)
	}
	return nil
}

func (f *fsm) get(key string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.regs[key]
	return v, ok
}

func (f *fsm) list(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.lists[key]...)
}

// state is what a snapshot holds.
type state struct {
	Regs  map[string]string   `json:"regs"`
	Lists map[string][]string `json:"lists"`
}

// Snapshot implements raft.FSM.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := state{Regs: map[string]string{}, Lists: map[string][]string{}}
	for k, v := range f.regs {
		s.Regs[k] = v
	}
	for k, v := range f.lists {
		s.Lists[k] = slices.Clone(v)
	}
	return s, nil
}

// Restore implements raft.FSM.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var s state
	if err := json.NewDecoder(rc).Decode(&s); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs, f.lists = s.Regs, s.Lists
	return nil
}

// Persist implements raft.FSMSnapshot.
func (s state) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s state) Release() {}
