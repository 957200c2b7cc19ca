package checker

import (
	"context"
	"fmt"
	"testing"

	"github.com/faultline/faultline/history"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func nem(t int64, typ history.Type, f string, v history.Value) history.Event {
	return history.Event{Time: t, Process: history.NemesisProcess, Type: typ, F: f, Value: v}
}

func TestFaultWindows(t *testing.T) {
	for name, tc := range map[string]struct {
		in   []history.Event
		want []window
	}{
		"faultline": {
			in: []history.Event{
				nem(1, history.Invoke, "kill", history.Value{}), nem(2, history.OK, "kill", history.S1("n2")),
				nem(5, history.Invoke, "start", history.Value{}), nem(6, history.OK, "start", history.Value{}),
				nem(7, history.Invoke, "pause", history.Value{}), nem(8, history.Fail, "pause", history.Value{}),
				nem(9, history.Invoke, "start-partition", history.Value{}), nem(10, history.OK, "start-partition", history.L("one", "n1")),
			},
			want: []window{{fault: "kill", value: `"n2"`, start: 1, end: 6}, {fault: "start-partition", value: "[one n1]", start: 9, end: 10}},
		},
		"jepsen": {
			in: []history.Event{
				nem(1, history.Info, "start", history.Value{}), nem(2, history.Info, "start", history.S1("cut")),
				nem(5, history.Info, "stop", history.Value{}), nem(6, history.Info, "stop", history.Value{}),
			},
			want: []window{{fault: "start", value: `"cut"`, start: 1, end: 5}},
		},
		"combined": { // a nemesis.Combo: one start named by its kinds, one end
			in: []history.Event{
				nem(1, history.Invoke, "partition+clock", history.Value{}),
				nem(2, history.OK, "partition+clock", history.L("start-partition", "leader", "n1|n2,n3", "clock-bump", "bump -5s")),
				nem(7, history.Invoke, "heal-partition+clock", history.Value{}), nem(8, history.OK, "heal-partition+clock", history.Value{}),
			},
			want: []window{{fault: "partition+clock", value: "[start-partition leader n1|n2,n3 clock-bump bump -5s]", start: 1, end: 8}},
		},
		"markers": { // a run's own info events are observations: no fault starts at them
			in: []history.Event{
				nem(1, history.Info, history.NemesisStart, history.Value{}),
				{Time: 2, Process: history.NemesisProcess, Type: history.Info, F: history.LeaderChange, Node: "n1"},
				nem(3, history.Invoke, "start-partition", history.Value{}), nem(4, history.OK, "start-partition", history.L("one", "n1")),
				nem(5, history.Invoke, "stop-partition", history.Value{}), nem(6, history.OK, "stop-partition", history.Value{}),
				nem(7, history.Info, history.HealAll, history.Value{}),
			},
			want: []window{{fault: "start-partition", value: "[one n1]", start: 3, end: 6}},
		},
		"any names": { // faultline's halves pair by their order, not their names: a kind the checker never heard of
			in: []history.Event{
				nem(1, history.Invoke, "power-loss", history.S1("all")), nem(2, history.OK, "power-loss", history.S1("n1,n2")),
				{Time: 3, Process: history.NemesisProcess, Type: history.Info, F: "drop-unsynced", Node: "n1"},
				nem(4, history.Invoke, "power-restore", history.Value{}), nem(5, history.OK, "power-restore", history.Value{}),
				nem(6, history.Invoke, "resume", history.Value{}), nem(7, history.OK, "resume", history.S1("x")),
				nem(8, history.Invoke, "stop", history.Value{}), nem(9, history.Fail, "stop", history.Value{}),
			},
			want: []window{{fault: "power-loss", value: `"n1,n2"`, start: 1, end: 5}, {fault: "resume", value: `"x"`, start: 6, end: 9}},
		},
		"none": {},
	} {
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, faultWindows(tc.in))
		})
	}
}

func TestStatsAvailabilityDuringFaults(t *testing.T) {
	events := []history.Event{
		nem(10, history.Invoke, "start-partition", history.Value{}), nem(11, history.OK, "start-partition", history.Value{}),
		{Time: 12, Process: 0, Type: history.Invoke, F: "read"}, {Time: 20, Process: 0, Type: history.Info, F: "read"},
		nem(30, history.Invoke, "stop-partition", history.Value{}), nem(31, history.OK, "stop-partition", history.Value{}),
		{Time: 40, Process: 1, Type: history.Invoke, F: "read"}, {Time: 40 + 2e6, Process: 1, Type: history.OK, F: "read"},
		{Time: 3e6, Process: 2, Type: history.Invoke, F: "write", Value: history.S1("a")},
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	st := computeStats(pairOps(events))
	assert.Equal(t, 0.5, st.Availability)
	assert.Equal(t, 0.0, st.AvailabilityDuringFaults)
	assert.Equal(t, 1.0, st.AvailabilityOutsideFaults)
	assert.Equal(t, 2.0, st.Latency.P50)
	assert.Equal(t, 1, st.Faults)
	assert.Equal(t, 1, st.Counts["write"][history.Info], "an invoke never completed is indeterminate")
}

func TestStatsAvailabilityCountsCASMismatchAsAnswered(t *testing.T) {
	events := []history.Event{
		{Time: 1, Process: 0, Type: history.Invoke, F: "cas", Key: "k", Value: history.L("a", "b")},
		{Time: 2, Process: 0, Type: history.Fail, F: "cas", Key: "k", Value: history.L("a", "b"), Error: history.Mismatch},
		{Time: 3, Process: 1, Type: history.Invoke, F: "cas", Key: "k", Value: history.L("a", "b")},
		{Time: 4, Process: 1, Type: history.Fail, F: "cas", Key: "k", Value: history.L("a", "b"), Error: "not leader"},
	}
	for i := range events {
		events[i].Index = int64(i)
	}
	st := computeStats(pairOps(events))
	assert.Equal(t, 0.5, st.Availability, "a cas that found another value was answered; a refused one was not")
	assert.Equal(t, 2, st.Counts["cas"][history.Fail])
}

func TestLeaderChangesAreNotFaultsButAnnotations(t *testing.T) {
	nem := []history.Event{
		{Process: history.NemesisProcess, Type: history.Info, F: history.LeaderChange, Node: "n2", Time: 5},
		{Process: history.NemesisProcess, Type: history.Invoke, F: "start-partition", Time: 10},
		{Process: history.NemesisProcess, Type: history.OK, F: "start-partition", Time: 11},
		{Process: history.NemesisProcess, Type: history.Info, F: history.LeaderChange, Node: "n3", Time: 15},
		{Process: history.NemesisProcess, Type: history.Invoke, F: "stop-partition", Time: 20},
		{Process: history.NemesisProcess, Type: history.OK, F: "stop-partition", Time: 21},
	}
	ws := faultWindows(nem)
	require.Len(t, ws, 1, "a leader change opens no fault window")
	assert.Equal(t, "start-partition", ws[0].fault)
	var leaders []string
	for _, a := range annotations(nem) {
		if a.Tag == "leader" {
			leaders = append(leaders, a.Description)
		}
	}
	assert.Equal(t, []string{"n2 leads", "n3 leads"}, leaders)
}

// A failing key too big for porcupine's view is explained but not drawn, and says so.
func TestAHugeFailingKeyIsExplainedNotDrawn(t *testing.T) {
	var evs []history.Event
	add := func(e history.Event) {
		e.Index, e.Time = int64(len(evs)), int64(len(evs))*1000
		evs = append(evs, e)
	}
	for i := range maxDrawnOps + 5 {
		v := history.S1(fmt.Sprint(i))
		add(history.Event{Process: 0, Type: history.Invoke, F: "write", Key: "k", Value: v})
		add(history.Event{Process: 0, Type: history.OK, F: "write", Key: "k", Value: v})
	}
	add(history.Event{Process: 1, Type: history.Invoke, F: "read", Key: "k"})
	add(history.Event{Process: 1, Type: history.OK, F: "read", Key: "k", Value: history.S1("3")})
	res := Check(context.Background(), evs, Options{Model: "register"})
	require.Equal(t, Invalid, res.Verdict)
	assert.False(t, res.CanVisualize(), "not drawn")
	require.NotEmpty(t, res.Linearizability.Failures)
	assert.Contains(t, res.Linearizability.Failures[0].Explanation, "not drawn")
}
