#!/usr/bin/env bash
# Test-requirement installs into the TSan interpreter's venvs: uv (what ftreview uses) vs pip
# running under that interpreter (its fallback), side by side, with empty caches each time.
# Usage: PYTHON=path/to/python3.13t [UV=path/to/uv] bench/install/run.sh [REQUIREMENTS_FILE ...]
# Without files it measures the harness's own set (pytest, pytest-run-parallel).
set -euo pipefail

python="${PYTHON:?set PYTHON to the TSan free-threaded interpreter (ftreview python path)}"
uv="${UV:-$(command -v uv || ls "${FTREVIEW_CACHE_DIR:-$HOME/.cache/ftreview}"/tools/uv-*/uv 2>/dev/null | head -1)}"
if [[ -z "$uv" || ! -x "$uv" ]]; then
  echo "error: no uv found; put uv on PATH, set UV, or run ftreview once (it installs a pinned uv into its cache)" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

harness="$work/harness.txt"
printf 'pytest\npytest-run-parallel\n' >"$harness"
sets=("$@")
[[ ${#sets[@]} -gt 0 ]] || sets=("$harness")

# Wall seconds of one command (its output kept in last.log, shown when it fails).
seconds() {
  local start; start=$(date +%s.%N)
  "$@" >"$work/last.log" 2>&1 || { cat "$work/last.log" >&2; return 1; }
  python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)"
}

echo "| requirements | uv | pip under TSan | pip / uv |"
echo "|---|---|---|---|"
for file in "${sets[@]}"; do
  "$python" -m venv "$work/uv-venv" && "$python" -m venv "$work/pip-venv"
  with_uv=$(seconds env UV_CACHE_DIR="$work/uv-cache" "$uv" pip install --python "$work/uv-venv/bin/python" -r "$file")
  with_pip=$(seconds "$work/pip-venv/bin/python" -m pip install --no-cache-dir -r "$file")
  ratio=$(python3 -c "print(f'{$with_pip / max($with_uv, 0.1):.1f}x')")
  echo "| $(basename "$file") ($(grep -cv '^\s*#' "$file") lines) | ${with_uv} s | ${with_pip} s | $ratio |"
  rm -rf "$work/uv-venv" "$work/pip-venv" "$work/uv-cache"
done
