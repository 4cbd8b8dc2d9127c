#!/usr/bin/env bash
# Benchmark: cold `ftreview build-python` against the plain manual recipe
#   ./configure --disable-gil --with-thread-sanitizer && make -j && make install
# on the same CPython source tarball and machine, then a warm (cached) ftreview call.
# Prints wall times and the ratio ftreview/manual (target: <= 0.7; warm call: <= 1 s).
#
# Usage: scripts/bench-build-python.sh [TARBALL]
#   TARBALL   a CPython release tarball (default: Debian's orig tarball in the ftreview
#             cache, else /tmp/pysrc/*.orig.tar.xz)
#   FTREVIEW  the ftreview binary (default: target/release/ftreview, built if missing)
#   JOBS      parallel make jobs for both (default: nproc)
# Both builds take the machine's cores for several minutes each; run it on an idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."

tarball=${1:-}
if [[ -z $tarball ]]; then
  for candidate in "${FTREVIEW_CACHE_DIR:-$HOME/.cache/ftreview}"/downloads/debian/*.orig.tar.xz /tmp/pysrc/*.orig.tar.xz; do
    [[ -f $candidate ]] && { tarball=$candidate; break; }
  done
fi
[[ -f $tarball ]] || { echo "no CPython tarball given or found" >&2; exit 2; }
tarball=$(realpath "$tarball")
jobs=${JOBS:-$(nproc)}
ftreview=${FTREVIEW:-target/release/ftreview}
[[ -x $ftreview ]] || cargo build --release -p ftreview
work=$(mktemp -d "${TMPDIR:-/tmp}/bench-build-python.XXXXXX")
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { print b - a }'; }

echo "source:  $tarball"
echo "jobs:    $jobs"
echo "scratch: $work"

echo "manual recipe (default cc, configure && make -j$jobs && make install)..."
mkdir -p "$work/manual"
start=$(now)
tar -xf "$tarball" -C "$work/manual"
src=$(find "$work/manual" -mindepth 1 -maxdepth 1 -type d | head -1)
(
  cd "$src"
  ./configure --disable-gil --with-thread-sanitizer --prefix="$work/manual/prefix"
  make -j"$jobs"
  # make install runs ensurepip with the TSan interpreter; without report_bugs=0 TSan's
  # reports about the interpreter itself make it exit 66 and the recipe fails.
  TSAN_OPTIONS=report_bugs=0 make install
) >"$work/manual.log" 2>&1 || { tail -20 "$work/manual.log"; echo "manual recipe failed" >&2; exit 2; }
manual=$(elapsed "$start" "$(now)")

echo "ftreview build-python (cold cache, includes verification)..."
start=$(now)
"$ftreview" build-python --source "$tarball" --cache-dir "$work/cache" --jobs "$jobs" >/dev/null
cold=$(elapsed "$start" "$(now)")

start=$(now)
"$ftreview" build-python --source "$tarball" --cache-dir "$work/cache" >/dev/null
warm=$(elapsed "$start" "$(now)")

printf 'manual recipe:        %8.1f s\n' "$manual"
printf 'ftreview cold:        %8.1f s\n' "$cold"
printf 'ratio ftreview/manual: %7.2f   (target <= 0.70)\n' "$(awk -v c="$cold" -v m="$manual" 'BEGIN { print c / m }')"
printf 'ftreview warm:        %8.2f s   (target <= 1 s)\n' "$warm"
