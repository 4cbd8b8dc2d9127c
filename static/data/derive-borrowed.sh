#!/bin/sh
# Regenerates borrowed-apis.txt from CPython's Doc/data/refcounts.dat: every API whose
# PyObject* result has refcount effect 0 (a borrowed reference).
# Usage: static/data/derive-borrowed.sh /path/to/Python-3.x/Doc/data/refcounts.dat
set -eu
refcounts=${1:?usage: $0 path/to/Doc/data/refcounts.dat}
out=$(dirname "$0")/borrowed-apis.txt
{
  echo "# Derived from $(basename "$(dirname "$(dirname "$(dirname "$refcounts")")")")/Doc/data/refcounts.dat by derive-borrowed.sh"
  awk -F: '$3 == "" && $4 == "0" && $2 ~ /PyObject/ { print $1 }' "$refcounts" | sort -u
} > "$out"
