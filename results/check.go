package results

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/faultline/faultline/checker"
)

// Names of the files WriteCheck writes in a run directory.
const (
	ResultsFile       = "results.json"
	VisualizationFile = "linearizability.html"
)

// WriteCheck writes a check's results into dir: results.json always, and
// linearizability.html (porcupine's view, annotated with the nemesis's faults) when
// the result has a violation to draw. A stale linearizability.html from an earlier
// check of the same history is removed.
func WriteCheck(dir string, r checker.Result) error {
	if err := WriteJSON(dir, ResultsFile, r); err != nil {
		return err
	}
	path := filepath.Join(dir, VisualizationFile)
	if !r.CanVisualize() {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("remove stale %s: %w", VisualizationFile, err)
		}
		return nil
	}
	var b bytes.Buffer
	if err := r.Visualize(&b); err != nil {
		return fmt.Errorf("render %s: %w", VisualizationFile, err)
	}
	return writeAtomic(dir, VisualizationFile, b.Bytes())
}
