// Command porcheck is the reference checker of `make bench` (package refcheck):
// Porcupine called directly on a history file, no report, a small program's start-up.
//
//	porcheck FILE     prints ok, illegal or unknown; exits 0, 1 or 2 (as faultline check)
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/faultline/faultline/harness/bench/refcheck"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: porcheck FILE")
		os.Exit(4)
	}
	v, err := refcheck.Check(os.Args[1], 10*time.Minute)
	if err != nil {
		fmt.Fprintln(os.Stderr, "porcheck:", err)
		os.Exit(3)
	}
	fmt.Println(v)
	os.Exit(map[string]int{"ok": 0, "illegal": 1, "unknown": 2}[v])
}
