#!/usr/bin/env python3
"""Writes a large set of TSan logs for the throughput benchmark.

Usage: generate_logs.py OUT_DIR TOTAL_MB [FILES]

Each `tsan.<pid>` file holds reports copied from the real fixture logs (gcc, clang and the
Python extension run), with pids, addresses and thread ids varied so that no two files are
byte-identical, followed by the `reported N warnings` trailer.
"""
import pathlib
import random
import re
import sys

HERE = pathlib.Path(__file__).resolve().parent
LOGS = HERE.parent / "tests" / "fixtures" / "logs"
REPORT = re.compile(r"^==================\nWARNING: ThreadSanitizer:.*?^==================\n", re.S | re.M)
ADDRESS = re.compile(r" at 0x[0-9a-f]{12}")


def templates():
    reports = []
    for log in sorted(LOGS.glob("*/*.log")):
        if log.parent.name == "derived":
            continue
        reports.extend(m.group(0) for m in REPORT.finditer(log.read_text()))
    # Python-extension reports (deep interpreter stacks) are what real runs are made of.
    python = [r for r in reports if "python3.13t" in r]
    return reports + python * 8


def main():
    out = pathlib.Path(sys.argv[1])
    total = int(sys.argv[2]) * 1_000_000
    files = int(sys.argv[3]) if len(sys.argv) > 3 else 256
    out.mkdir(parents=True, exist_ok=True)
    pool = templates()
    rng = random.Random(42)
    per_file = total // files
    for n in range(files):
        pid = 100000 + n
        parts, size, count = [], 0, 0
        while size < per_file:
            report = rng.choice(pool)
            report = re.sub(r"\(pid=\d+\)", f"(pid={pid})", report, count=1)
            report = ADDRESS.sub(lambda _: f" at 0x7f{rng.randrange(16**10):010x}", report)
            parts.append(report)
            size += len(report)
            count += 1
        parts.append(f"ThreadSanitizer: reported {count} warnings\n")
        (out / f"tsan.{pid}").write_text("".join(parts))


if __name__ == "__main__":
    main()
