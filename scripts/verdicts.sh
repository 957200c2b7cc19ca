#!/bin/bash
# Runs one faultline test with seeds FIRST..FIRST+N-1 and prints a markdown table of the
# verdicts, then a tally; exits 1 if any run's exit code is not the one expected.
#   scripts/verdicts.sh [-n N] [-s FIRST] [-e EXPECT] [-r RESULTS] -- <faultline test flags>
# EXPECT is the exit code every run should give: 0 (valid, the default) or 1 (caught:
# then the tally says how many were, and the script exits 1 only if none was).
# e.g.  scripts/verdicts.sh -n 10 -- --target etcd --runtime process --nemesis partition,kill,pause,packet
set -uo pipefail
cd "$(dirname "$0")/.."
N=10 FIRST=1 EXPECT=0 RESULTS=
while getopts "n:s:e:r:" o; do
  case $o in
    n) N=$OPTARG ;; s) FIRST=$OPTARG ;; e) EXPECT=$OPTARG ;; r) RESULTS=$OPTARG ;;
    *) sed -n 2,7p "$0"; exit 4 ;;
  esac
done
shift $((OPTIND - 1))
[ "${1:-}" = "--" ] && shift
FL=${FL:-bin/faultline} # FL=path runs another build (e.g. a copy, while bin/ is rebuilt)
[ "$FL" != bin/faultline ] || make -s build >/dev/null || exit 3
R=${RESULTS:-$(mktemp -d)}
mkdir -p "$R" || exit 3
echo "faultline test $* (seeds $FIRST..$((FIRST + N - 1)), results $R)"
echo
echo "| seed | exit | verdict | ops ok | availability (during faults) | p99 | faults |"
echo "|---|---|---|---|---|---|---|"
declare -A tally
for ((seed = FIRST; seed < FIRST + N; seed++)); do
  out=$R/out-$seed.txt
  $FL test "$@" --seed "$seed" --results "$R" >"$out" 2>&1
  rc=$?
  tally[$rc]=$((${tally[$rc]:-0} + 1))
  python3 - "$out" "$seed" "$rc" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def grab(pat, default="-"):
    m = re.search(pat, text, re.M)
    return m.group(1) if m else default
print("| %s | %s | %s | %s | %s (%s) | %s | %s |" % (
    sys.argv[2], sys.argv[3], grab(r"^verdict: (\S+)"), grab(r"^ops: .*?(\d+) ok"),
    grab(r"availability ([\d.]+%)"), grab(r"\(([\d.]+%) during faults"),
    grab(r"p99 ([\d.]+\w+)"), grab(r"^faults:\s+(.*)$").strip()))
PY
done
echo
line="exits:"
for rc in "${!tally[@]}"; do line+=" $rc×${tally[$rc]}"; done
echo "$line (of $N)"
if [ "$EXPECT" = 1 ]; then
  echo "caught (exit 1) in ${tally[1]:-0} of $N"
  [ "${tally[1]:-0}" -gt 0 ] || exit 1
  exit 0
fi
[ "${tally[$EXPECT]:-0}" = "$N" ] || exit 1
