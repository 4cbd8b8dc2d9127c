#!/usr/bin/env bash
# Site pairs -> problems, plan lines, reproducer lines and rates on the racy fixture (phase times
# pinned as in the e2e tests) and on multidict 6.7.1 at default settings.
# Usage: FTREVIEW=path/to/ftreview bench/grain/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${GRAIN_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/ftreview-grain}"
# shellcheck source=../review.sh
source "$here/../review.sh"

review racy "$root/test-fixtures/racy_ext" --stress-budget 420 --timeout 150
review multidict multidict==6.7.1
python3 "$here/measure.py" "$out/racy" "$out/multidict"
