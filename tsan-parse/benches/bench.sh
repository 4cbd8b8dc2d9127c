#!/usr/bin/env bash
# Throughput and memory of tsan-parse on a large generated log set, against
# `grep -c 'WARNING: ThreadSanitizer'` over the same files (both from the page cache).
#
# Usage: tsan-parse/benches/bench.sh [TOTAL_MB] [FILES]   (default 512 MB in 256 files)
# The logs go to ${BENCH_DIR:-/tmp/tsan-parse-bench}; they are regenerated when missing.
# Peak memory is also measured on half of the files: it must not grow with the log size.
set -euo pipefail

total_mb="${1:-512}"
files="${2:-256}"
here="$(cd "$(dirname "$0")" && pwd)"
dir="${BENCH_DIR:-/tmp/tsan-parse-bench}/${total_mb}mb-${files}"

if [ ! -d "$dir" ]; then
    echo "generating $total_mb MB of logs in $files files under $dir"
    python3 "$here/generate_logs.py" "$dir" "$total_mb" "$files"
fi
cargo build --quiet --release -p tsan-parse --example triage
target="${CARGO_TARGET_DIR:-$(cd "$here/../.." && pwd)/target}"
triage="$target/release/examples/triage"

mapfile -t all_files < <(find "$dir" -type f -name 'tsan.*' | sort)
half_files=("${all_files[@]:0:$((${#all_files[@]} / 2))}")
cat "${all_files[@]}" >/dev/null # warm the page cache
bytes="$(cat "${all_files[@]}" | wc -c)"

# Best of 3 wall-clock seconds of a command. Output goes to a file: GNU grep stops at the
# first match when its output is /dev/null.
best_of_3() {
    local best="" out
    out="$(mktemp)"
    for _ in 1 2 3; do
        local t
        t="$( { /usr/bin/time -f %e "$@" >"$out"; } 2>&1 | tail -1)"
        if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best="$t"; fi
    done
    rm -f "$out"
    echo "$best"
}

# CPU seconds (user + sys) of a command, to compare work done whatever the machine's load.
cpu_seconds() {
    { /usr/bin/time -f "%U %S" "$@" >/dev/null; } 2>&1 | tail -1 | awk '{print $1 + $2}'
}

peak_kb() {
    { /usr/bin/time -v "$@" >/dev/null; } 2>&1 | awk -F': ' '/Maximum resident set size/ {print $2}'
}

grep_s="$(best_of_3 grep -c 'WARNING: ThreadSanitizer' "${all_files[@]}")"
parse_s="$(best_of_3 "$triage" "${all_files[@]}")"
grep_cpu="$(cpu_seconds sh -c 'grep -c "WARNING: ThreadSanitizer" "$@" | cat >/dev/null' grep "${all_files[@]}")"
parse_cpu="$(cpu_seconds "$triage" "${all_files[@]}")"
"$triage" "${all_files[@]}"
peak_all="$(peak_kb "$triage" "${all_files[@]}")"
peak_half="$(peak_kb "$triage" "${half_files[@]}")"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
awk -v bytes="$bytes" -v g="$grep_s" -v p="$parse_s" -v gc="$grep_cpu" -v pc="$parse_cpu" \
    -v all="$peak_all" -v half="$peak_half" -v n="${#all_files[@]}" 'BEGIN {
    mb = bytes / 1e6
    printf "logs:        %.0f MB in %d files\n", mb, n
    printf "grep -c:     %.2f s (%.0f MB/s)\n", g, mb / g
    printf "tsan-parse:  %.2f s (%.0f MB/s), parse+cluster\n", p, mb / p
    printf "ratio:       %.2fx grep wall-clock (target: within 5x)\n", p / g
    printf "CPU time:    grep %.2f s, tsan-parse %.2f s (%.0f MB/s per core)\n", gc, pc, mb / pc
    printf "peak RSS:    %.1f MB on all files, %.1f MB on half of them\n", all / 1024, half / 1024
}'
