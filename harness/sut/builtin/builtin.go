// Package builtin links the targets faultline ships into a program: importing it
// registers each of them with package sut. The harness imports it; a program built on
// the harness gets them all.
package builtin

import (
	// Each target registers itself in an init function.
	_ "github.com/faultline/faultline/harness/sut/etcd"
	_ "github.com/faultline/faultline/harness/sut/file"
	_ "github.com/faultline/faultline/harness/sut/raftnode"
)
