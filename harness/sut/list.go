package sut

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// List is a list of names that a spec file may give as a sequence or as one
// comma-separated string ("partition, kill"), and a flag as the latter.
type List []string

// Set implements flag.Value: a comma-separated list.
func (l *List) Set(s string) error { *l = SplitList(s); return nil }

// String implements flag.Value.
func (l *List) String() string { return strings.Join(*l, ",") }

// UnmarshalYAML accepts a sequence of scalars or a comma-separated scalar.
func (l *List) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*l = SplitList(n.Value)
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

// SplitList splits a comma-separated list, dropping empty items and spaces.
func SplitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
