#!/usr/bin/env bash
# Old schedule vs the budgeted default on the racy fixture (optionally more targets): time to the
# first race, wall time, and problems found by each within the same wall time, side by side.
# "Old" is the pre-budget defaults given as overrides: suites with a fixed 1800 s timeout, stress
# spending a fixed 180 s whole, 60 s scenario timeout. Runs one after the other, never at once.
# Usage: FTREVIEW=path/to/ftreview bench/schedule/run.sh [TARGET ...]   (default: the racy fixture)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ftreview="${FTREVIEW:-$root/target/release/ftreview}"
out="${SCHEDULE_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/ftreview-schedule}"

if [[ ! -x "$ftreview" ]]; then
  echo "error: no ftreview binary at '$ftreview'; build it (cargo build --release -p ftreview) or set FTREVIEW" >&2
  exit 2
fi
mkdir -p "$out"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("$root/test-fixtures/racy_ext")

# One review, its progress in NAME.log and its wall seconds in NAME.wall; a run exits 1 when it
# has findings, so only a missing results.json is a failure. A finished run is not redone.
review() {
  local name="$1"; shift
  if [[ ! -f "$out/$name/results.json" || ! -f "$out/$name.wall" ]]; then
    rm -rf "${out:?}/$name"
    local start; start=$(date +%s.%N)
    "$ftreview" run "$@" --out "$out/$name" >"$out/$name.log" 2>&1 || true
    python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)" >"$out/$name.wall"
  fi
  [[ -f "$out/$name/results.json" ]] || { echo "error: $name left no results.json; see $out/$name.log" >&2; exit 1; }
}

for target in "${targets[@]}"; do
  name="$(basename "$target" | tr -c 'A-Za-z0-9._\n-' '_')"
  review "$name-old" "$target" --phases tests,parallel,stress --timeout 1800 --stress-budget 180 --scenario-timeout 60
  review "$name-budgeted" "$target"
  echo "## $target (load at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 "$here/measure.py" "$out/$name-old" "$out/$name-budgeted"
done
