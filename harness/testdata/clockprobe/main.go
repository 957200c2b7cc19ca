// Command clockprobe prints, every 10 ms, the wall clock (time.Now) and the Go
// runtime's monotonic clock as it sees them, in ns: the node program of the tests that
// watch the clock fault take effect on a static Go binary.
package main

import (
	"fmt"
	"time"
	_ "unsafe" // go:linkname
)

//go:linkname nanotime runtime.nanotime
func nanotime() int64

func main() {
	for {
		fmt.Printf("%d %d\n", time.Now().UnixNano(), nanotime())
		time.Sleep(10 * time.Millisecond)
	}
}
