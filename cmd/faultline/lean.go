//go:build lean

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/faultline/faultline/results"
)

// FullName is the whole binary the lean build hands its other commands to: beside it, or
// on PATH.
const FullName = "faultline-full"

// harnessCommands is empty: this build links no harness (no etcd client, Docker, FUSE
// or node), which is what makes check start fast. main hands those commands over.
var harnessCommands map[string]command

func main() {
	if leanCommand(os.Args[1:]) {
		os.Exit(profiled(os.Stderr, func() int { return int(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)) }))
	}
	err := handOver(os.Args)
	fmt.Fprintf(os.Stderr, "faultline: %v\n", err)
	os.Exit(int(results.ExitError))
}

// handOver replaces this process with the whole binary, given the same arguments (its
// name among them: a node program's name picks that program), environment and open
// files: the process id, signals and the exit code are the command's own. It returns
// only when it cannot.
func handOver(argv []string) error {
	full, err := fullBinary()
	if err != nil {
		return err
	}
	return fmt.Errorf("run %s: %w", full, syscall.Exec(full, argv, os.Environ()))
}

// fullBinary finds the whole binary: beside this one (after symlinks, so that a link to
// bin/faultline finds bin/faultline-full), else on PATH.
func fullBinary() (string, error) {
	dir := "?"
	if self, err := os.Executable(); err == nil {
		if self, err = filepath.EvalSymlinks(self); err == nil {
			dir = filepath.Dir(self)
			p := filepath.Join(dir, FullName)
			if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
				return p, nil
			}
		}
	}
	if p, err := exec.LookPath(FullName); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("this is faultline's lean build, which runs check and version itself and hands every other command to %s; "+
		"there is none in %s nor on PATH: build both with make build, or the whole harness as one binary with go build ./cmd/faultline", FullName, dir)
}
