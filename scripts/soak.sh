#!/bin/bash
# One long run with the harness's RSS sampled every minute: it must stay flat after
# warm-up (the history is in memory, so it grows with the operations; what must not grow
# is anything else).
#   scripts/soak.sh [DURATION] [faultline test flags...]     e.g. scripts/soak.sh 60m --runtime process
set -uo pipefail
cd "$(dirname "$0")/.."
D=${1:-60m}; shift $(($# > 0 ? 1 : 0))
FL=${FL:-bin/faultline}
[ "$FL" != bin/faultline ] || make -s build >/dev/null || exit 3
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
$FL test --nemesis all --time-limit "$D" --results "$R" "$@" >"$R/out" 2>&1 &
pid=$!
echo "minute rss_mib ops_so_far"
m=0
while kill -0 $pid 2>/dev/null; do
  rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status 2>/dev/null)
  ops=$(wc -l < "$(ls -t "$R"/*/*/history.jsonl 2>/dev/null | head -1)" 2>/dev/null || echo 0)
  [ -n "$rss" ] && echo "$m $rss $ops"
  sleep 60; m=$((m + 1))
done
wait $pid; rc=$?
grep -E '^(verdict|ops|stats|error)' "$R/out"
echo "exit $rc"
