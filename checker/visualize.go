package checker

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
	"github.com/faultline/faultline/history"
)

// ErrNoVisualization is returned by Visualize for a result without a violation to draw.
var ErrNoVisualization = errors.New("no linearizability violation to visualize")

// CanVisualize reports whether the result has a linearizability violation to draw.
func (r Result) CanVisualize() bool { return r.viz != nil }

// Visualize writes porcupine's HTML view of the keys that failed, with the nemesis's
// faults drawn as annotations, to w.
func (r Result) Visualize(w io.Writer) error {
	if r.viz == nil {
		return ErrNoVisualization
	}
	return porcupine.Visualize(r.viz.model, r.viz.info, w)
}

// annotations turns the nemesis's events into porcupine annotations: one per fault,
// from the invoke of its start to the completion of its end.
func annotations(nemesis []history.Event) []porcupine.Annotation {
	var out []porcupine.Annotation
	for _, w := range faultWindows(nemesis) {
		desc := w.fault
		if w.value != "" {
			desc += " " + w.value
		}
		out = append(out, porcupine.Annotation{Tag: "nemesis", Start: w.start, End: w.end,
			Description: desc, Details: fmt.Sprintf("%s at %s–%s on %s", w.fault, secs(w.start), secs(w.end), orDash(w.nodes)),
			BackgroundColor: "#f6d5d5"})
	}
	for _, e := range nemesis { // leader changes: a point, on a lane of their own
		if e.F == history.LeaderChange && e.Node != "" {
			out = append(out, porcupine.Annotation{Tag: "leader", Start: e.Time, End: e.Time,
				Description: e.Node + " leads", Details: fmt.Sprintf("%s leads from %s", e.Node, secs(e.Time)),
				BackgroundColor: "#d5e3f6"})
		}
	}
	return out
}

// window is one fault in force, from its injection to its heal.
type window struct {
	fault, value, nodes string
	start, end          int64
}

// String renders the window for explanations: `start-partition [halves n1,n2 | n3] on
// n1,n2,n3 (0.012s–0.061s)`.
func (w window) String() string {
	s := w.fault
	if w.value != "" {
		s += " " + w.value
	}
	if w.nodes != "" {
		s += " on " + w.nodes
	}
	return fmt.Sprintf("%s (%s–%s)", s, secs(w.start), secs(w.end))
}

// endsFault reports whether a Jepsen nemesis f heals a fault (stop-partition, start
// after a kill, resume, …): Jepsen records both halves of a fault as :info, so only
// their names tell them apart.
func endsFault(f string) bool {
	switch f {
	case "start", "resume", "clock-reset", "member-add", "heal":
		return true
	}
	return strings.HasPrefix(f, "stop") || strings.HasPrefix(f, "heal")
}

// faultWindows pairs the nemesis's starts and ends. faultline's schedule injects one
// fault at a time and records each half as an invoke and its completion: the fault's
// invoke, its ok (in force) or fail (never injected), notes (info), then its heal's
// invoke and completion. So a window opens at an invoke and closes at the completion of
// the next invoke, whatever the events are named: a kind added tomorrow needs nothing
// here. Jepsen's nemesis records :info for both halves (:start then :stop, each twice),
// paired by name (endsFault). A fault never healed lasts until the nemesis's last event.
func faultWindows(nemesis []history.Event) []window {
	var (
		out     []window
		open    *window
		healing string // the f of the open fault's heal, once invoked
		last    int64
	)
	jepsen := !slices.ContainsFunc(nemesis, func(e history.Event) bool { return e.Type == history.Invoke })
	for _, e := range nemesis {
		last = max(last, e.Time)
		if history.IsMarker(e.F) {
			continue // the run's own marks (its schedule's start, a leader seen): no fault
		}
		if jepsen {
			open = jepsenWindow(e, open, &out)
			continue
		}
		switch {
		case e.Type == history.Invoke && open == nil:
			open, healing = &window{fault: e.F, start: e.Time, end: -1}, ""
		case e.Type == history.Invoke:
			healing = e.F
		case e.Type == history.Info || open == nil:
			// a note of a long fault
		case healing != "" && e.F == healing:
			open.end = e.Time
			out = append(out, *open)
			open = nil
		case healing == "" && e.F == open.fault && e.Type == history.Fail:
			open = nil // never injected
		case healing == "" && e.F == open.fault:
			if !e.Value.IsNone() {
				open.value = e.Value.String()
			}
			open.nodes = e.Node
		}
	}
	if open != nil {
		open.end = last
		out = append(out, *open)
	}
	return out
}

// jepsenWindow takes one event of a Jepsen nemesis (every half recorded as :info, the
// start twice, the end twice) and returns the window open after it, appending to out
// the window it closed.
func jepsenWindow(e history.Event, open *window, out *[]window) *window {
	switch {
	case open != nil && endsFault(e.F) && e.F != open.fault:
		open.end = e.Time
		*out = append(*out, *open)
		return nil
	case open == nil && !endsFault(e.F) || open == nil && e.F == "start":
		return &window{fault: e.F, start: e.Time, end: -1}
	case open != nil && e.F == open.fault:
		if !e.Value.IsNone() {
			open.value = e.Value.String()
		}
		open.nodes = e.Node
	}
	return open
}
