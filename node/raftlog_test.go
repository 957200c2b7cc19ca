package node

import (
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestRaftLoggerFatalCallsHook(t *testing.T) {
	var got string
	l := &raftLogger{log: slog.New(slog.NewTextHandler(io.Discard, nil)), onFatal: func(m string) { got = m }}
	assert.Panics(t, func() { l.Panicf("tocommit(%d) is out of range", 7) })
	assert.Equal(t, "raft: tocommit(7) is out of range", got)
}
