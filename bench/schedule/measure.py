#!/usr/bin/env python3
"""Old schedule vs budgeted: time to the first race, wall time, problems found within the same
wall time, side by side.

Usage: measure.py OLD_RUN_DIR NEW_RUN_DIR   (each an `ftreview run --out` directory, with the
run's progress output beside it as DIR.log and its wall seconds as DIR.wall)

A problem's first sight is the earliest progress line (`[1m 05s] new data race: f.c:12 (fn) vs
…`) naming one of its site pairs; a line without sites (a lock-order inversion) counts for a
problem of that kind whose origins include the line's origin.
"""
import json
import pathlib
import re
import sys

FOUND = re.compile(r"^\[(?:(\d+)m )?(\d+(?:\.\d+)?)s\] new (.+?): (.*) \(from (.+)\)$")


def sightings(log: pathlib.Path) -> list:
    """(seconds, kind, sorted sites, origin) of every `new …` progress line."""
    seen = []
    for line in log.read_text(errors="replace").splitlines():
        m = FOUND.match(line)
        if m:
            minutes, secs, kind, sites, origin = m.groups()
            at = int(minutes or 0) * 60 + float(secs)
            seen.append((at, kind, sorted(s for s in sites.split(" vs ") if s.strip()), origin))
    return seen


def site(location: dict) -> str:
    return f"{location['file'].rsplit('/', 1)[-1]}:{location['line']} ({location['function']})"


def first_sights(run_dir: pathlib.Path) -> dict:
    """Problem id -> seconds into the run when it was first on screen (None: never matched)."""
    results = json.loads((run_dir / "results.json").read_text())
    seen = sightings(run_dir.with_name(run_dir.name + ".log"))
    firsts = {}
    for problem in (f for f in results["findings"] if f["category"] == "race"):
        pairs = [sorted(site(l) for l in s["locations"] if l.get("line")) for s in problem["sites"]]
        origins = {f"{o['phase']}: {o['item']}" for o in problem["origins"]}
        times = [
            at for at, kind, sites, origin in seen
            if (sites and sites in pairs) or (not sites and kind == problem["kind"] and origin in origins)
        ]
        firsts[problem["id"]] = min(times, default=None)
    return firsts


def row(label: str, run_dir: pathlib.Path, horizon: float) -> dict:
    firsts = first_sights(run_dir)
    wall = float(run_dir.with_name(run_dir.name + ".wall").read_text())
    races = [at for at, kind, _, _ in sightings(run_dir.with_name(run_dir.name + ".log"))
             if kind == "data race" or "lock-order" in kind]
    known = [t for t in firsts.values() if t is not None]
    return {
        "label": label,
        "first": min(races, default=None),
        "last": max(known, default=None),
        "wall": wall,
        "problems": len(firsts),
        "unmatched": sum(t is None for t in firsts.values()),
        "within": sum(t is not None and t <= horizon for t in firsts.values()),
    }


def fmt(secs) -> str:
    return "—" if secs is None else f"{secs:.0f} s"


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    old, new = (pathlib.Path(p) for p in sys.argv[1:])
    walls = [float(d.with_name(d.name + ".wall").read_text()) for d in (old, new)]
    horizon = min(walls)
    rows = [row("old (fixed shares)", old, horizon), row("budgeted default", new, horizon)]
    print(f"| schedule | first race | last problem first seen | wall time | problems | problems within {horizon:.0f} s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        unmatched = f" ({r['unmatched']} not matched to a progress line)" if r["unmatched"] else ""
        print(f"| {r['label']} | {fmt(r['first'])} | {fmt(r['last'])} | {fmt(r['wall'])} "
              f"| {r['problems']}{unmatched} | {r['within']} |")
    o, n = rows
    ratio = lambda a, b: "—" if not a or not b else f"{b / a:.2f}"
    print(f"| budgeted / old | {ratio(o['first'], n['first'])} | {ratio(o['last'], n['last'])} "
          f"| {ratio(o['wall'], n['wall'])} | | |")


if __name__ == "__main__":
    main()
