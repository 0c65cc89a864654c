#!/usr/bin/env bash
# The README's main command: installs what is missing, builds hubel (reusing ./build),
# converts the bundled Fashion-MNIST to HDF5 (once), trains the modern LeNet on 2 ranks,
# and says where the results are.
# usage: launch/run.sh [EXPERIMENT.yaml] [hubel train options...]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash launch/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
# OpenBLAS computes on the calling thread only (hubel sets this too; the variable also
# keeps it from starting an idle thread pool).
export OPENBLAS_NUM_THREADS=1
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
fi
cmake --build build -j2 --target hubel
if [ ! -f data/fashion-mnist.h5 ]; then
  build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist
fi
EXP=${1:-launch/experiments/lenet_modern.yaml}
shift || true
RANKS=${HUBEL_RANKS:-2}
echo "training $EXP on $RANKS ranks"
mpirun --oversubscribe -np "$RANKS" build/launch/hubel train "$EXP" --threads 1 "$@"
