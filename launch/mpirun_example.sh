#!/usr/bin/env bash
# mpirun on one machine: RANKS processes x THREADS TBB threads each (RANKS x THREADS should
# not exceed the cores).
#   usage: launch/mpirun_example.sh [EXP.yaml] [hubel train options...]
#   e.g.   RANKS=4 launch/mpirun_example.sh launch/experiments/lenet_modern.yaml --set train.epochs=3
# (RANKS=2 THREADS=1 by default; the options after the experiment go to `hubel train`.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXP=launch/experiments/lenet_modern.yaml
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  EXP=$1
  shift
fi
RANKS=${RANKS:-2}
THREADS=${THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec mpirun --oversubscribe -np "$RANKS" --bind-to none build/launch/hubel train "$EXP" --threads "$THREADS" "$@"
