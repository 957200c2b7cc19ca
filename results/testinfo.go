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

// TestInfo is what reports and the run browser read of a run's test.json. Every field
// may be missing (a run of an older faultline, a directory made by hand): the zero
// value is "not said".
type TestInfo struct {
	Name     string
	RunID    string
	Runtime  string
	Workload string
	Seed     *int64
	Start    time.Time
	Replay   string
	// Faults are the fault kinds the nemesis could inject (nemesis_faults, else the
	// spec's nemesis list); Unavailable those it left out, and why.
	Faults      []string
	Unavailable map[string]string
	// Target is the target's own description: name, version, binary, unsafe mode, …
	Target map[string]any
	// Spec is the resolved spec as written, every key.
	Spec map[string]any
}

type testJSON struct {
	Spec        map[string]any    `json:"spec"`
	RunID       string            `json:"run_id"`
	Runtime     string            `json:"runtime"`
	Seed        *int64            `json:"seed"`
	Workload    string            `json:"workload"`
	Faults      []string          `json:"nemesis_faults"`
	Unavailable map[string]string `json:"nemesis_unavailable"`
	Start       string            `json:"start_time"`
	Target      map[string]any    `json:"target"`
	Replay      string            `json:"replay"`
}

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
	var t testJSON
	if err := json.Unmarshal(b, &t); err != nil {
		return TestInfo{}, false, fmt.Errorf("parse %s: %w", TestFile, err)
	}
	info = TestInfo{RunID: t.RunID, Runtime: t.Runtime, Workload: t.Workload, Seed: t.Seed, Replay: t.Replay,
		Faults: t.Faults, Unavailable: t.Unavailable, Target: t.Target, Spec: t.Spec}
	info.Name, _ = t.Spec["name"].(string)
	if info.Workload == "" {
		info.Workload, _ = t.Spec["workload"].(string)
	}
	if info.Runtime == "" {
		info.Runtime, _ = t.Spec["runtime"].(string)
	}
	if info.Faults == nil {
		if l, ok := t.Spec["nemesis"].([]any); ok {
			for _, f := range l {
				if s, ok := f.(string); ok {
					info.Faults = append(info.Faults, s)
				}
			}
		}
	}
	if info.Target == nil {
		if name, ok := t.Spec["target"].(string); ok {
			info.Target = map[string]any{"name": name}
		}
	}
	if ts, err := time.Parse(time.RFC3339Nano, t.Start); err == nil {
		info.Start = ts
	}
	return info, true, nil
}

// TargetLabel names the target and its version in a few words: "etcd v3.7.3",
// "etcd v3.6.16 → v3.7.3", "raftnode (unsafe stale-read)".
func (t TestInfo) TargetLabel() string {
	name, _ := t.Target["name"].(string)
	if name == "" {
		return ""
	}
	var versions []string
	if vs, ok := t.Target["versions"].([]any); ok {
		for _, v := range vs {
			if s, ok := v.(string); ok && s != "" {
				versions = append(versions, s)
			}
		}
	}
	if v, ok := t.Target["version"].(string); ok && v != "" && !slices.Contains(versions, v) {
		versions = append([]string{v}, versions...)
	}
	s := name
	if len(versions) > 0 {
		s += " " + strings.Join(versions, " → ")
	}
	if u, ok := t.Target["unsafe"].(string); ok && u != "" {
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
