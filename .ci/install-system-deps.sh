#!/usr/bin/env bash
# Debian packages that ftreview's tests need on a fresh machine: CPython build
# prerequisites, the clang TSan runtime and symbolizer, and dpkg-dev for `apt-get source`.
set -euo pipefail
packages=(
  build-essential pkg-config dpkg-dev
  libffi-dev zlib1g-dev libssl-dev libbz2-dev liblzma-dev libsqlite3-dev
  libreadline-dev libncurses-dev uuid-dev libgdbm-dev libexpat1-dev
  clang-19 libclang-rt-19-dev llvm-19
  binutils util-linux
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
