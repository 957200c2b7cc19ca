package main

import (
	"os"
	"time"

	"github.com/faultline/faultline/checker/sim"
	"github.com/faultline/faultline/history"
)

func main() {
	for _, rev := range []bool{false, true} {
		events := sim.Simulate(sim.Config{Seed: 41, Ops: 1_000_000, Procs: 10, Info: 0.05, Keys: 8, OpsPerKey: 200, Revisions: rev})
		name := "/tmp/r/reg-1M.jsonl"
		if rev {
			name = "/tmp/r/reg-1M-rev.jsonl"
		}
		w, err := history.CreateWriter(name, time.Hour)
		if err != nil {
			panic(err)
		}
		for _, e := range events {
			if err := w.Append(e); err != nil {
				panic(err)
			}
		}
		if err := w.Close(); err != nil {
			panic(err)
		}
	}
	_ = os.Stdout
}
