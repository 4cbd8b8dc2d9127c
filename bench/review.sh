# Sourced by the bench scripts that run whole reviews: finds the ftreview binary and runs one
# review. The caller sets `out`, the directory the runs are kept in, before sourcing.

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ftreview="${FTREVIEW:-$root/target/release/ftreview}"
if [[ ! -x "$ftreview" ]]; then
  echo "error: no ftreview binary at '$ftreview'; build it (cargo build --release -p ftreview) or set FTREVIEW" >&2
  exit 2
fi
mkdir -p "$out"

# `review NAME ARGS...`: its progress in NAME.log and its wall seconds in NAME.wall; a run exits 1
# when it has findings, so only a missing results.json is a failure. A finished run is not redone.
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
