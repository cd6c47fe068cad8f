#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-19 and runs each for FUZZ_SECONDS
# (default 60). Crashers are written to fuzz-crashes/; add them to the
# target's corpus (tests/fuzz/corpus_*) as regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
dir=build-fuzz
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
[ -f "$dir/CMakeCache.txt" ] || CC=clang-19 cmake -S . -B "$dir" "${gen[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTT_FUZZ=ON -DTT_TESTS=OFF
cmake --build "$dir" -j "$(nproc)" --target fuzz_parse fuzz_safetensors fuzz_repl fuzz_npy fuzz_csv fuzz_idx
mkdir -p fuzz-crashes
status=0
for t in parse safetensors repl npy csv idx; do
  work=$(mktemp -d)
  cp tests/fuzz/corpus_$t/* "$work"/ 2>/dev/null || true
  echo "fuzz_$t: ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1 "$dir/fuzz_$t" -max_total_time="$secs" \
       -artifact_prefix=fuzz-crashes/$t- -print_final_stats=1 "$work" \
       2>&1 | tail -n 15; then
    status=1
  fi
  rm -rf "$work"
done
exit $status
