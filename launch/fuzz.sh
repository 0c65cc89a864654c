#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (build-fuzz/) and runs each on its seed corpus
# (tests/fuzz/corpus/<target>, copied, so the repository is not modified) for SECONDS
# seconds (default 20): part of the README's test command. A crash, a sanitizer report or
# an allocation over 2 GiB fails it and leaves the input in build-fuzz/findings/.
# usage: launch/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_EACH=${1:-20}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(fuzz_idx fuzz_cifar fuzz_experiment fuzz_checkpoint)
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" \
  -DHUBEL_FUZZ=ON -DHUBEL_BUILD_TESTS=OFF -DHUBEL_BUILD_BENCH=OFF > /dev/null
cmake --build build-fuzz -j2 --target "${TARGETS[@]}"
mkdir -p build-fuzz/findings
for t in "${TARGETS[@]}"; do
  work=build-fuzz/corpus/$t
  mkdir -p "$work"
  cp -n tests/fuzz/corpus/$t/* "$work/" 2>/dev/null || true
  echo "== $t: ${SECONDS_EACH} s"
  if ! build-fuzz/tests/fuzz/$t -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/findings/$t- "$work" > build-fuzz/$t.log 2>&1; then
    tail -40 build-fuzz/$t.log
    echo "fuzz: $t found a problem; the input is in build-fuzz/findings/"
    exit 1
  fi
  grep -E "stat::number_of_executed_units|DONE" build-fuzz/$t.log | tail -2
done
echo "fuzz: no findings"
