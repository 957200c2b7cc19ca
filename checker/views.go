package checker

import (
	"slices"

	"github.com/faultline/faultline/history"
)

// Operation is one client operation as Check pairs it (an invoke and its completion on
// the same process), for views of a history such as reports and plots. Views that use
// it count and time exactly the operations the checker judged.
type Operation struct {
	Process int
	F, Key  string
	// Status is how it ended: ok, fail, or info (indeterminate), also for an invoke
	// that never completed or whose completion could not be paired.
	Status history.Type
	// In is the invoke's value, Out the completion's.
	In, Out history.Value
	// Call is the invoke's time; Done the completion's, or -1 when there is none.
	Call, Done int64
	// Invoke and Complete are the events' indexes (Complete -1 when there is none).
	Invoke, Complete int64
	Node, Error      string
}

// Operations returns the client operations of a history in invoke order.
func Operations(events []history.Event) []Operation {
	return slices.Collect(Pair(events).Operations)
}

// view is the operation as Operation shows it.
func (o *op) view() Operation {
	return Operation{Process: o.process, F: o.f, Key: o.key, Status: o.status, In: o.in, Out: o.out,
		Call: o.call, Done: o.done, Invoke: o.invIdx, Complete: o.retIdx, Node: o.node, Error: o.err}
}

// FaultWindow is one fault in force, as the checker's explanations and availability
// figures see it.
type FaultWindow struct {
	// Fault is the f of its start: start-partition, kill, pause, clock-bump, … (or
	// Jepsen's start).
	Fault string
	// Value is what the nemesis said it did (e.g. a partition's shape and sides), and
	// Nodes the nodes it touched, comma-separated; either may be "".
	Value, Nodes string
	// Start is the time of its start's invoke, End of its heal's completion (the last
	// nemesis event for a fault never healed).
	Start, End int64
}

// FaultWindows returns the faults of a history's nemesis events, in order, by the
// rules of the checker: each start paired with its heal, a start that failed dropped.
func FaultWindows(events []history.Event) []FaultWindow {
	var nem []history.Event
	for _, e := range events {
		if e.IsNemesis() {
			nem = append(nem, e)
		}
	}
	return faultWindowsOf(nem)
}

// FaultWindows returns the history's faults (see the function FaultWindows).
func (h *History) FaultWindows() []FaultWindow { return faultWindowsOf(h.p.nemesis) }

func faultWindowsOf(nem []history.Event) []FaultWindow {
	ws := faultWindows(nem)
	out := make([]FaultWindow, len(ws))
	for i, w := range ws {
		out[i] = FaultWindow{Fault: w.fault, Value: w.value, Nodes: w.nodes, Start: w.start, End: w.end}
	}
	return out
}
