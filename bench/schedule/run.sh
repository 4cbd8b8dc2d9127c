#!/usr/bin/env bash
# Old schedule vs the budgeted default on the racy fixture (optionally more targets): time to the
# first race, wall time, and problems found by each within the same wall time, side by side.
# "Old" is the pre-budget defaults given as overrides: suites with a fixed 1800 s timeout, stress
# spending a fixed 180 s whole, 60 s scenario timeout. Runs one after the other, never at once.
# Usage: FTREVIEW=path/to/ftreview bench/schedule/run.sh [TARGET ...]   (default: the racy fixture)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${SCHEDULE_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/ftreview-schedule}"
# shellcheck source=../review.sh
source "$here/../review.sh"
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("$root/test-fixtures/racy_ext")

for target in "${targets[@]}"; do
  name="$(basename "$target" | tr -c 'A-Za-z0-9._\n-' '_')"
  review "$name-old" "$target" --phases tests,parallel,stress --timeout 1800 --stress-budget 180 --scenario-timeout 60
  review "$name-budgeted" "$target"
  echo "## $target (load at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 "$here/measure.py" "$out/$name-old" "$out/$name-budgeted"
done
