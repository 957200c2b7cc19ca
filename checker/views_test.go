package checker

import (
	"testing"

	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
)

func TestViews(t *testing.T) {
	events := []history.Event{
		{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: history.S1("a"), Time: 1, Node: "n1"},
		nem(2, history.Invoke, "kill", history.Value{}),
		{Process: 1, Type: history.Invoke, F: "read", Key: "k", Time: 3},
		{Process: 0, Type: history.OK, F: "write", Key: "k", Value: history.S1("a"), Time: 4, Node: "n1"},
		{Process: history.NemesisProcess, Type: history.OK, F: "kill", Node: "n2", Time: 5},
		nem(6, history.Invoke, "start", history.Value{}), nem(7, history.OK, "start", history.Value{}),
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	assert.Equal(t, []Operation{
		{Process: 0, F: "write", Key: "k", Status: history.OK, In: history.S1("a"), Out: history.S1("a"), Call: 1, Done: 4, Invoke: 0, Complete: 3, Node: "n1"},
		{Process: 1, F: "read", Key: "k", Status: history.Info, Call: 3, Done: -1, Invoke: 2, Complete: -1},
	}, Operations(events), "in invoke order; a read never completed is indeterminate")
	assert.Equal(t, []FaultWindow{{Fault: "kill", Nodes: "n2", Start: 2, End: 7}}, FaultWindows(events))
}
