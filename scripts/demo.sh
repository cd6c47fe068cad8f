#!/usr/bin/env bash
# The main demo: installs what tt needs, builds it, and trains an MLP on
# Fashion-MNIST with the reference runtime (examples/fashion_mnist.tt).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build
build/ttrun examples/fashion_mnist.tt
