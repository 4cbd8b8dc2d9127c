#!/usr/bin/env bash
# Site pairs -> problems, plan lines, reproducer lines and rates on the racy fixture (phase times
# pinned as in the e2e tests) and on multidict 6.7.1 at default settings.
# Usage: FTREVIEW=path/to/ftreview bench/grain/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
ftreview="${FTREVIEW:-$root/target/release/ftreview}"
out="${GRAIN_OUT:-${XDG_CACHE_HOME:-$HOME/.cache}/ftreview-grain}"

if [[ ! -x "$ftreview" ]]; then
  echo "error: no ftreview binary at '$ftreview'; build it (cargo build --release -p ftreview) or set FTREVIEW" >&2
  exit 2
fi
mkdir -p "$out"

# A run exits 1 when it has findings; only a missing results.json is a failure.
review() {
  local name="$1"; shift
  if [[ ! -f "$out/$name/results.json" ]]; then
    rm -rf "$out/$name"
    "$ftreview" run "$@" --out "$out/$name" >"$out/$name.log" 2>&1 || true
  fi
  [[ -f "$out/$name/results.json" ]] || { echo "error: $name left no results.json; see $out/$name.log" >&2; exit 1; }
}

review racy "$root/test-fixtures/racy_ext" --stress-budget 420 --timeout 150
review multidict multidict==6.7.1
python3 "$here/measure.py" "$out/racy" "$out/multidict"
