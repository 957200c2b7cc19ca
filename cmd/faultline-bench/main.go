// Command faultline-bench is `make bench`: faultline measured side by side with its
// references (package harness/bench), one table of ratios.
//
//	faultline-bench [--faultline bin/faultline] [--porcheck bin/porcheck]
//	                [--only startup,checker,recorder,node,bringup,memory] [--quick]
//	                [--ours 'TEST FLAGS'] [--reference 'TEST FLAGS']
//	faultline-bench record N FILE stream|keep
//	                              record N operations, print this process's memory (JSON)
//
// Called by the name of a node program a target registered (the raftnode target links
// it so), it runs that program.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/faultline/faultline/results"

	"github.com/faultline/faultline/harness/bench"
	"github.com/faultline/faultline/harness/sut"
)

func main() {
	if prog, ok := sut.Program(filepath.Base(os.Args[0])); ok {
		os.Exit(prog(os.Args[1:]))
	}
	os.Exit(int(run()))
}

func run() results.ExitCode {
	if len(os.Args) == 5 && os.Args[1] == "record" {
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "faultline-bench record N FILE stream|keep:", err)
			return results.ExitUsage
		}
		m, err := bench.RecordMemory(n, os.Args[3], os.Args[4])
		if err != nil {
			fmt.Fprintln(os.Stderr, "faultline-bench record:", err)
			return results.ExitError
		}
		_ = json.NewEncoder(os.Stdout).Encode(m)
		return results.ExitValid
	}
	fs := flag.NewFlagSet("faultline-bench", flag.ContinueOnError)
	fl := fs.String("faultline", "bin/faultline", "the faultline binary to measure")
	porcheck := fs.String("porcheck", "bin/porcheck", "the reference checker (go build -o bin/porcheck ./harness/bench/ref/porcheck)")
	only := fs.String("only", "", "comma-separated sections: startup,checker,recorder,node,bringup,memory (default: all)")
	quick := fs.Bool("quick", false, "shorter measurements: a smoke test of the bench, not figures")
	ours := fs.String("ours", "", "the flags of `faultline test` that name the system of the recorder and node rows (default: its default target)")
	reference := fs.String("reference", "--target etcd", "the flags of `faultline test` that name the system the node rows measure against")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return results.ExitUsage
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline-bench:", err)
		return results.ExitError
	}
	faultline, err := filepath.Abs(*fl)
	if err == nil {
		_, err = os.Stat(faultline)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faultline-bench: --faultline %s: %v (make build)\n", *fl, err)
		return results.ExitUsage
	}
	refcheck, err := filepath.Abs(*porcheck)
	if err == nil {
		_, err = os.Stat(refcheck)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "faultline-bench: --porcheck %s: %v (make bench builds it)\n", *porcheck, err)
		return results.ExitUsage
	}
	dir, err := os.MkdirTemp("", "faultline-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline-bench:", err)
		return results.ExitError
	}
	defer os.RemoveAll(dir)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := bench.Options{Faultline: faultline, Self: self, RefCheck: refcheck, Dir: dir, Quick: *quick, Log: os.Stderr,
		Ours: strings.Fields(*ours), Reference: strings.Fields(*reference)}
	if *only != "" {
		o.Only = strings.Split(*only, ",")
	}
	t0 := time.Now()
	rows, err := bench.Run(ctx, o)
	fmt.Printf("\nfaultline bench, %s, %s (ratios: faultline / reference, measured side by side in this run)\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), time.Since(t0).Round(time.Second))
	bench.Print(os.Stdout, rows)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faultline-bench:", err)
		return results.ExitError
	}
	return results.ExitValid
}
