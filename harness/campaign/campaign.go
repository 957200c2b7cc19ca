// Package campaign runs many tests as one: a matrix of specs or a list of named
// scenarios, each with several seeds and an expectation (valid, or invalid in at least a
// share of its runs), one after another or several at a time, optionally a
// deterministic shard of the whole. It writes the campaign directory (campaign.json,
// table.txt, junit.xml, and every run's directory under it) after every run, so a
// campaign cut short keeps what it found. The file contracts are package results'.
package campaign

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/checker"
	"github.com/faultline/faultline/harness"
	"github.com/faultline/faultline/results"
)

// Zoo is the bug zoo's campaign file (zoo.yaml): each of raftnode's deliberate bugs under
// the faults that expose it, expected caught, and the correct node under every fault,
// expected valid.
//
//go:embed zoo.yaml
var Zoo []byte

// DefaultMinDetection is the share of runs a scenario that expects invalid must be
// caught in when its file says nothing.
const DefaultMinDetection = 0.8

// Campaign is a campaign file, resolved: every scenario's spec checked.
type Campaign struct {
	Name      string
	Runs      int
	Seed      int64
	Parallel  int
	Scenarios []Scenario
}

// Scenario is one row: a resolved spec (its seed set per run) and what its runs must
// show.
type Scenario struct {
	Name         string
	Spec         harness.Spec
	Expect       string
	MinDetection float64
	// Anomaly, for a scenario expected invalid, is the kind of anomaly a run must show
	// to count as caught (checker.AnomalyKindNames), or several, comma-separated, any of
	// which will do; "": any invalid run.
	Anomaly string
}

// file is the YAML form (docs/campaigns.md).
type file struct {
	Name      string         `yaml:"name"`
	Runs      int            `yaml:"runs"`
	Seed      int64          `yaml:"seed"`
	Parallel  int            `yaml:"parallel"`
	Base      yaml.Node      `yaml:"base"`
	Scenarios []fileScenario `yaml:"scenarios"`
	Matrix    *fileMatrix    `yaml:"matrix"`
}

type fileScenario struct {
	Name         string    `yaml:"name"`
	Spec         yaml.Node `yaml:"spec"`
	Expect       string    `yaml:"expect"`
	MinDetection *float64  `yaml:"min-detection"`
	Anomaly      string    `yaml:"anomaly"`
}

// fileMatrix is a cross product: each axis a spec key and its values.
type fileMatrix struct {
	Axes         yaml.Node `yaml:"axes"`
	Expect       string    `yaml:"expect"`
	MinDetection *float64  `yaml:"min-detection"`
	Anomaly      string    `yaml:"anomaly"`
}

// Overrides change every scenario of a campaign from the command line: Set holds spec
// keys (as in YAML) and values, applied after the file; Runs and Seed replace the
// file's when not zero.
type Overrides struct {
	Set  map[string]string
	Runs int
	Seed int64
}

// Parse reads a campaign file. Every scenario's spec is the defaults, then base, then
// the scenario's (or the matrix cell's) keys, then the overrides; each is resolved, so
// that a bad key or value is an error naming its scenario before anything runs.
func Parse(b []byte, o Overrides) (*Campaign, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	return build(f, o)
}

// build resolves a decoded campaign file (see Parse).
func build(f file, o Overrides) (*Campaign, error) {
	c := &Campaign{Name: f.Name, Runs: cmp.Or(o.Runs, f.Runs, 1), Seed: cmp.Or(o.Seed, f.Seed, 1), Parallel: cmp.Or(f.Parallel, 1)}
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, "/\\ "):
		return nil, fmt.Errorf("campaign: name %q: want a name without spaces or slashes", c.Name)
	case c.Runs < 1:
		return nil, fmt.Errorf("campaign %s: runs %d: want at least 1", c.Name, c.Runs)
	case len(f.Scenarios) == 0 && f.Matrix == nil:
		return nil, fmt.Errorf("campaign %s: no scenarios and no matrix", c.Name)
	}
	over, err := overrideNode(o.Set)
	if err != nil {
		return nil, err
	}
	add := func(name string, layers []*yaml.Node, expect string, minDet *float64, anomaly string) error {
		spec := harness.DefaultSpec()
		for _, l := range append(append([]*yaml.Node{&f.Base}, layers...), over) {
			if l == nil || l.Kind == 0 {
				continue
			}
			if err := l.Decode(&spec); err != nil { // strict: Spec's decoder names an unknown key
				return fmt.Errorf("campaign %s: scenario %s: %w", c.Name, name, err)
			}
		}
		spec.Name, spec.Seed, spec.Count, spec.Failfast = name, c.Seed, 0, false
		rs, err := spec.Resolve()
		if err != nil {
			return fmt.Errorf("campaign %s: scenario %s: %w", c.Name, name, err)
		}
		sc := Scenario{Name: name, Spec: rs, Expect: expect, Anomaly: anomaly}
		if sc.Expect == "" {
			sc.Expect = results.ExpectValid
			if rs.Options().KnownUnsafe() != "" {
				sc.Expect = results.ExpectInvalid // a deliberate bug: it must be caught
			}
		}
		switch sc.Expect {
		case results.ExpectValid:
		case results.ExpectInvalid:
			sc.MinDetection = DefaultMinDetection
			if minDet != nil {
				sc.MinDetection = *minDet
			}
			if sc.MinDetection < 0 || sc.MinDetection > 1 {
				return fmt.Errorf("campaign %s: scenario %s: min-detection %v: want a share in 0..1", c.Name, name, sc.MinDetection)
			}
		default:
			return fmt.Errorf("campaign %s: scenario %s: expect %q: want valid or invalid", c.Name, name, sc.Expect)
		}
		switch {
		case anomaly == "":
		case sc.Expect != results.ExpectInvalid:
			return fmt.Errorf("campaign %s: scenario %s: anomaly %s: only a scenario expected invalid names the anomaly it must show", c.Name, name, anomaly)
		default:
			for _, k := range strings.Split(anomaly, ",") {
				if !slices.Contains(checker.AnomalyKindNames(), k) {
					return fmt.Errorf("campaign %s: scenario %s: anomaly %q is not one of %s", c.Name, name, k, strings.Join(checker.AnomalyKindNames(), ", "))
				}
			}
		}
		if slices.ContainsFunc(c.Scenarios, func(s Scenario) bool { return s.Name == name }) {
			return fmt.Errorf("campaign %s: two scenarios are named %s", c.Name, name)
		}
		c.Scenarios = append(c.Scenarios, sc)
		return nil
	}
	for i, s := range f.Scenarios {
		if s.Name == "" {
			return nil, fmt.Errorf("campaign %s: scenario %d has no name", c.Name, i+1)
		}
		if err := add(s.Name, []*yaml.Node{&s.Spec}, s.Expect, s.MinDetection, s.Anomaly); err != nil {
			return nil, err
		}
	}
	if f.Matrix != nil {
		cells, err := expand(&f.Matrix.Axes)
		if err != nil {
			return nil, fmt.Errorf("campaign %s: matrix: %w", c.Name, err)
		}
		for _, cell := range cells {
			if err := add(cell.name, []*yaml.Node{cell.node}, f.Matrix.Expect, f.Matrix.MinDetection, f.Matrix.Anomaly); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

// Check plans every scenario for this host (harness.NewPlan): a scenario that cannot run
// here (a fault its target or runtime cannot take) is an error naming it, before any
// run starts.
func (c *Campaign) Check(ctx context.Context) error {
	for _, s := range c.Scenarios {
		if _, err := harness.NewPlan(ctx, s.Spec); err != nil {
			var ue *harness.UsageError
			if errors.As(err, &ue) {
				return &harness.UsageError{Msg: fmt.Sprintf("campaign %s: scenario %s: %v", c.Name, s.Name, err)}
			}
			return fmt.Errorf("campaign %s: scenario %s: %w", c.Name, s.Name, err)
		}
	}
	return nil
}

// Load reads the campaign file at path.
func Load(path string, o Overrides) (*Campaign, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("campaign: %w", err)
	}
	return Parse(b, o)
}

// overrideNode makes a mapping of spec keys from KEY=VALUE overrides.
func overrideNode(set map[string]string) (*yaml.Node, error) {
	if len(set) == 0 {
		return nil, nil
	}
	n := &yaml.Node{Kind: yaml.MappingNode}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var v yaml.Node
		if err := yaml.Unmarshal([]byte(set[k]), &v); err != nil || len(v.Content) == 0 {
			v = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: set[k]}}}
		}
		n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, v.Content[0])
	}
	return n, nil
}

type cell struct {
	name string
	node *yaml.Node
}

// expand makes the cross product of the axes, in the file's order (the last axis
// varies fastest); a cell's name is its values joined, e.g. "register/partition".
func expand(axes *yaml.Node) ([]cell, error) {
	if axes.Kind != yaml.MappingNode || len(axes.Content) == 0 {
		return nil, errors.New("axes: want a mapping of spec keys to lists of values")
	}
	cells := []cell{{node: &yaml.Node{Kind: yaml.MappingNode}}}
	for i := 0; i < len(axes.Content); i += 2 {
		key, vals := axes.Content[i], axes.Content[i+1]
		if vals.Kind != yaml.SequenceNode || len(vals.Content) == 0 {
			return nil, fmt.Errorf("axes: %s: want a list of values", key.Value)
		}
		var next []cell
		for _, c := range cells {
			for _, v := range vals.Content {
				n := &yaml.Node{Kind: yaml.MappingNode, Content: append(slices.Clone(c.node.Content), key, v)}
				label := v.Value
				if v.Kind == yaml.SequenceNode {
					var parts []string
					for _, p := range v.Content {
						parts = append(parts, p.Value)
					}
					label = strings.Join(parts, ",")
				}
				label = strings.NewReplacer("/", "_", " ", "").Replace(label)
				next = append(next, cell{name: strings.TrimPrefix(c.name+"/"+label, "/"), node: n})
			}
		}
		cells = next
	}
	for i := range cells {
		cells[i].name = strings.ReplaceAll(cells[i].name, "/", "-") // a run's name is a directory
	}
	return cells, nil
}

// Planned is one run of the plan.
type Planned struct {
	Index    int
	Scenario int
	Seed     int64
}

// Plan lists every run of the campaign: run-major (the first seed of every scenario,
// then the second, ...), so that a campaign cut short has tried every scenario.
func (c *Campaign) Plan() []Planned {
	var out []Planned
	for r := range c.Runs {
		for s := range c.Scenarios {
			out = append(out, Planned{Index: len(out), Scenario: s, Seed: c.Seed + int64(r)})
		}
	}
	return out
}

// Shard is the share i of n (1-based) of the plan: every run whose index is i-1 modulo
// n. The shares of 1/n..n/n are disjoint and together the whole plan.
func Shard(plan []Planned, i, n int) []Planned {
	var out []Planned
	for _, p := range plan {
		if p.Index%n == i-1 {
			out = append(out, p)
		}
	}
	return out
}

// ParseShard reads "i/n".
func ParseShard(s string) (i, n int, err error) {
	if _, err := fmt.Sscanf(s, "%d/%d", &i, &n); err != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("shard %q: want i/n with 1 <= i <= n, e.g. 2/4", s)
	}
	return i, n, nil
}

// PlanID identifies the campaign's plan: its name, scenarios (every spec key that shapes
// a run; not where results go) and seeds. Shards merge only with the same PlanID.
func (c *Campaign) PlanID() string {
	type row struct {
		Name, Expect string
		Min          float64
		Spec         harness.Spec
		Anomaly      string `json:",omitempty"` // absent when not named: plans named before it keep their ids
	}
	rows := make([]row, len(c.Scenarios))
	for i, s := range c.Scenarios {
		spec := s.Spec
		spec.Results, spec.JUnit = "", ""
		rows[i] = row{s.Name, s.Expect, s.MinDetection, spec, s.Anomaly}
	}
	b, _ := json.Marshal(struct {
		Name string
		Runs int
		Seed int64
		Rows []row
	}{c.Name, c.Runs, c.Seed, rows})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// Index is the campaign's empty index for the given share of the plan.
func (c *Campaign) Index(plan []Planned, shard string) results.CampaignIndex {
	ix := results.CampaignIndex{Name: c.Name, Plan: c.PlanID(), Shard: shard, Total: len(c.Plan())}
	for _, p := range plan {
		ix.Planned = append(ix.Planned, p.Index)
	}
	for _, s := range c.Scenarios {
		var spec map[string]any
		b, _ := json.Marshal(s.Spec)
		_ = json.Unmarshal(b, &spec)
		delete(spec, "results")
		ix.Scenarios = append(ix.Scenarios, results.CampaignScenario{Name: s.Name, Expect: s.Expect, MinDetection: s.MinDetection, Anomaly: s.Anomaly, Spec: spec})
	}
	return ix
}
