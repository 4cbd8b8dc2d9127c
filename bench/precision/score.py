"""Score ftreview scan findings against hand judgments (see README.md in this directory).

`releases PAIRS` prints every `name==version` to download; `table PAIRS JUDGMENTS SCANDIR` prints
the per-pair table from the JSON reports `SCANDIR/<name>-<version>.json`.
"""

import json
import sys
from collections import Counter
from pathlib import Path

import yaml

VERDICTS = ("real", "false", "unsure")


def load_pairs(path):
    return yaml.safe_load(Path(path).read_text())["pairs"]


def finding_key(finding):
    """Rule, file below the release's root directory, function, line: stable across reruns."""
    relative = finding["file"].split("/", 1)[1]
    return (finding["rule"], relative, finding.get("function") or "", finding["span"]["line"])


def judgment_key(judgment):
    return (judgment["rule"], judgment["file"], judgment.get("function") or "", judgment["line"])


def load_judgments(path):
    by_release = {}
    for release, entries in (yaml.safe_load(Path(path).read_text()) or {}).items():
        table = {}
        for entry in entries:
            if entry["verdict"] not in VERDICTS:
                sys.exit(f"error: {release} {judgment_key(entry)}: verdict must be one of {VERDICTS}")
            table[judgment_key(entry)] = entry["verdict"]
        by_release[release] = table
    return by_release


def score(scan_path, judgments):
    """Counts of the release's reported findings (info excluded) by verdict, plus info and stale."""
    findings = json.loads(Path(scan_path).read_text())["findings"]
    reported = [f for f in findings if f["severity"] != "info"]
    keys = [finding_key(f) for f in reported]
    counts = Counter(judgments.get(key, "unjudged") for key in keys)
    counts["findings"] = len(reported)
    counts["info"] = len(findings) - len(reported)
    counts["stale"] = len(set(judgments) - {finding_key(f) for f in findings})
    return counts


def precision(counts):
    judged = counts["real"] + counts["false"]
    return f"{counts['real'] / judged:.2f}" if judged else "n/a"


def print_table(pairs, judgments, scan_dir):
    header = ("pair", "release", "findings", "info", "real", "false", "unsure", "unjudged",
              "precision", "stale")
    rows = [header]
    for pair in pairs:
        for side in ("before", "after"):
            release = f"{pair['package']}-{pair[side]}"
            counts = score(Path(scan_dir) / f"{release}.json", judgments.get(release, {}))
            rows.append((pair["package"], f"{side} {pair[side]}", counts["findings"], counts["info"],
                         counts["real"], counts["false"], counts["unsure"], counts["unjudged"],
                         precision(counts), counts["stale"]))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for row in rows:
        print("| " + " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths)) + " |")
        if row is header:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print("\nfindings: reported at severity low or above (info = reported as protected, not scored);")
    print("precision = real / (real + false); stale = judgments no longer matched by any finding.")


def main(argv):
    if len(argv) >= 2 and argv[0] == "releases":
        for pair in load_pairs(argv[1]):
            print(f"{pair['package']}=={pair['before']}\n{pair['package']}=={pair['after']}")
    elif len(argv) == 4 and argv[0] == "table":
        print_table(load_pairs(argv[1]), load_judgments(argv[2]), argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
