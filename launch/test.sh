#!/usr/bin/env bash
# The README's test command: installs what is missing, configures and builds hubel
# (Release, -j2) in ./build, and runs every test with ctest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash launch/setup.sh test
# Open MPI refuses to run as root unless told it is fine (CI and fresh machines run as root).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenBLAS computes on the calling thread only (hubel sets this too; the variable also
# keeps it from starting an idle thread pool).
export OPENBLAS_NUM_THREADS=1
# The sources keep .clang-format's layout (clang-format -i on a file fixes it).
bash launch/format.sh --check
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHUBEL_BUILD_TESTS=ON
cmake --build build -j2
cd build
ctest --output-on-failure -j2
cd ..
# The unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer, and the threaded
# parts under ThreadSanitizer.
bash launch/sanitize.sh
# A short fuzzing smoke: each libFuzzer target for 20 s on its seed corpus.
bash launch/fuzz.sh 20
