#!/usr/bin/env bash
# The unit tests built with AddressSanitizer and UndefinedBehaviorSanitizer (build-asan/),
# and the threaded parts (the loader's prefetch thread, the gradient sync's communication
# thread, hubel::Model's concurrent callers) with ThreadSanitizer (build-tsan/). Part of the README's test command; any
# finding fails it. Run from the repository root after launch/setup.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export OPENBLAS_NUM_THREADS=1
FLAGS=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" -DHUBEL_BUILD_BENCH=OFF)

UNIT=(test_framework test_layers test_training test_datasets test_launch test_comm test_inference)
cmake -S . -B build-asan "${FLAGS[@]}" -DHUBEL_SANITIZE=address,undefined > /dev/null
cmake --build build-asan -j2 --target "${UNIT[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${UNIT[@]}"; do
  echo "== $t (address, undefined)"
  build-asan/tests/$t --gtest_brief=1
done

# The hubel command itself on damaged checkpoints (the matrix of tests/launch/damage_test.sh,
# fewer offsets): no memory error on any path that refuses a file. Leak checking is off
# here: an error exit leaves HDF5's and Open MPI's process-lifetime state behind.
cmake --build build-asan -j2 --target hubel
echo "== damaged-checkpoint matrix, hubel (address, undefined)"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
  bash tests/launch/damage_test.sh "$PWD/build-asan/launch/hubel" "$PWD" mpirun 8

THREADED=(test_datasets test_comm test_inference)
cmake -S . -B build-tsan "${FLAGS[@]}" -DHUBEL_SANITIZE=thread > /dev/null
cmake --build build-tsan -j2 --target "${THREADED[@]}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
echo "== test_datasets --gtest_filter=Loader*:Partitioned*:Paged*:Prepare*:Stream.TheLoader* (thread)"
build-tsan/tests/test_datasets --gtest_brief=1 --gtest_filter='Loader*:Partitioned*:Paged*:Prepare*:Stream.TheLoader*'
echo "== test_comm (thread)"
build-tsan/tests/test_comm --gtest_brief=1
# (Callers on one thread each: where TBB's threads steal from each other, its uninstrumented
# library's task objects are reported as races.)
echo "== test_inference (thread): concurrent callers of hubel::Model"
build-tsan/tests/test_inference --gtest_brief=1 --gtest_filter=Model.ConcurrentCallersOneThreadEach
echo "sanitizers: no findings"
