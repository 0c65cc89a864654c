#!/usr/bin/env bash
# mpirun on one machine: RANKS processes x THREADS TBB threads each (RANKS x THREADS should
# not exceed the cores). usage: launch/mpirun_example.sh [EXP.yaml] (RANKS=2 THREADS=1 by default)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
EXP=${1:-launch/experiments/lenet_modern.yaml}
RANKS=${RANKS:-2}
THREADS=${THREADS:-1}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun --oversubscribe -np "$RANKS" --bind-to none build/launch/hubel train "$EXP" --threads "$THREADS"
