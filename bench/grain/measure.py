#!/usr/bin/env python3
"""Grain of a run's findings: site pairs -> problems, plan lines, reproducer lines and rates.

Usage: measure.py RUN_DIR [RUN_DIR ...]   (each an `ftreview run --out` directory)
Optional: --before PLAN.md,...  plans of the same runs rendered by a pair-grain ftreview, one per
RUN_DIR in order, for the "plan lines before" column.
"""
import argparse
import json
import pathlib
import sys


def measure(run_dir: pathlib.Path) -> dict:
    results_path = run_dir / "results.json"
    plan_path = run_dir / "migration-plan.md"
    if not results_path.is_file() or not plan_path.is_file():
        sys.exit(f"error: {run_dir} has no results.json/migration-plan.md; pass a finished run directory")
    results = json.loads(results_path.read_text())
    problems = [f for f in results["findings"] if f["category"] == "race"]
    rates, repro_lines = [], []
    for problem in problems:
        repro = problem.get("reproducer")
        if not repro:
            rates.append(f"{problem['id']}: none")
            continue
        rates.append(f"{problem['id']}: {repro['kind']} {repro['reproduced']}/{repro['runs']}")
        script = repro.get("script")
        if repro["kind"] == "small" and script and (run_dir / script).is_file():
            repro_lines.append(len((run_dir / script).read_text().splitlines()))
    return {
        "run": run_dir.name,
        "site_pairs": results["counts"]["races"],
        "problems": results["counts"]["problems"],
        "plan_lines": len(plan_path.read_text().splitlines()),
        "repro_lines": repro_lines,
        "rates": rates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=pathlib.Path)
    parser.add_argument("--before", default="", help="pair-grain plans, comma-separated")
    args = parser.parse_args()
    befores = [pathlib.Path(p) for p in args.before.split(",") if p]
    if befores and len(befores) != len(args.runs):
        sys.exit("error: --before needs one plan per run directory")
    print("| run | site pairs → problems | plan lines (before → after) | small reproducer lines | reproduced |")
    print("|---|---|---|---|---|")
    for i, run in enumerate(args.runs):
        m = measure(run)
        before = f"{len(befores[i].read_text().splitlines())} → " if befores else ""
        lines = m["repro_lines"]
        span = f"{min(lines)}–{max(lines)} ({len(lines)} scripts)" if lines else "none"
        print(
            f"| {m['run']} | {m['site_pairs']} → {m['problems']} | {before}{m['plan_lines']} "
            f"| {span} | {'; '.join(m['rates'])} |"
        )


if __name__ == "__main__":
    main()
