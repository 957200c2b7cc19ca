package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/faultline/faultline/harness/sut/file"
	"github.com/faultline/faultline/nemesis"
	"github.com/faultline/faultline/results"
)

// Spec is one test, as the user asked for it (flags and YAML keys share these names).
// Resolve fills in defaults and validates it; a resolved Spec is written to test.json
// and is enough to replay the run.
type Spec struct {
	Name            string   `yaml:"name" json:"name"`
	Target          string   `yaml:"target" json:"target"`
	Runtime         string   `yaml:"runtime" json:"runtime"`
	Nodes           int      `yaml:"nodes" json:"nodes"`
	Workload        string   `yaml:"workload" json:"workload"`
	OpsPerKey       int      `yaml:"ops-per-key" json:"ops_per_key"`
	Nemesis         List     `yaml:"nemesis" json:"nemesis"`
	NemesisInterval Duration `yaml:"nemesis-interval" json:"nemesis_interval"`
	TimeLimit       Duration `yaml:"time-limit" json:"time_limit"`
	Concurrency     int      `yaml:"concurrency" json:"concurrency"`
	Rate            float64  `yaml:"rate" json:"rate"`
	Keys            int      `yaml:"keys" json:"keys"`
	Seed            int64    `yaml:"seed" json:"seed"`
	Unsafe          string   `yaml:"unsafe" json:"unsafe,omitempty"`
	// EtcdVersion is the etcd release to build and run (target etcd); EtcdBinary a
	// given etcd server binary instead (e.g. Debian's /usr/bin/etcd).
	EtcdVersion string `yaml:"etcd-version" json:"etcd_version,omitempty"`
	EtcdBinary  string `yaml:"etcd-binary" json:"etcd_binary,omitempty"`
	// EtcdSerializableReads makes the workload's reads serializable: known unsafe.
	EtcdSerializableReads bool `yaml:"etcd-serializable-reads" json:"etcd_serializable_reads,omitempty"`
	// UpgradeTo is the rest of the upgrade path after the release the cluster starts on
	// (rolling-upgrade and rolling-downgrade move along it), oldest first.
	UpgradeTo List `yaml:"upgrade-to" json:"upgrade_to,omitempty"`
	// EtcdSnapshotCount is etcd's --snapshot-count (0: etcd's default): small, it makes
	// a member cut off for a while catch up from a snapshot.
	EtcdSnapshotCount int `yaml:"etcd-snapshot-count" json:"etcd_snapshot_count,omitempty"`
	// TargetFile is a target file (docs/target-file.md): any system as the target
	// (target "file"); TargetVars set its vars, NAME=VALUE.
	TargetFile string `yaml:"target-file" json:"target_file,omitempty"`
	TargetVars List   `yaml:"target-vars" json:"target_vars,omitempty"`
	Results    string `yaml:"results" json:"results"`
	JUnit      string `yaml:"junit" json:"junit,omitempty"`
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
}

// List is a list of names that YAML may give as a sequence or as one comma-separated
// string ("partition, kill").
type List []string

// Set implements flag.Value: a comma-separated list.
func (l *List) Set(s string) error { *l = splitList(s); return nil }

// String implements flag.Value.
func (l *List) String() string { return strings.Join(*l, ",") }

// UnmarshalYAML accepts a sequence of scalars or a comma-separated scalar.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = splitList(n.Value)
		return nil
	case yaml.SequenceNode:
		out := List{}
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: want a name, got a nested value", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a list or a comma-separated string", n.Line)
}

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

// Set implements flag.Value.
func (d *Duration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration like 30s", s)
	}
	*d = Duration(v)
	return nil
}

// Choices that Resolve accepts.
var (
	Targets   = []string{"raftnode", "etcd", "file"}
	Runtimes  = []string{"auto", "docker", "process"}
	Workloads = []string{"register", "set", "append"}
	// NemesisKinds are the fault families --nemesis accepts; "all" means every one
	// available for the target and runtime, "none" none.
	NemesisKinds = nemesis.Kinds
	UnsafeModes  = []string{"stale-read", "lease-read", "ack-before-commit", "ack-before-fsync"}
)

// DefaultEtcdVersion is the etcd release --target etcd builds when no version or binary
// is given: the newest 3.7 at the time of writing.
const DefaultEtcdVersion = "v3.7.3"

// DefaultSpec is what a test runs when neither flags nor YAML say otherwise.
func DefaultSpec() Spec {
	return Spec{
		Target: "raftnode", Runtime: "auto", Nodes: 5, Workload: "register", OpsPerKey: 200,
		Nemesis: []string{"partition", "kill", "pause"}, NemesisInterval: Duration(5 * time.Second),
		TimeLimit: Duration(60 * time.Second), Concurrency: 10, Keys: 8,
		Results: results.DefaultDir, Recovery: Duration(5 * time.Second), CheckTimeout: Duration(60 * time.Second),
		OpTimeout: Duration(2 * time.Second),
	}
}

// UsageError is a bad flag or spec: nothing was started, exit code 4.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error { return &UsageError{Msg: fmt.Sprintf(format, args...)} }

// ParseTestArgs reads `faultline test` arguments: defaults, then the YAML file given by -f,
// then the flags given explicitly. It returns a resolved spec or a *UsageError.
func ParseTestArgs(args []string, stderr io.Writer) (Spec, error) {
	spec := DefaultSpec()
	fs := flag.NewFlagSet("faultline test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var file, replay, nemesis string
	fs.StringVar(&file, "f", "", "YAML spec file (flags given explicitly override it)")
	fs.StringVar(&replay, "replay", "", "a run directory: run its spec again, same seed and schedule (flags given explicitly override it)")
	bindFlags(fs, &spec, &nemesis)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return spec, err
		}
		return spec, usagef("test: %v", err)
	}
	if fs.NArg() > 0 {
		return spec, usagef("test: unexpected argument %q", fs.Arg(0))
	}
	if file != "" && replay != "" {
		return spec, usagef("test: -f %s and --replay %s: give one of them", file, replay)
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
			return spec, err
		}
		spec = from
		// Flags given explicitly override the file: parse them again on top of it.
		fs2 := flag.NewFlagSet("faultline test", flag.ContinueOnError)
		fs2.SetOutput(io.Discard)
		nemesis = ""
		bindFlags(fs2, &spec, &nemesis)
		fs2.String("f", "", "")
		fs2.String("replay", "", "")
		if err := fs2.Parse(args); err != nil {
			return spec, usagef("test: %v", err)
		}
	}
	if nemesis != "" {
		spec.Nemesis = splitList(nemesis)
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "target" })
	if explicit && spec.TargetFile != "" && spec.Target != "file" {
		return spec, usagef("target-file: %s and --target %s: give one of them", spec.TargetFile, spec.Target)
	}
	return spec.Resolve()
}

func bindFlags(fs *flag.FlagSet, s *Spec, nemesis *string) {
	fs.StringVar(&s.Name, "name", s.Name, "test name (default: target-workload)")
	fs.StringVar(&s.Target, "target", s.Target, "system under test: "+strings.Join(Targets, "|"))
	fs.StringVar(&s.Runtime, "runtime", s.Runtime, "where nodes run: "+strings.Join(Runtimes, "|"))
	fs.IntVar(&s.Nodes, "nodes", s.Nodes, "cluster size")
	fs.StringVar(&s.Workload, "workload", s.Workload, strings.Join(Workloads, "|"))
	fs.IntVar(&s.OpsPerKey, "ops-per-key", s.OpsPerKey, "retire a key after this many operations")
	fs.StringVar(nemesis, "nemesis", "", "faults, comma-separated: none|all|"+strings.Join(NemesisKinds, ",")+"; kinds joined by + are held together (partition+clock)")
	fs.Var(&s.NemesisInterval, "nemesis-interval", "mean time from one fault's start to the next (each is held 50-90% of it)")
	fs.Var(&s.TimeLimit, "time-limit", "how long the workload runs")
	fs.IntVar(&s.Concurrency, "concurrency", s.Concurrency, "concurrent clients")
	fs.Float64Var(&s.Rate, "rate", s.Rate, "total ops/s, 0 = as fast as possible")
	fs.IntVar(&s.Keys, "keys", s.Keys, "concurrently active keys")
	fs.Int64Var(&s.Seed, "seed", s.Seed, "random seed (0 = pick one and print it)")
	fs.StringVar(&s.Unsafe, "unsafe", s.Unsafe, "raftnode's deliberate bug: "+strings.Join(UnsafeModes, "|"))
	fs.StringVar(&s.EtcdVersion, "etcd-version", s.EtcdVersion, "etcd release to build from the Go module proxy and run (target etcd; default "+DefaultEtcdVersion+")")
	fs.StringVar(&s.EtcdBinary, "etcd-binary", s.EtcdBinary, "an etcd server binary to run instead of building one (e.g. /usr/bin/etcd)")
	fs.BoolVar(&s.EtcdSerializableReads, "etcd-serializable-reads", s.EtcdSerializableReads, "serializable reads (known unsafe: stale reads), to prove they are caught")
	fs.Var(&s.UpgradeTo, "upgrade-to", "releases to upgrade to, in order, comma-separated (rolling-upgrade; target etcd)")
	fs.IntVar(&s.EtcdSnapshotCount, "etcd-snapshot-count", s.EtcdSnapshotCount, "etcd's --snapshot-count (0: its default)")
	fs.StringVar(&s.TargetFile, "target-file", s.TargetFile, "a target file: any system as the target (docs/target-file.md)")
	fs.Var(&s.TargetVars, "target-var", "the target file's vars, NAME=VALUE, comma-separated")
	fs.StringVar(&s.Results, "results", s.Results, "results directory")
	fs.StringVar(&s.JUnit, "junit", s.JUnit, "also write a JUnit XML report here")
	fs.Var(&s.Recovery, "recovery", "time the healed cluster gets before final reads")
	fs.Var(&s.CheckTimeout, "check-timeout", "bound on the linearizability check (expiry: unknown)")
	fs.Var(&s.OpTimeout, "op-timeout", "how long a client waits for one operation (expiry: indeterminate)")
	fs.IntVar(&s.Count, "count", s.Count, "run the test N times, seeds counting up from --seed; exit code: the worst run's")
	fs.BoolVar(&s.Failfast, "failfast", s.Failfast, "with --count: stop after the first run that is not valid")
}

// LoadSpec reads a YAML spec on top of the defaults; unknown keys are errors.
func LoadSpec(path string) (Spec, error) {
	spec := DefaultSpec()
	b, err := os.ReadFile(path)
	if err != nil {
		return spec, usagef("spec: %v", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil && !errors.Is(err, io.EOF) {
		return spec, usagef("spec %s: %v", path, err)
	}
	return spec, nil
}

// LoadReplay reads the resolved spec of the run in dir (its test.json), to run it again:
// the same seed, hence the same fault schedule and the same operations per client (see
// the README's "Replay"). The runtime is the one the run had, also when its spec said
// auto.
func LoadReplay(dir string) (Spec, error) {
	b, err := os.ReadFile(filepath.Join(dir, results.TestFile))
	if err != nil {
		return Spec{}, usagef("replay: %s is not a run directory: %v", dir, err)
	}
	var tj struct {
		Spec    *Spec  `json:"spec"`
		Runtime string `json:"runtime"`
	}
	spec := DefaultSpec()
	tj.Spec = &spec
	if err := json.Unmarshal(b, &tj); err != nil {
		return Spec{}, usagef("replay: %s: %v", filepath.Join(dir, results.TestFile), err)
	}
	if spec.Seed == 0 {
		return Spec{}, usagef("replay: %s records no seed", filepath.Join(dir, results.TestFile))
	}
	if slices.Contains(Runtimes, tj.Runtime) {
		spec.Runtime = tj.Runtime
	}
	spec.JUnit = "" // the original's report is not the replay's to overwrite
	return spec, nil
}

// UnmarshalJSON reads "5s" (test.json).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration %s: want a string like \"5s\"", b)
	}
	return d.Set(s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Resolve validates the spec, names the first bad field, and fills in derived defaults
// (name, seed). It never starts anything.
func (s Spec) Resolve() (Spec, error) {
	oneOf := func(field, v string, allowed []string) error {
		if !slices.Contains(allowed, v) {
			return usagef("%s: %q is not one of %s", field, v, strings.Join(allowed, ", "))
		}
		return nil
	}
	if s.TargetFile != "" && s.Target == "raftnode" { // the default: a target file says otherwise
		s.Target = "file"
	}
	for _, c := range []struct {
		field, v string
		allowed  []string
	}{{"target", s.Target, Targets}, {"runtime", s.Runtime, Runtimes}, {"workload", s.Workload, Workloads}} {
		if err := oneOf(c.field, c.v, c.allowed); err != nil {
			return s, err
		}
	}
	if s.Unsafe != "" {
		if err := oneOf("unsafe", s.Unsafe, UnsafeModes); err != nil {
			return s, err
		}
		if s.Target == "file" {
			return s, usagef("unsafe: %s is one of raftnode's deliberate bugs; a target file sets its system's own unsafe settings (e.g. with a var: --target-var)", s.Unsafe)
		}
		if s.Target != "raftnode" {
			return s, usagef("unsafe: %s is one of raftnode's deliberate bugs; target %s has none (etcd: --etcd-serializable-reads)", s.Unsafe, s.Target)
		}
	}
	switch {
	case s.Target != "etcd" && (s.EtcdVersion != "" || s.EtcdBinary != "" || s.EtcdSerializableReads || len(s.UpgradeTo) > 0 || s.EtcdSnapshotCount != 0):
		return s, usagef("etcd-version/etcd-binary/etcd-serializable-reads/upgrade-to/etcd-snapshot-count: only for --target etcd, not %s", s.Target)
	case s.EtcdSnapshotCount < 0:
		return s, usagef("etcd-snapshot-count: %d must not be negative", s.EtcdSnapshotCount)
	case s.EtcdVersion != "" && s.EtcdBinary != "":
		return s, usagef("etcd-version %s and etcd-binary %s: give one of them", s.EtcdVersion, s.EtcdBinary)
	case s.Target == "etcd" && s.EtcdBinary == "" && s.EtcdVersion == "":
		s.EtcdVersion = DefaultEtcdVersion
	}
	fileName, err := s.resolveTargetFile()
	if err != nil {
		return s, err
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
	case s.Rate < 0:
		return s, usagef("rate: %v must not be negative", s.Rate)
	case s.TimeLimit.D() <= 0:
		return s, usagef("time-limit: %v must be positive", s.TimeLimit)
	case s.NemesisInterval.D() < 100*time.Millisecond:
		return s, usagef("nemesis-interval: %v is below 100ms", s.NemesisInterval)
	case s.Recovery.D() < 0 || s.CheckTimeout.D() <= 0:
		return s, usagef("recovery/check-timeout: must be positive")
	case s.OpTimeout.D() < 10*time.Millisecond:
		return s, usagef("op-timeout: %v is below 10ms", s.OpTimeout)
	case s.Results == "":
		return s, usagef("results: must name a directory")
	case s.Count < 0:
		return s, usagef("count: %d must not be negative", s.Count)
	}
	nem, err := resolveNemesis(s.Nemesis)
	if err != nil {
		return s, err
	}
	s.Nemesis = nem
	if s.Name == "" && fileName != "" {
		s.Name = fileName + "-" + s.Workload
	}
	if s.Name == "" {
		s.Name = s.Target + "-" + s.Workload
		if s.Unsafe != "" {
			s.Name += "-" + s.Unsafe
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

// resolveTargetFile checks the target file and its vars (target file), and returns the
// system's name in it ("" for another target).
func (s Spec) resolveTargetFile() (string, error) {
	switch {
	case s.Target == "file" && s.TargetFile == "":
		return "", usagef("target: file needs --target-file FILE")
	case s.Target != "file" && s.TargetFile != "":
		return "", usagef("target-file: %s and --target %s: give one of them", s.TargetFile, s.Target)
	case s.Target != "file" && len(s.TargetVars) > 0:
		return "", usagef("target-var: only with --target-file")
	case s.Target != "file":
		return "", nil
	}
	vars, err := targetVars(s.TargetVars)
	if err != nil {
		return "", err
	}
	f, err := file.Load(s.TargetFile, vars)
	if err != nil {
		return "", usagef("%v", err)
	}
	return f.Name, nil
}

// targetVars reads NAME=VALUE pairs.
func targetVars(l List) (map[string]string, error) {
	vars := map[string]string{}
	for _, kv := range l {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("target-var: %q is not NAME=VALUE", kv)
		}
		vars[k] = v
	}
	return vars, nil
}

func resolveNemesis(in []string) ([]string, error) {
	var out []string
	for _, k := range in {
		switch {
		case k == "none":
			if len(in) > 1 {
				return nil, usagef("nemesis: none cannot be combined with %v", in)
			}
			return []string{}, nil
		case k == "all":
			if len(in) > 1 {
				return nil, usagef("nemesis: all cannot be combined with %v", in)
			}
			return []string{"all"}, nil // expanded by the run to what its runtime can inject
		case nemesis.SplitCombo(k) != nil:
			if _, err := nemesis.NewCombo(nemesis.SplitCombo(k), func(part string) ([]nemesis.Fault, error) {
				if !slices.Contains(NemesisKinds, part) {
					return nil, fmt.Errorf("%q is not one of %s", part, strings.Join(NemesisKinds, ", "))
				}
				return nil, nil
			}); err != nil {
				return nil, usagef("nemesis: %v", err)
			}
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		case !slices.Contains(NemesisKinds, k):
			return nil, usagef("nemesis: %q is not one of none, all, %s (or kinds joined by + to inject together)", k, strings.Join(NemesisKinds, ", "))
		case !slices.Contains(out, k):
			out = append(out, k)
		}
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}
