#!/usr/bin/env bash
# Precision of the static pass on real releases, before and after an upstream free-threading fix.
# Downloads each pair's sdists from PyPI (cached), scans them, and scores the findings against the
# hand judgments in judgments.yaml. Usage: FTREVIEW=path/to/ftreview bench/precision/run.sh
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ftreview="${FTREVIEW:-target/release/ftreview}"
cache="${PRECISION_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ftreview-precision}"
python="${PYTHON:-python3}"

if [[ ! -x "$ftreview" ]]; then
  echo "error: no ftreview binary at '$ftreview'; build it (cargo build --release -p ftreview) or set FTREVIEW" >&2
  exit 2
fi
if ! "$python" -c 'import yaml' 2>/dev/null; then
  echo "error: $python cannot import yaml; install PyYAML ($python -m pip install pyyaml) or set PYTHON" >&2
  exit 2
fi

mkdir -p "$cache/sdist" "$cache/src" "$cache/scan"
for release in $("$python" "$here/score.py" releases "$here/pairs.yaml"); do
  name="${release%==*}" version="${release#*==}"
  dir="$cache/src/$name-$version"
  if [[ ! -d "$dir" ]]; then
    sdist="$(ls "$cache/sdist/$name-$version".tar.gz 2>/dev/null || true)"
    if [[ -z "$sdist" ]]; then
      "$python" -m pip download --quiet --no-deps --no-binary :all: "$release" -d "$cache/sdist" >&2
      sdist="$cache/sdist/$name-$version.tar.gz"
    fi
    tar -xzf "$sdist" -C "$cache/src"
  fi
  # The exit status says whether findings exist; the JSON is what we score.
  (cd "$cache/src" && "$ftreview" scan "$name-$version" --json >"$cache/scan/$name-$version.json") || [[ $? -eq 1 ]]
done

"$python" "$here/score.py" table "$here/pairs.yaml" "$here/judgments.yaml" "$cache/scan"
