// Package vclock gives one running process a clock of its own, with no help from the
// program: it attaches to the process with ptrace, maps two pages into it (code, then
// data), and overwrites the entry of the vDSO's clock_gettime, gettimeofday and time
// with a jump to that code. The code asks the kernel by syscall and moves the answer
// by the clock the data page holds; the harness changes that clock by writing the page
// through /proc/PID/mem, with the process running and no longer traced.
//
// Every program that reads the time through the vDSO is reached: glibc's
// clock_gettime, gettimeofday and time, and Go's runtime (time.Now, timers, sleeps),
// which calls the vDSO itself even in static binaries. A program that makes the
// syscall itself, or that was given no vDSO, is not; nor is a process exec'd later
// (a new image gets a new vDSO): the caller patches each start again.
//
// Two groups of clocks are set apart: the wall clocks (CLOCK_REALTIME and its coarse
// twin) and the monotonic ones (CLOCK_MONOTONIC, _RAW, _COARSE and CLOCK_BOOTTIME).
// The wall clocks read true time + Offset, running at Rate from the Set on: a jump
// either way, a clock that runs slow or fast, or both; the zero Setting (Rate 0 counts
// as 1) is true time again. The monotonic clocks never run backwards, as the kernel
// promises: a Set jumps them forward to Offset ahead of true time if that is further
// on than they are, and makes them run at Rate from where they are; the zero Setting
// ends a rate and keeps them where they got. (A monotonic step back would hold every
// timer of a program — a Go program's sleeps, tickers and timeouts — until its clock
// caught up: a pause, not a clock fault.) The patch stays in place, harmless.
//
// The cost: a patched process reads the time by syscall, not from the vDSO's memory,
// for the rest of its life (BenchmarkTimeNowPatched: 2.2 µs per Go time.Now here, 48 ns
// unpatched). Calling the vDSO's own code from the replacement (its prologue moved
// aside) would remove it.
//
// amd64 Linux only; elsewhere Supported says why not.
package vclock

import (
	"errors"
	"time"
)

// Setting is one group of clocks: Offset from the true clock, running at Rate times
// real time from the moment it is set (0 or 1: real time).
type Setting struct {
	Offset time.Duration
	Rate   float64
}

// True reports whether s is the true clock.
func (s Setting) True() bool { return s.Offset == 0 && (s.Rate == 0 || s.Rate == 1) }

// Clocks are a process's two groups of clocks.
type Clocks struct {
	Wall, Mono Setting
}

// ErrNoVDSO is returned for a process that has no vDSO, or none with the functions
// vclock replaces.
var ErrNoVDSO = errors.New("vclock: the process has no vDSO clock functions to replace")
