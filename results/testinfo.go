package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// TestFile is the name of the run's resolved spec in its directory.
const TestFile = "test.json"

// TestInfo is a run's test.json: what the run was asked and what it resolved, written
// once before any node starts and read by --replay, reports, faultline serve, check and
// campaigns. A test.json of an older faultline may lack fields: the zero value is "not
// said".
type TestInfo struct {
	Name  string    `json:"name"`
	RunID string    `json:"run_id"`
	Start time.Time `json:"start_time"`
	// Faultline is the version of the faultline that ran it.
	Faultline string `json:"faultline,omitempty"`
	Seed      *int64 `json:"seed"`
	// Runtime is the runtime the run had (what auto resolved to).
	Runtime  string `json:"runtime"`
	Workload string `json:"workload"`
	Nodes    int    `json:"nodes,omitempty"`
	// Faults are the --nemesis entries the run could inject, resolved ("all" spelt out);
	// Unavailable those it left out, and why.
	Faults      []string          `json:"nemesis_faults"`
	Unavailable map[string]string `json:"nemesis_unavailable,omitempty"`
	Target      TargetInfo        `json:"target"`
	// Replay is the command line that runs the test again.
	Replay string `json:"replay"`
	// Spec is the resolved spec, every key (the harness's Spec in its JSON form): what
	// --replay runs again.
	Spec json.RawMessage `json:"spec"`
}

// TargetInfo is what a run records of its target: enough to name it, to tell which
// release ran, and to run it again as it ran.
type TargetInfo struct {
	Name string `json:"name"`
	// Version is the release the cluster started on; Versions the upgrade path.
	Version  string   `json:"version,omitempty"`
	Versions []string `json:"versions,omitempty"`
	Binary   string   `json:"binary,omitempty"`
	// Unsafe names a setting known to break the system's guarantees.
	Unsafe   string `json:"unsafe,omitempty"`
	Protocol string `json:"protocol,omitempty"`
	// File is a target file's path, FileText its text as the run read it: a replay
	// runs the text, not the file as it may have been edited since.
	File     string `json:"file,omitempty"`
	FileText string `json:"file_text,omitempty"`
}

// WriteTestInfo writes dir/test.json.
func WriteTestInfo(dir string, info TestInfo) error { return WriteJSON(dir, TestFile, info) }

// ReadTestInfo reads dir/test.json. ok is false when there is none; a test.json that
// cannot be read or parsed is an error.
func ReadTestInfo(dir string) (info TestInfo, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, TestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return TestInfo{}, false, nil
	}
	if err != nil {
		return TestInfo{}, false, fmt.Errorf("read %s: %w", TestFile, err)
	}
	if err := json.Unmarshal(b, &info); err != nil {
		return TestInfo{}, false, fmt.Errorf("parse %s: %w", TestFile, err)
	}
	spec := info.SpecKeys()
	if info.Name == "" {
		info.Name, _ = spec["name"].(string)
	}
	if info.Workload == "" {
		info.Workload, _ = spec["workload"].(string)
	}
	if info.Target.Name == "" {
		info.Target.Name, _ = spec["target"].(string)
	}
	return info, true, nil
}

// SpecKeys returns the spec's keys and values, for a page that lists them all (nil
// when there is no spec).
func (t TestInfo) SpecKeys() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(t.Spec, &m)
	return m
}

// TargetLabel names the target and its version in a few words: "etcd v3.7.3",
// "etcd v3.6.16 → v3.7.3", "raftnode (unsafe stale-read)".
func (t TestInfo) TargetLabel() string {
	if t.Target.Name == "" {
		return ""
	}
	versions := slices.Clone(t.Target.Versions)
	if v := t.Target.Version; v != "" && !slices.Contains(versions, v) {
		versions = append([]string{v}, versions...)
	}
	s := t.Target.Name
	if len(versions) > 0 {
		s += " " + strings.Join(versions, " → ")
	}
	if u := t.Target.Unsafe; u != "" {
		s += " (unsafe " + u + ")"
	}
	return s
}

// SpecValue renders one value of the spec or the target's description for a page.
func specValue(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = specValue(x)
		}
		return strings.Join(parts, ", ")
	case float64:
		return fmt.Sprint(v)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
