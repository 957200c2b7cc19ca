package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/harness/runtime"
	"github.com/faultline/faultline/harness/sut"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
	"github.com/faultline/faultline/workload"
)

// Spec is one test, as the user asked for it (flags and YAML keys share these names).
// Resolve fills in defaults and validates it; a resolved Spec is written to test.json
// and is enough to replay the run.
//
// What is a target's own (etcd's version, raftnode's deliberate bug, a target file) is
// that target's section (sut.Options), under its name: "etcd: {version: v3.7.3}" in a
// spec file and in test.json; its flags keep their names (--etcd-version), and a spec
// file may give them as top-level keys (etcd-version: v3.7.3).
// The ways of the clock fault (Spec.Clock).
const (
	ClockHook    = "hook"
	ClockProcess = "process"
)

type Spec struct {
	Name string `yaml:"name" json:"name"`
	// Target names a registered target; empty: the one whose section is given, else the
	// default (sut.Default).
	Target    string        `yaml:"target" json:"target"`
	Runtime   string        `yaml:"runtime" json:"runtime"`
	Nodes     int           `yaml:"nodes" json:"nodes"`
	Workload  workload.Kind `yaml:"workload" json:"workload"`
	OpsPerKey int           `yaml:"ops-per-key" json:"ops_per_key"`
	// CompactInterval is the kubernetes workload's time from one compaction to the
	// next, each to the revision seen at the one before (workload.Config); 0: every
	// thousandth operation or so.
	CompactInterval Duration `yaml:"compact-interval" json:"compact_interval,omitempty"`
	// MinAvailability is the share of completed operations the system must answer for
	// its verdict not to carry a low-availability warning (checker.Options); 0: the
	// checker's default (half); negative: no warning.
	MinAvailability float64  `yaml:"min-availability" json:"min_availability,omitempty"`
	Nemesis         List     `yaml:"nemesis" json:"nemesis"`
	NemesisInterval Duration `yaml:"nemesis-interval" json:"nemesis_interval"`
	// Clock is how the clock fault changes a node's clock: "hook" (the target's clock
	// hook), "process" (the runtime's per-process clocks, for any program), or "" (auto:
	// the hook where the target has one, else per-process clocks).
	Clock       string   `yaml:"clock" json:"clock,omitempty"`
	TimeLimit   Duration `yaml:"time-limit" json:"time_limit"`
	Concurrency int      `yaml:"concurrency" json:"concurrency"`
	Rate        float64  `yaml:"rate" json:"rate"`
	Keys        int      `yaml:"keys" json:"keys"`
	Seed        int64    `yaml:"seed" json:"seed"`
	Results     string   `yaml:"results" json:"results"`
	JUnit       string   `yaml:"junit" json:"junit,omitempty"`
	// Recovery is how long the healed cluster gets before the final reads.
	Recovery Duration `yaml:"recovery" json:"recovery"`
	// CheckTimeout bounds the linearizability check; expiry gives "unknown".
	CheckTimeout Duration `yaml:"check-timeout" json:"check_timeout"`
	// OpTimeout is how long a client waits for one operation; expiry makes it
	// indeterminate (info) and the client goes on under a new process. Short timeouts
	// keep clients busy through faults (a client stuck on a paused node issues new
	// operations, which a resumed node may answer wrongly); long ones give more definite
	// outcomes.
	OpTimeout Duration `yaml:"op-timeout" json:"op_timeout"`
	// Count runs the test this many times, with seeds Seed, Seed+1, ..., as a campaign
	// of one scenario (package campaign); Failfast stops after the first run that is not
	// valid. Neither is part of one run's spec (test.json leaves them out).
	Count    int  `yaml:"count" json:"-"`
	Failfast bool `yaml:"failfast" json:"-"`

	// sections holds the targets' sections, by target name, made on first use.
	sections map[string]sut.Options
}

// List is a list of names that YAML may give as a sequence or as one comma-separated
// string ("partition, kill").
type List = sut.List

// Duration is a time.Duration that reads and writes as "5s" in YAML and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML accepts "5s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration like 30s", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes "5s".
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// UnmarshalJSON reads "5s" (test.json).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string like \"5s\"", b)
	}
	return d.Set(s)
}

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s", s)
	}
	*d = Duration(v)
	return nil
}

// DefaultSpec is what a test runs when neither flags nor YAML say otherwise.
func DefaultSpec() Spec {
	return Spec{
		Runtime: "auto", Nodes: 5, Workload: workload.Register, OpsPerKey: 200,
		Nemesis: []string{"partition", "kill", "pause"}, NemesisInterval: Duration(5 * time.Second),
		TimeLimit: Duration(60 * time.Second), Concurrency: 10, Keys: 8,
		Results: results.DefaultDir, Recovery: Duration(5 * time.Second), CheckTimeout: Duration(60 * time.Second),
		OpTimeout: Duration(2 * time.Second),
	}
}

// Section returns target's section of the spec (its defaults until something sets
// them), or nil for a target that is not registered.
func (s *Spec) Section(target string) sut.Options {
	if o, ok := s.sections[target]; ok {
		return o
	}
	f, ok := sut.Lookup(target)
	if !ok {
		return nil
	}
	if s.sections == nil {
		s.sections = map[string]sut.Options{}
	}
	o := f.Options()
	s.sections[target] = o
	return o
}

// Options returns the section of the spec's target (resolved: see Resolve).
func (s *Spec) Options() sut.Options { return s.Section(s.Target) }

// clone returns a copy of s whose sections are its own.
func (s Spec) clone() Spec {
	out := s
	out.sections = nil
	for name, o := range s.sections {
		b, _ := json.Marshal(o)
		c := out.Section(name)
		_ = json.Unmarshal(b, c)
	}
	return out
}

// UsageError is a bad flag or spec: nothing was started, exit code 4.
type UsageError = results.UsageError

func usagef(format string, args ...any) error { return results.Usagef(format, args...) }

// ParseTestArgs reads `faultline test` arguments: defaults, then the YAML file given by -f
// (or the spec of the run --replay names), then the flags given explicitly. It returns a
// resolved spec or a *UsageError; with --dry-run, dry is set.
func ParseTestArgs(args []string, stderr io.Writer) (Spec, error) {
	spec, _, err := parseTestArgs(args, stderr)
	return spec, err
}

// TestArgs are the flags of `faultline test` that are not the spec's.
type TestArgs struct {
	// DryRun prints the run's plan and runs nothing.
	DryRun bool
}

// ParseTest is ParseTestArgs, also returning the flags that are not the spec's.
func ParseTest(args []string, stderr io.Writer) (Spec, TestArgs, error) {
	return parseTestArgs(args, stderr)
}

func parseTestArgs(args []string, stderr io.Writer) (Spec, TestArgs, error) {
	spec := DefaultSpec()
	var ta TestArgs
	fs := flag.NewFlagSet("faultline test", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a bad flag is one line, said by the caller; -h prints them all
	var file, replay, nem string
	fs.StringVar(&file, "f", "", "YAML spec file (flags given explicitly override it)")
	fs.StringVar(&replay, "replay", "", "a run directory: run its spec again, same seed and schedule (flags given explicitly override it)")
	fs.BoolVar(&ta.DryRun, "dry-run", false, "print the run's plan (runtime, target, faults with their variants) and run nothing")
	bindFlags(fs, &spec, &nem)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintln(stderr, "usage: faultline test [-f spec.yaml | --replay RUNDIR] [--dry-run] [flags]")
			fs.PrintDefaults()
			return spec, ta, err
		}
		return spec, ta, usagef("%v (faultline test -h lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return spec, ta, usagef("test: unexpected argument %q", fs.Arg(0))
	}
	if file != "" && replay != "" {
		return spec, ta, usagef("test: -f %s and --replay %s: give one of them", file, replay)
	}
	if file != "" || replay != "" {
		var from Spec
		var err error
		if file != "" {
			from, err = LoadSpec(file)
		} else {
			from, err = LoadReplay(replay)
		}
		if err != nil {
			return spec, ta, err
		}
		spec = from
		// Flags given explicitly override the file: parse them again on top of it.
		fs2 := flag.NewFlagSet("faultline test", flag.ContinueOnError)
		fs2.SetOutput(io.Discard)
		nem = ""
		bindFlags(fs2, &spec, &nem)
		fs2.String("f", "", "")
		fs2.String("replay", "", "")
		fs2.Bool("dry-run", false, "")
		if err := fs2.Parse(args); err != nil {
			return spec, ta, usagef("test: %v", err)
		}
	}
	if nem != "" {
		spec.Nemesis = sut.SplitList(nem)
	}
	// A target's flag given for another target than --target names is a mistake.
	owner := flagOwners()
	var err error
	fs.Visit(func(f *flag.Flag) {
		if t, ok := owner[f.Name]; ok && spec.Target != "" && t != spec.Target && err == nil {
			err = usagef("--%s is an option of target %s, and the target is %s: give one of them", f.Name, t, spec.Target)
		}
	})
	if err != nil {
		return spec, ta, err
	}
	spec, err = spec.Resolve()
	return spec, ta, err
}

// Set sets the spec's key name to value as its flag would (--nodes 3, --unsafe
// stale-read, --etcd-version v3.6.16): the spec's own keys and every target's.
func (s *Spec) Set(name, value string) error {
	fs := flag.NewFlagSet("spec", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var nem string
	bindFlags(fs, s, &nem)
	if err := fs.Set(name, value); err != nil {
		return usagef("%s: %v", name, err)
	}
	if name == "nemesis" {
		s.Nemesis = sut.SplitList(nem)
	}
	return nil
}

// TargetFlags are the flags of every registered target (--etcd-version, --unsafe, ...),
// each with its usage and whether it is boolean: what a campaign may override too.
func TargetFlags() []*flag.Flag {
	fs := flag.NewFlagSet("targets", flag.ContinueOnError)
	for _, f := range sut.Factories() {
		f.Options().Flags(fs)
	}
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) { out = append(out, f) })
	return out
}

// flagOwners maps every target flag to its target.
func flagOwners() map[string]string {
	out := map[string]string{}
	for _, f := range sut.Factories() {
		fs := flag.NewFlagSet(f.Name, flag.ContinueOnError)
		f.Options().Flags(fs)
		fs.VisitAll(func(fl *flag.Flag) { out[fl.Name] = f.Name })
	}
	return out
}

func bindFlags(fs *flag.FlagSet, s *Spec, nem *string) {
	fs.StringVar(&s.Name, "name", s.Name, "test name (default: target-workload)")
	fs.StringVar(&s.Target, "target", s.Target, "system under test: "+strings.Join(sut.Names(), "|")+" (default "+sut.Default()+")")
	fs.StringVar(&s.Runtime, "runtime", s.Runtime, "where nodes run: auto|"+strings.Join(runtime.Names(), "|"))
	fs.IntVar(&s.Nodes, "nodes", s.Nodes, "cluster size")
	fs.Func("workload", strings.Join(workload.Names(), "|")+" (default "+string(s.Workload)+")", func(v string) error {
		s.Workload = workload.Kind(v)
		return nil
	})
	fs.IntVar(&s.OpsPerKey, "ops-per-key", s.OpsPerKey, "retire a key after this many operations")
	fs.Float64Var(&s.MinAvailability, "min-availability", s.MinAvailability, "warn (summary, results.json, JUnit, report, campaign table) when the system answered less than this share of its operations (default 0.5; negative: never)")
	fs.Var(&s.CompactInterval, "compact-interval", "workload kubernetes: time between compactions, each to the revision of the one before, as the API server's --etcd-compaction-interval (default: every thousandth operation, a few seconds)")
	fs.StringVar(nem, "nemesis", "", "faults, comma-separated: none|all|"+strings.Join(nemesis.KindNames(), ",")+
		"; kind:variant picks a variant (kill:all, partition:leader); kinds joined by + act together on the same nodes (partition:leader+clock:slow)")
	fs.Var(&s.NemesisInterval, "nemesis-interval", "mean time from one fault's start to the next (each is held 50-90% of it)")
	fs.StringVar(&s.Clock, "clock", s.Clock, "how the clock fault works: hook (the target's clock hook) or process (per-process clocks for any program); default: the hook where there is one")
	fs.Var(&s.TimeLimit, "time-limit", "how long the workload runs")
	fs.IntVar(&s.Concurrency, "concurrency", s.Concurrency, "concurrent clients")
	fs.Float64Var(&s.Rate, "rate", s.Rate, "total ops/s, 0 = as fast as possible")
	fs.IntVar(&s.Keys, "keys", s.Keys, "concurrently active keys")
	fs.Int64Var(&s.Seed, "seed", s.Seed, "random seed (0 = pick one and print it)")
	fs.StringVar(&s.Results, "results", s.Results, "results directory")
	fs.StringVar(&s.JUnit, "junit", s.JUnit, "also write a JUnit XML report here")
	fs.Var(&s.Recovery, "recovery", "time the healed cluster gets before final reads")
	fs.Var(&s.CheckTimeout, "check-timeout", "bound on the linearizability check (expiry: unknown)")
	fs.Var(&s.OpTimeout, "op-timeout", "how long a client waits for one operation (expiry: indeterminate)")
	fs.IntVar(&s.Count, "count", s.Count, "run the test N times, seeds counting up from --seed; exit code: the worst run's")
	fs.BoolVar(&s.Failfast, "failfast", s.Failfast, "with --count: stop after the first run that is not valid")
	for _, f := range sut.Factories() {
		s.Section(f.Name).Flags(fs)
	}
}

// LoadSpec reads a YAML spec on top of the defaults; unknown keys are errors.
func LoadSpec(path string) (Spec, error) {
	spec := DefaultSpec()
	b, err := os.ReadFile(path)
	if err != nil {
		return spec, usagef("spec: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return spec, usagef("spec %s: %v", path, err)
	}
	return spec, nil
}

// UnmarshalYAML reads a spec's mapping on top of s: its own keys (strictly: an unknown
// key is an error naming its line), a target's section under the target's name, and a
// target's flags as top-level keys.
func (s *Spec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a spec is a mapping of keys to values", n.Line)
	}
	keys := specKeys()
	owner := flagOwners()
	common := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case slices.Contains(keys, k.Value):
			common.Content = append(common.Content, k, v)
		case s.Section(k.Value) != nil:
			if err := decodeStrict(v, s.Section(k.Value)); err != nil {
				return fmt.Errorf("line %d: %s: %w", k.Line, k.Value, err)
			}
		case owner[k.Value] != "":
			if err := s.setFlag(owner[k.Value], k.Value, v); err != nil {
				return err
			}
		default:
			return fmt.Errorf("line %d: unknown key %q (keys: %s; a target's section: %s)", k.Line, k.Value,
				strings.Join(keys, ", "), strings.Join(sut.Names(), ", "))
		}
	}
	type plain Spec // no UnmarshalYAML: the fields' own
	p := (*plain)(s)
	return common.Decode(p)
}

// setFlag sets target's flag name to a YAML value: a scalar, or a sequence (a list).
func (s *Spec) setFlag(target, name string, v *yaml.Node) error {
	fs := flag.NewFlagSet(target, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	s.Section(target).Flags(fs)
	val := v.Value
	if v.Kind == yaml.SequenceNode {
		var parts []string
		for _, c := range v.Content {
			parts = append(parts, c.Value)
		}
		val = strings.Join(parts, ",")
	}
	if err := fs.Set(name, val); err != nil {
		return fmt.Errorf("line %d: %s: %w", v.Line, name, err)
	}
	return nil
}

// specKeys are the YAML keys of Spec's own fields.
func specKeys() []string {
	var out []string
	t := reflect.TypeFor[Spec]()
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" && k != "-" {
			out = append(out, k)
		}
	}
	return out
}

// decodeStrict decodes n into v, an unknown key being an error.
func decodeStrict(n *yaml.Node, v any) error {
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// specJSON is a Spec as test.json holds it: its own fields and its target's section.
type specJSON struct {
	plainSpec
	Sections map[string]json.RawMessage `json:"-"`
}

type plainSpec Spec

// MarshalJSON writes the spec's fields and, under its target's name, the target's
// section.
func (s Spec) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(plainSpec(s))
	if err != nil {
		return nil, err
	}
	o := s.Options()
	if o == nil {
		return b, nil
	}
	sec, err := json.Marshal(o)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m[s.Target] = sec
	return json.Marshal(m)
}

// UnmarshalJSON reads a spec written by MarshalJSON on top of s.
func (s *Spec) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, (*plainSpec)(s)); err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for name, raw := range m {
		if o := s.Section(name); o != nil {
			if err := json.Unmarshal(raw, o); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

// LoadReplay reads the resolved spec of the run in dir (its test.json), to run it again:
// the same seed, hence the same fault schedule and the same operations per client (see
// the README's "Replay"), and the same target (a target file as it was then). The
// runtime is the one the run had, also when its spec said auto.
func LoadReplay(dir string) (Spec, error) {
	info, ok, err := results.ReadTestInfo(dir)
	switch {
	case err != nil:
		return Spec{}, usagef("replay: %s: %v", dir, err)
	case !ok:
		return Spec{}, usagef("replay: %s is not a run directory: it has no %s", dir, results.TestFile)
	}
	spec := DefaultSpec()
	if err := json.Unmarshal(info.Spec, &spec); err != nil {
		return Spec{}, usagef("replay: %s: the spec: %v", dir, err)
	}
	if spec.Seed == 0 {
		return Spec{}, usagef("replay: %s records no seed", dir)
	}
	if _, ok := runtime.Lookup(info.Runtime); ok {
		spec.Runtime = info.Runtime
	}
	spec.JUnit = "" // the original's report is not the replay's to overwrite
	return spec, nil
}

// Resolve validates the spec, names the first bad field, and fills in derived defaults
// (target, name, seed; the target's section). It starts nothing: a target may only ask
// a program it is given what it is (etcd --version).
func (s Spec) Resolve() (Spec, error) {
	s = s.clone()
	given := func() []string {
		var out []string
		for name, o := range s.sections {
			if o.Given() {
				out = append(out, name)
			}
		}
		slices.Sort(out)
		return out
	}()
	switch {
	case s.Target == "" && len(given) > 1:
		return s, usagef("options of several targets are given (%s): say which one is the target (--target)", strings.Join(given, ", "))
	case s.Target == "" && len(given) == 1:
		s.Target = given[0] // --target-file alone: the file target
	case s.Target == "":
		s.Target = sut.Default()
	}
	if _, ok := sut.Lookup(s.Target); !ok {
		return s, usagef("target: %q is not one of %s", s.Target, strings.Join(sut.Names(), ", "))
	}
	for _, name := range given {
		if name != s.Target {
			return s, usagef("%s: options of target %s, and the target is %s (%s)", name, name, s.Target,
				strings.Join(s.Section(name).Args(), " "))
		}
	}
	if _, ok := workload.Lookup(s.Workload); !ok {
		return s, usagef("workload: %q is not one of %s", s.Workload, strings.Join(workload.Names(), ", "))
	}
	if s.Runtime != "auto" {
		if _, ok := runtime.Lookup(s.Runtime); !ok {
			return s, usagef("runtime: %q is not one of auto, %s", s.Runtime, strings.Join(runtime.Names(), ", "))
		}
	}
	switch {
	case s.Nodes < 1 || s.Nodes > 9:
		return s, usagef("nodes: %d is outside 1..9", s.Nodes)
	case s.Concurrency < 1 || s.Concurrency > 1000:
		return s, usagef("concurrency: %d is outside 1..1000", s.Concurrency)
	case s.Keys < 1:
		return s, usagef("keys: %d must be at least 1", s.Keys)
	case s.OpsPerKey < 1:
		return s, usagef("ops-per-key: %d must be at least 1", s.OpsPerKey)
	case s.MinAvailability > 1:
		return s, usagef("min-availability: %v is a share: at most 1", s.MinAvailability)
	case s.CompactInterval.D() < 0:
		return s, usagef("compact-interval: %v must not be negative", s.CompactInterval)
	case s.CompactInterval.D() > 0 && s.Workload != workload.Kubernetes:
		return s, usagef("compact-interval: only the %s workload compacts (workload %s)", workload.Kubernetes, s.Workload)
	case s.Rate < 0:
		return s, usagef("rate: %v must not be negative", s.Rate)
	case s.TimeLimit.D() <= 0:
		return s, usagef("time-limit: %v must be positive", s.TimeLimit)
	case s.NemesisInterval.D() < 100*time.Millisecond:
		return s, usagef("nemesis-interval: %v is below 100ms", s.NemesisInterval)
	case s.Clock != "" && s.Clock != ClockHook && s.Clock != ClockProcess:
		return s, usagef("clock: %q is not one of %s, %s", s.Clock, ClockHook, ClockProcess)
	case s.Recovery.D() < 0 || s.CheckTimeout.D() <= 0:
		return s, usagef("recovery/check-timeout: must be positive")
	case s.OpTimeout.D() < 10*time.Millisecond:
		return s, usagef("op-timeout: %v is below 10ms", s.OpTimeout)
	case s.Results == "":
		return s, usagef("results: must name a directory")
	case s.Count < 0:
		return s, usagef("count: %d must not be negative", s.Count)
	}
	o := s.Options()
	if err := o.Resolve(sut.Common{Nodes: s.Nodes, Workload: s.Workload}); err != nil {
		return s, err
	}
	if why := sut.Supports(o, s.Workload); why != "" {
		return s, usagef("workload: %s cannot run on target %s: %s", s.Workload, o.Label(), why)
	}
	nem, err := resolveNemesis(s.Nemesis)
	if err != nil {
		return s, err
	}
	s.Nemesis = nem
	if s.Name == "" {
		s.Name = o.Label() + "-" + string(s.Workload)
		if u := o.KnownUnsafe(); u != "" {
			s.Name += "-" + u
		}
	}
	if strings.ContainsAny(s.Name, "/\\") || s.Name == "." || s.Name == ".." {
		return s, usagef("name: %q must not contain a path separator", s.Name)
	}
	if s.Seed == 0 {
		s.Seed = time.Now().UnixNano() & (1<<53 - 1)
	}
	return s, nil
}

// resolveNemesis checks the --nemesis entries: none, all, or entries nemesis.Parse
// reads (kinds, kind:variant, kinds joined by +). Whether the run's cluster can take
// them is its plan's to say.
func resolveNemesis(in []string) ([]string, error) {
	out := []string{}
	for _, k := range in {
		switch {
		case k == "none" || k == "all":
			if len(in) > 1 {
				return nil, usagef("nemesis: %s cannot be combined with %v", k, in)
			}
			if k == "all" {
				return []string{"all"}, nil // spelt out by the plan, for what its cluster can take
			}
			return out, nil
		case slices.Contains(out, k):
		default:
			if _, err := nemesis.Parse(k); err != nil {
				return nil, usagef("nemesis: %v", err)
			}
			out = append(out, k)
		}
	}
	return out, nil
}
