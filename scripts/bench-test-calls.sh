#!/usr/bin/env bash
# Benchmark: what recording the test suite's calls buys the stress phase, and what it costs
# the test phase, on the racy fixture.
#   recall    planted races found by the plain suite + stress (`--phases tests,stress`, no
#             pytest-run-parallel, so every race is the stress phase's) with the recorded
#             calls and with --no-test-calls, per seed; overall and for the races that need
#             the suite's arguments (`needs_test_calls` in expected.yaml)
#   overhead  the plain suite alone (`--phases tests`), with recording and without, REPS pairs
#             run in turn: the test phase's wall time (run.json) and pytest's own session
#             time; prints the ratio of medians (target: <= 1.10)
#
# Usage: scripts/bench-test-calls.sh [SEED...]      (default seeds: 0 1 2; `-`: overhead only)
#   FTREVIEW_PYTHON  the TSan free-threaded interpreter (required)
#   FTREVIEW         the ftreview binary (default: target/debug/ftreview, built if missing)
#   BUDGET           --budget of each run (default: 7m)
#   REPS             overhead pairs (default: 5)
# Each run builds the fixture once (cached after the first) and takes its budget; run it on a
# quiet machine, the figures are only as steady as the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${FTREVIEW_PYTHON:?set FTREVIEW_PYTHON to the TSan free-threaded interpreter}"
export FTREVIEW_PYTHON
ftreview=${FTREVIEW:-target/debug/ftreview}
[[ -x $ftreview ]] || cargo build -p ftreview
budget=${BUDGET:-7m}
reps=${REPS:-5}
seeds=("$@")
[[ ${#seeds[@]} -gt 0 ]] || seeds=(0 1 2)
fixture=test-fixtures/racy_ext
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-test-calls.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "scratch: $work"

run() { # DIR ARGS...: ftreview run on the fixture into DIR (exit 1 means findings)
  local dir=$1
  shift
  "$ftreview" run "$fixture" -o "$dir" --json --quiet "$@" >"$dir.out" 2>"$dir.err" || [[ $? -eq 1 ]] ||
    { tail -5 "$dir.err"; echo "ftreview run $* failed" >&2; exit 2; }
}

# found DIR: "<planted found>/<planted> <needing found>/<needing> <ids found>" of a run.
found() {
  python3 - "$fixture/expected.yaml" "$1/results.json" <<'EOF'
import json, sys, yaml
expected = yaml.safe_load(open(sys.argv[1]))["races"]
findings = [f for f in json.load(open(sys.argv[2]))["findings"] if f["category"] == "race"]

def at(location, function, lines):
    return location.get("function") == function and location.get("line") in lines

def holds(site, race):
    # One side of the racing pair at the race and, when it names a peer, the other at the peer.
    sides, peer = site["locations"], race.get("peer")
    return any(at(side, race["function"], race["lines"])
               and (peer is None or any(j != i and at(other, peer["function"], peer["lines"])
                                        for j, other in enumerate(sides)))
               for i, side in enumerate(sides))

def found(race):
    return any(holds(site, race) for f in findings for site in f["sites"])

hits = [r for r in expected if found(r)]
needing = [r for r in expected if r.get("needs_test_calls")]
print(f"{len(hits)}/{len(expected)} {sum(found(r) for r in needing)}/{len(needing)} "
      + ",".join(r["id"] for r in hits))
EOF
}

[[ ${seeds[*]} != - ]] || seeds=()
[[ ${#seeds[@]} -eq 0 ]] || echo -e "\nrecall (--phases tests,stress --budget $budget)"
[[ ${#seeds[@]} -eq 0 ]] || printf '%-6s %-16s %-16s %-22s %-22s\n' seed "all: recorded" "all: catalogue" "need-args: recorded" "need-args: catalogue"
for seed in "${seeds[@]+"${seeds[@]}"}"; do
  run "$work/rec-$seed" --phases tests,stress --budget "$budget" --seed "$seed"
  run "$work/cat-$seed" --phases tests,stress --budget "$budget" --seed "$seed" --no-test-calls
  read -r rec_all rec_need rec_ids <<<"$(found "$work/rec-$seed")"
  read -r cat_all cat_need cat_ids <<<"$(found "$work/cat-$seed")"
  printf '%-6s %-16s %-16s %-22s %-22s\n' "$seed" "$rec_all" "$cat_all" "$rec_need" "$cat_need"
  echo "       recorded:  $rec_ids"
  echo "       catalogue: $cat_ids"
done

echo
echo "test-phase overhead: the plain suite alone (--phases tests), recording vs --no-test-calls, $reps pairs in turn"
for rep in $(seq 1 "$reps"); do
  run "$work/over-rec-$rep" --phases tests --budget "$budget"
  run "$work/over-cat-$rep" --phases tests --budget "$budget" --no-test-calls
done
python3 - "$work" "$reps" <<'EOF'
import json, re, statistics, sys
work, reps = sys.argv[1], int(sys.argv[2])

def tests_phase(run):
    """(the phase's wall time, pytest's own session time) of a run's plain suite."""
    record = json.load(open(f"{work}/{run}/run.json"))
    phase = next(p for p in record["phases"] if p["phase"] == "tests")
    output = open(f"{work}/{run}/logs/tests/output.log").read()
    session = re.findall(r" in ([0-9.]+)s", output)
    return phase["duration_secs"], float(session[-1]) if session else float("nan")

for label, column in (("phase wall time", 0), ("pytest session", 1)):
    on = [tests_phase(f"over-rec-{r}")[column] for r in range(1, reps + 1)]
    off = [tests_phase(f"over-cat-{r}")[column] for r in range(1, reps + 1)]
    print(f"{label:16} with recording: " + " ".join(f"{x:.1f}s" for x in on)
          + "; without: " + " ".join(f"{x:.1f}s" for x in off)
          + f"; ratio of medians {statistics.median(on) / statistics.median(off):.3f} (target <= 1.10)")
EOF
