# Shared by the shell tests that drive the hubel command (source it after setting a usage
# line): the arguments HUBEL SOURCE_DIR MPIEXEC, the environment for mpirun as root, a
# temporary directory T (removed at exit, with any process still running from it), the
# failure count and its helpers (fail, ok, last checkpoint, same weights), and the
# spirals experiment the tests train.
set -u
HUBEL=$1
SRC=$2
MPIEXEC=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
T=$(mktemp -d)
trap 'pkill -KILL -f "$T/" 2>/dev/null; rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
E="$SRC/launch/experiments/spirals_mlp.yaml"
last() { ls "$1"/checkpoints/ckpt-*.h5 | tail -1; }
same() {  # same A B: /model and /optimizer bitwise equal
  h5diff "$1" "$2" /model > /dev/null && h5diff "$1" "$2" /optimizer > /dev/null
}
