package workload_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/faultline/faultline/history"
	"github.com/faultline/faultline/workload"
)

// A register workload with one client against the simulated store: the seed fixes
// every operation, so the history's beginning is always the same.
func ExampleRun() {
	store := workload.NewSimStore(1)
	rec := history.NewRecorder(time.Now(), nil)
	cfg := workload.Config{Workload: "register", Concurrency: 1, Keys: 2, OpsPerKey: 4,
		TimeLimit: 20 * time.Millisecond, Seed: 27}
	stats, err := workload.Run(context.Background(), cfg, store.Opener(3), rec)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range rec.Events()[:16] {
		fmt.Println(strings.TrimSpace(fmt.Sprintln(e.Process, e.Type, e.F, e.Key, e.Value, e.Node, e.Error)))
	}
	// r0 and r1 had their 4 operations each: r2 and r3 took their slots.
	fmt.Println(stats.Keys[:3])
	// Output:
	// 0 invoke write r0 "1" n1
	// 0 ok write r0 "1" n1
	// 0 invoke cas r1 [0 1] n1
	// 0 fail cas r1 [0 1] n1 mismatch
	// 0 invoke read r0 nil n1
	// 0 ok read r0 "1" n1
	// 0 invoke write r0 "2" n1
	// 0 ok write r0 "2" n1
	// 0 invoke read r0 nil n1
	// 0 ok read r0 "2" n1
	// 0 invoke write r1 "2" n1
	// 0 ok write r1 "2" n1
	// 0 invoke cas r1 [2 3] n1
	// 0 ok cas r1 [2 3] n1
	// 0 invoke read r1 nil n1
	// 0 ok read r1 "3" n1
	// [r0 r1 r3]
}
