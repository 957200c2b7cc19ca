package main

import (
	"fmt"
	"github.com/faultline/faultline/results"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
)

// profiled runs f under the profiles the environment asks for: FAULTLINE_CPUPROFILE=FILE
// writes a CPU profile of the whole command (or of a raftnode until it is stopped with
// SIGTERM), FAULTLINE_MEMPROFILE=FILE a heap profile at its end (go tool pprof reads
// both). They are how the performance work was measured.
func profiled(stderr io.Writer, f func() int) int {
	if path := os.Getenv("FAULTLINE_CPUPROFILE"); path != "" {
		out, err := os.Create(path)
		if err != nil {
			fmt.Fprintf(stderr, "faultline: cpu profile: %v\n", err)
			return int(results.ExitError)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			fmt.Fprintf(stderr, "faultline: cpu profile: %v\n", err)
			return int(results.ExitError)
		}
		defer pprof.StopCPUProfile()
	}
	if path := os.Getenv("FAULTLINE_MEMPROFILE"); path != "" {
		runtime.MemProfileRate = 64 << 10
		defer func() {
			out, err := os.Create(path)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(out, 0)
				out.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "faultline: memory profile: %v\n", err)
			}
		}()
	}
	return f()
}
