#!/usr/bin/env bash
# Installs every system package tt needs on Debian 12 (bookworm).
# Idempotent: packages already present are skipped by apt.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config flex bison
  llvm-19-dev clang-19 libclang-rt-19-dev
  libcriterion-dev zlib1g-dev libedit-dev libjansson-dev
  dataset-fashion-mnist
  libopenblas-dev python3-numpy python3-torch
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
