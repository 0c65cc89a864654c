# Shared by the shell tests that drive the hubel command (source it after setting a usage
# line): the arguments HUBEL SOURCE_DIR MPIEXEC, the environment for mpirun as root, a
# temporary directory T (removed at exit, with any process still running from it), the
# failure count and its helpers (fail, ok, last checkpoint, same weights), and the
# spirals experiment the tests train.
set -u
HUBEL=$(realpath "$1")
SRC=$2
MPIEXEC=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
T=$(mktemp -d)
trap 'pkill -KILL -f "$T/" 2>/dev/null; [ -n "${KEEP_T:-}" ] || rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
E="$SRC/launch/experiments/spirals_mlp.yaml"
last() { ls "$1"/checkpoints/ckpt-*.h5 | tail -1; }
same() {  # same A B: /model and /optimizer bitwise equal
  h5diff "$1" "$2" /model > /dev/null && h5diff "$1" "$2" /optimizer > /dev/null
}
# fashion N OUT.h5: the first N training and N/5 test images of the real Fashion-MNIST
# (the Debian package's IDX files), through `hubel convert idx`: small enough for tests
# that train whole epochs, real enough that the loader thread reads HDF5.
fashion() {
  local n=$1 out=$2 dir
  shift 2  # the rest: more arguments for hubel convert
  dir=$(mktemp -d "$T/idx.XXXX")
  python3 - "$n" "$dir" <<'PY' || return 1
import gzip, os, struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
src = "/usr/share/datasets/fashion-mnist"
def read(name):
    for suffix in ("", ".gz"):
        p = os.path.join(src, name + suffix)
        if os.path.exists(p):
            return (gzip.open if suffix else open)(p, "rb").read()
    raise SystemExit("missing " + name)
for prefix, count in (("train", n), ("t10k", max(1, n // 5))):
    img, lab = read(prefix + "-images-idx3-ubyte"), read(prefix + "-labels-idx1-ubyte")
    open(os.path.join(out, prefix + "-images-idx3-ubyte"), "wb").write(struct.pack(">IIII", 0x803, count, 28, 28) + img[16:16 + count * 784])
    open(os.path.join(out, prefix + "-labels-idx1-ubyte"), "wb").write(struct.pack(">II", 0x801, count) + lab[8:8 + count])
PY
  "$HUBEL" convert idx "$dir" "$out" --classes fashion-mnist "$@" > /dev/null || return 1
  rm -rf "$dir"
}
LENET="$SRC/launch/experiments/lenet_modern.yaml"
