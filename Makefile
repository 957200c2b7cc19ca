# faultline — make run (a real test with a verdict), make test (everything CI runs).
GO      ?= go
BIN     := bin
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# Static binaries. bin/faultline-full is the whole harness (it also runs as raftnode when
# called by that name); bin/faultline is its lean front, built with the lean tag: it runs
# check and version itself, starting like a small program (no etcd client, Docker, FUSE
# or node linked), and hands every other command to faultline-full beside it (exec: the
# same process, arguments and exit code). go build ./cmd/faultline alone gives the whole
# harness as one binary.
export CGO_ENABLED = 0

.PHONY: build run run-raftnode test test-short unit fuzz bench bench-micro image zoo regressions clean-runs clean

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/faultline-full ./cmd/faultline
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -tags lean -o $(BIN)/faultline ./cmd/faultline
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/raftnode ./cmd/raftnode

# The default test: real etcd (the newest 3.7, built once from the Go module proxy and
# cached), 5 members, register workload, partitions + kills + pauses + packet faults, 60 s.
run: build
	$(BIN)/faultline test --target etcd --nodes 5 --workload register --nemesis partition,kill,pause,packet --time-limit 60s

# The same on faultline's own raftnode.
run-raftnode: build
	$(BIN)/faultline test --nodes 5 --workload register --nemesis partition,kill,pause --time-limit 60s

# The unit tests and the fuzz runs side by side: the unit tests mostly wait on clusters
# and runs, and the fuzzers, niced, take the CPU they leave. The fuzzers' output is
# printed when both are done; the exit code is the first failure's.
test:
	@log=$$(mktemp); \
	nice -n 10 $(MAKE) --no-print-directory fuzz >$$log 2>&1 & fuzz=$$!; \
	$(MAKE) --no-print-directory unit; unit=$$?; \
	wait $$fuzz; fz=$$?; cat $$log; rm -f $$log; \
	if [ $$unit -ne 0 ]; then exit $$unit; fi; exit $$fz

# The fast tier, with the race detector: every test that needs no root, no Docker and
# no cluster of real nodes (the run's whole lifecycle runs on the in-memory runtime and
# the simulated target, in synthetic time). About a minute here; CI runs `make test`.
test-short:
	CGO_ENABLED=1 $(GO) test -short -race -count=1 ./...

# -parallel 6: the integration tests that call t.Parallel (each on a cluster or a run
# of its own) wait on their clusters far more than they compute; go test's default is
# GOMAXPROCS, 2 here.
unit:
	$(GO) vet ./...
	$(GO) test -count=1 -parallel 6 -timeout 40m ./...

# Short fuzz runs of every fuzz target (the history readers, the checker); go test -fuzz
# takes one target at a time. The budget is a count of executions, not a duration: Go
# 1.26's coordinator can fail a run that found nothing with "context deadline exceeded"
# when a duration ends while a worker is mid-input (golang/go#75804, fixed in 1.27; CI
# hit it on FuzzCheck). Minimizing a new input is capped too, or it can take the whole
# budget of a short run.
FUZZTIME ?= 100000x
FUZZ_PKGS := ./history/ ./checker/ ./node/
fuzz:
	@for p in $(FUZZ_PKGS); do \
		for t in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			echo "fuzz $$p $$t ($(FUZZTIME))"; \
			$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 500x $$p || exit 1; \
		done; \
	done

# One table: faultline against its references (Porcupine called by a program of its own,
# a bare client loop, etcd), in one run (harness/bench). About 8 minutes here, more the
# first time (it builds etcd). Run it alone on the machine.
bench: build
	$(GO) build -o $(BIN)/faultline-bench ./cmd/faultline-bench
	$(GO) build -trimpath -ldflags '-s -w' -o $(BIN)/porcheck ./harness/bench/ref/porcheck
	$(BIN)/faultline-bench --faultline $(BIN)/faultline --porcheck $(BIN)/porcheck $(BENCH_FLAGS)

# The Go micro-benchmarks (node cluster, checker in process, history writer).
bench-micro:
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./node/... ./checker/... ./history/...

# The bug zoo, a campaign file: each raftnode --unsafe mode under the fault that should
# expose it (expected caught in 80% of its runs), and the correct node under every fault
# (expected valid in all), ZOO_RUNS seeds each; one table of detection rates and median
# time to the first anomaly, and an exit code that gates both. About 70 minutes with the
# defaults.
# ZOO_FLAGS passes more, e.g. ZOO_FLAGS='--runtime docker' or '--time-limit 30s' (every
# scenario; the file gives lease-read 120 s, the others 60 s).
ZOO_RUNS ?= 10
ZOO_FLAGS ?=
zoo: build
	$(BIN)/faultline campaign -f harness/campaign/zoo.yaml --runs $(ZOO_RUNS) $(ZOO_FLAGS)

# The catalogue of real bugs reproduced (examples/campaigns/regressions/, docs/regressions.md):
# each campaign runs a bug's buggy release (it must be caught) and its fixed one (it must
# pass); every one is run, and the exit code is the first failing campaign's, else 0.
# About 20 minutes a campaign (each builds its etcd releases once; the NATS releases
# are built here, into bin/). REGRESSIONS_FLAGS passes more, e.g. '--runs 2' or
# '--runtime process'.
REGRESSIONS_FLAGS ?=
regressions: build
	examples/nats/build.sh v2.10.22 v2.15.3
	@rc=0; export PATH="$(CURDIR)/bin:$$PATH"; for f in examples/campaigns/regressions/*.yaml; do \
		echo "== $$f"; $(BIN)/faultline campaign -f $$f $(REGRESSIONS_FLAGS); r=$$?; \
		if [ $$r -ne 0 ] && [ $$rc -eq 0 ]; then rc=$$r; fi; \
	done; exit $$rc

# The docker runtime's node image: FROM scratch around the static faultline binary
# (which runs raftnode when called so), tagged by content hash. Runs build it on demand.
image: build
	$(BIN)/faultline image

# Removes whatever runs left behind (processes, namespaces, bridges, rules).
clean-runs: build
	$(BIN)/faultline clean

clean:
	rm -rf $(BIN)
