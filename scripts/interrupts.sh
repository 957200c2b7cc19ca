#!/bin/bash
# Interrupts N runs of faultline test at random moments — SIGINT, SIGTERM, or SIGKILL of
# the harness followed by `faultline clean` — and checks after each that nothing is left
# behind (no node process, namespace, host link or bridge, nftables table on the host,
# container, network or volume) and that `faultline check` still reads the run's history
# and judges it (exit 0-2).
#   scripts/interrupts.sh [RUNTIME] [N] [SIGNAL] [faultline test flags...]
#   SIGNAL is INT, TERM, KILL, or mix (each run draws one of the three)
#   e.g. scripts/interrupts.sh docker 20 mix --target etcd
set -uo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-process}; N=${2:-10}; SIG=${3:-INT}
shift $(($# < 3 ? $# : 3))
FL=${FL:-bin/faultline}
[ "$FL" != bin/faultline ] || make -s build >/dev/null || exit 3
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
# leftovers RUNID: what of that run is still on this host (other runs, live or not, may
# come and go meanwhile: only this one's objects count), and any faultline table on the
# host's own nftables (which no run may ever make).
leftovers() {
  local id=$1 out=""
  if [ -n "$id" ]; then
    for p in /proc/[0-9]*; do grep -qz "^FAULTLINE_RUN=$id\$" "$p/environ" 2>/dev/null && out+=" pid ${p#/proc/}"; done
    out+=$(ip netns list 2>/dev/null | grep -- "faultline-$id" | tr '\n' ' ')
    out+=$(ip -o link 2>/dev/null | grep -o " fl-$id" | tr '\n' ' ')
    if docker info >/dev/null 2>&1; then
      out+=$(docker ps -aq --filter "label=faultline.run=$id" | tr '\n' ' ')
      out+=$(docker network ls -q --filter "label=faultline.run=$id" | tr '\n' ' ')
      out+=$(docker volume ls -q --filter "label=faultline.run=$id" | tr '\n' ' ')
    fi
  fi
  out+=$(nft list tables 2>/dev/null | grep faultline)
  echo -n "$out"
}
signals=(INT TERM KILL)
clean=0; checked=0; badexit=0
for i in $(seq 1 "$N"); do
  sig=$SIG
  [ "$SIG" = mix ] && sig=${signals[$((RANDOM % 3))]}
  at=$(( (RANDOM % 40) + 1 ))  # from start-up to the checking after a 30 s run
  $FL test --runtime "$RUNTIME" --nodes 5 --nemesis partition,kill,pause --time-limit 30s \
    --seed "$i" --results "$R" "$@" >"$R/out$i" 2>&1 &
  pid=$!
  sleep "$at"
  kill -"$sig" "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  # An interrupted run is exit 3 (1 if it found a violation first; 0-2 if it had
  # finished before the signal); a SIGKILLed one dies with 137.
  case "$sig:$rc" in
    KILL:137|*:0|*:1|*:2|INT:3|TERM:3) ;;
    *) badexit=$((badexit+1)); echo "run $i: SIG$sig gave exit $rc: $(tail -2 "$R/out$i" | tr '\n' ' ')" ;;
  esac
  [ "$sig" = KILL ] && $FL clean >"$R/clean$i" 2>&1
  sleep 1
  hist=$(ls -td "$R"/*/*/ 2>/dev/null | grep -v latest | head -1)
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("run_id",""))' "$hist/test.json" 2>/dev/null)
  left=$(leftovers "$id")
  $FL check "$hist" >"$R/check$i" 2>&1; crc=$?
  [ "$crc" -le 2 ] && checked=$((checked+1))
  if [ -z "$left" ]; then clean=$((clean+1)); else echo "run $i: LEFT BEHIND: $left"; fi
  echo "run $i: SIG$sig after ${at}s, exit $rc; check exit $crc: $(grep -m1 '^verdict' "$R/check$i")"
  [ -z "$left" ] || $FL clean >/dev/null 2>&1  # don't let one leftover spoil the next runs
  rm -rf "$R"/*/  # the next run's directory is the only one
done
echo "$RUNTIME, SIG$SIG: $clean/$N runs left nothing behind; $checked/$N histories checked (exit 0-2); $badexit unexpected exit codes"
[ "$clean" = "$N" ] && [ "$checked" = "$N" ] && [ "$badexit" = 0 ]
