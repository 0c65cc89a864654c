#!/usr/bin/env bash
# Formats every C++ source with .clang-format (clang-format -i), or with --check fails
# naming the files that differ (the test command runs the check).
# usage: launch/format.sh [--check]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' | grep -v '^tests/fuzz/corpus/')
if [ "${1:-}" = --check ]; then
  if ! clang-format --dry-run -Werror "${files[@]}" 2> format.log; then
    grep -o '^[^:]*\.[ch]pp' format.log | sort -u | sed 's/^/not formatted: /'
    rm -f format.log
    echo "format: run bash launch/format.sh to fix"
    exit 1
  fi
  rm -f format.log
  echo "format: ${#files[@]} files as .clang-format says"
else
  clang-format -i "${files[@]}"
fi
