#!/usr/bin/env bash
# Installs hubel from a build tree into a temporary prefix, then configures, builds and
# runs a tiny out-of-tree project that uses find_package(hubel) and hubel::hubel.
# usage: install_test.sh BUILD_DIR CONSUMER_SOURCE_DIR CMAKE
set -eu
BUILD=$1
CONSUMER=$2
CMAKE=$3
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$CMAKE" --install "$BUILD" --prefix "$T/prefix" > "$T/install.log"
test -f "$T/prefix/lib/cmake/hubel/hubelConfig.cmake" || test -f "$T/prefix/lib/x86_64-linux-gnu/cmake/hubel/hubelConfig.cmake"
test -f "$T/prefix/include/hubel/framework/net.hpp"
test -x "$T/prefix/bin/hubel"
"$CMAKE" -S "$CONSUMER" -B "$T/build" -DCMAKE_PREFIX_PATH="$T/prefix" -DCMAKE_BUILD_TYPE=Release > "$T/configure.log"
"$CMAKE" --build "$T/build" -j2 > "$T/build.log"
"$T/build/consumer"
"$T/build/infer"
