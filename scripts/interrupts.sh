#!/bin/bash
# Interrupts N runs of faultline test at random moments (SIGINT, or SIGKILL of the harness
# followed by `faultline clean`) and checks that nothing is left behind and that every
# run's history can still be checked.
#   scripts/interrupts.sh [RUNTIME] [N] [SIGNAL]     e.g. scripts/interrupts.sh docker 10 INT
set -uo pipefail
cd "$(dirname "$0")/.."
RUNTIME=${1:-process}; N=${2:-10}; SIG=${3:-INT}
FL=bin/faultline
make -s build >/dev/null || exit 3
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
leftovers() {
  local out=""
  for p in /proc/[0-9]*; do grep -qz '^FAULTLINE_RUN=' "$p/environ" 2>/dev/null && out+=" pid ${p#/proc/}"; done
  out+=$(ip netns list 2>/dev/null | grep faultline)
  out+=$(ip -o link 2>/dev/null | grep -o ' fl-[a-z0-9]*')
  if docker info >/dev/null 2>&1; then
    out+=$(docker ps -aq --filter label=faultline)
    out+=$(docker network ls -q --filter label=faultline)
    out+=$(docker volume ls -q --filter label=faultline)
  fi
  echo -n "$out"
}
clean=0; checked=0
for i in $(seq 1 "$N"); do
  at=$(( (RANDOM % 25) + 2 ))
  $FL test --runtime "$RUNTIME" --nodes 5 --nemesis partition,kill,pause --time-limit 40s \
    --seed "$i" --results "$R" >"$R/out$i" 2>&1 &
  pid=$!
  sleep "$at"
  kill -"$SIG" "$pid" 2>/dev/null
  wait "$pid"; rc=$?
  [ "$SIG" = KILL ] && $FL clean >"$R/clean$i" 2>&1
  sleep 1
  left=$(leftovers)
  hist=$(ls -td "$R"/raftnode-register/*/ 2>/dev/null | head -1)
  $FL check "$hist" >"$R/check$i" 2>&1; crc=$?
  [ "$crc" -le 2 ] && checked=$((checked+1))
  if [ -z "$left" ]; then clean=$((clean+1)); else echo "run $i: LEFT BEHIND: $left"; fi
  echo "run $i: SIG$SIG after ${at}s, exit $rc, check exit $crc ($(grep -m1 '^verdict' "$R/check$i"))"
done
echo "$RUNTIME, SIG$SIG: $clean/$N runs left nothing behind; $checked/$N histories checked (exit 0-2)"
[ "$clean" = "$N" ] && [ "$checked" = "$N" ]
