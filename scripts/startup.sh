#!/bin/bash
# Time from `faultline test` to the first acknowledged operation, 5 nodes, for the docker
# and process runtimes, with a cold cache (docker: no node image yet, so it is built;
# process: the page cache dropped, as root) and a warm one (the same, run again).
#   scripts/startup.sh [RUNS]
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
FL=bin/faultline
make -s build >/dev/null || exit 3
R=$(mktemp -d); trap 'rm -rf "$R"' EXIT
first_ack() { # first_ack RUNDIR: seconds from the run's start to its first ok client op
  python3 - "$1/history.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("type") == "ok" and str(e.get("process")) != "nemesis":
        print("%.2f" % (e["time"] / 1e9)); break
PY
}
one() { # one RUNTIME: prints the seconds from the command's start to the first ack
  local t0 dir
  t0=$(date +%s.%N)
  $FL test --runtime "$1" --nodes 5 --nemesis none --time-limit 3s --recovery 0s --results "$R" >"$R/out" 2>&1 || { echo "run failed: $(tail -2 "$R/out")" >&2; return 1; }
  dir=$(readlink -f "$R/latest")
  python3 - "$t0" "$(first_ack "$dir")" "$dir/test.json" <<'PY'
import json, sys, datetime
t0, ack = float(sys.argv[1]), float(sys.argv[2])
start = datetime.datetime.fromisoformat(json.load(open(sys.argv[3]))["start_time"].replace("Z", "+00:00")).timestamp()
print("%.2f" % (start - t0 + ack))
PY
}
for rt in docker process; do
  if [ $rt = docker ] && ! docker info >/dev/null 2>&1; then echo "docker: no daemon, skipped"; continue; fi
  for i in $(seq "$RUNS"); do
    if [ $rt = docker ]; then
      docker images -q --filter label=faultline=1 | xargs -r docker rmi -f >/dev/null 2>&1
    else
      sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null
    fi
    cold=$(one $rt) || exit 3
    warm=$(one $rt) || exit 3
    echo "$rt run $i: cold ${cold}s, warm ${warm}s (faultline test started to first acknowledged op)"
  done
done
