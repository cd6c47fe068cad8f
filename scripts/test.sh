#!/usr/bin/env bash
# Installs what tt needs, builds it, and runs the whole test suite:
# Criterion units, language tests (tests/lang) and golden tests (examples).
#   scripts/test.sh [BUILD_DIR] [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
dir="${1:-build}"
shift || true
scripts/build.sh "$dir" "$@"
# TT_CTEST_ARGS: extra ctest arguments (.ci/run sets them for the ASan run)
ctest --test-dir "$dir" --output-on-failure -j 2 ${TT_CTEST_ARGS:-}
