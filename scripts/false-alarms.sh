#!/bin/bash
# False alarms, measured: N runs of a correct target under every fault, rotating the
# workload (register, set, append) and the runtime (process, docker), seeds FIRST...;
# a table of every run and a tally. Exits 1 if any run was invalid.
#   scripts/false-alarms.sh [N] [FIRST] [faultline test flags...]
set -uo pipefail
cd "$(dirname "$0")/.."
N=${1:-50}; FIRST=${2:-1}; shift $(($# < 2 ? $# : 2))
FL=${FL:-bin/faultline}
[ "$FL" != bin/faultline ] || make -s build >/dev/null || exit 3
R=$(mktemp -d)
workloads=(register set append); runtimes=(process docker)
echo "| run | seed | runtime | workload | exit | verdict | why (unknown) |"
echo "|---|---|---|---|---|---|---|"
declare -A tally
for ((i = 0; i < N; i++)); do
  seed=$((FIRST + i)); w=${workloads[$((i % 3))]}; rt=${runtimes[$(((i / 3) % 2))]}
  $FL test --runtime "$rt" --workload "$w" --nemesis all --time-limit 60s --seed "$seed" --results "$R" "$@" >"$R/out$i" 2>&1
  rc=$?; tally[$rc]=$((${tally[$rc]:-0} + 1))
  why=$(grep -m1 '^unknown:' "$R/out$i" | cut -c10-120)
  echo "| $((i + 1)) | $seed | $rt | $w | $rc | $(grep -m1 -o '^verdict: [A-Z]*' "$R/out$i" | cut -d' ' -f2) | $why |"
done
line="exits:"; for rc in "${!tally[@]}"; do line+=" $rc×${tally[$rc]}"; done
echo "$line (of $N; results in $R)"
[ "${tally[1]:-0}" = 0 ]
