#!/usr/bin/env bash
# The data-parallel tests across two test hosts (network namespaces, TCP only, links
# shaped to 1 Gbit/s), 2 ranks per host. Skipped (exit 77) where namespaces
# cannot be created. usage: netns_test.sh SOURCE_DIR TEST_MPI
set -u
SRC=$1
TEST=$2
if ! bash "$SRC/launch/netns_cluster.sh" check; then
  echo "SKIPPED: this machine cannot create network namespaces (needs root and iproute2)"
  exit 77
fi
trap 'bash "$SRC/launch/netns_cluster.sh" down 2' EXIT
bash "$SRC/launch/netns_cluster.sh" up 2 1gbit || exit 1
timeout 240 bash "$SRC/launch/netns_cluster.sh" run 2 2 "$TEST"
