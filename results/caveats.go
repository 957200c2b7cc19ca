package results

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/history"
)

// Caveats returns what a new check of a run directory's history must keep from the run:
// the reasons the run itself gave for its verdict not being valid (interrupted,
// run_error, in the results.json it wrote), and that the history is partial when the run
// never reached its heal (the harness was killed, or interrupted early). A check of such
// a history must not come out valid: a re-check would otherwise overwrite the run's
// honest unknown with the valid verdict of a prefix. dir not a run directory (no
// test.json): none.
func Caveats(dir string, events []history.Event) []checker.Reason {
	if _, err := os.Stat(filepath.Join(dir, "test.json")); err != nil {
		return nil
	}
	var out []checker.Reason
	if b, err := os.ReadFile(filepath.Join(dir, ResultsFile)); err == nil {
		var prior struct {
			UnknownBecause []checker.Reason `json:"unknown_because"`
		}
		if json.Unmarshal(b, &prior) == nil {
			for _, r := range prior.UnknownBecause {
				if r.Code == checker.ReasonInterrupted || r.Code == checker.ReasonRunError {
					out = append(out, checker.Reason{Code: r.Code, Detail: r.Detail + " (the run's own results.json)"})
				}
			}
		}
	}
	healed := slices.ContainsFunc(events, func(e history.Event) bool { return e.IsNemesis() && e.F == history.HealAll })
	if !healed && !slices.ContainsFunc(out, func(r checker.Reason) bool { return r.Code == checker.ReasonInterrupted }) {
		out = append(out, checker.Reason{Code: checker.ReasonInterrupted,
			Detail: "the history is partial: the run stopped before it healed its faults and read every key (interrupted, or the harness was killed)"})
	}
	return out
}
