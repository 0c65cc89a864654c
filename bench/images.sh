#!/usr/bin/env bash
# Decoding and augmenting images, hubel against PIL (torchvision's pipeline without torch),
# side by side in one run on the same files: 224 x 224 training samples from 320 x 256
# JPEGs, and 32 x 32 samples from 32 x 32 PNGs (CIFAR-sized). PAIRS interleaved pairs
# (default 3), each side on 1 thread (per core) and on all cores; prints every pair, the
# medians and their ratios, and the machine line.
#
#   bash bench/images.sh          (installs python3-pil and python3-numpy from Debian when missing)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PAIRS=${PAIRS:-3} SECONDS_EACH=${SECONDS_EACH:-3}
[ -x build/bench/bench_images ] || { echo "images.sh: build first (bash launch/test.sh or launch/run.sh)"; exit 1; }
# Debian's Python (where python3-pil installs), not another one first on the PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
"$PY" -c "import PIL, numpy" 2> /dev/null ||
  { DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-pil python3-numpy > /dev/null || exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
build/bench/bench_images make "$T/jpg" 200 320 256 jpg || exit 1
build/bench/bench_images make "$T/png" 500 32 32 png || exit 1
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'); hubel $(git rev-parse --short HEAD 2>/dev/null); PIL $("$PY" -c 'import PIL; print(PIL.__version__)')"
for set in "jpg 224" "png 32"; do
  read -r kind size <<< "$set"
  : > "$T/h1" ; : > "$T/hn"; : > "$T/p1"; : > "$T/pn"
  for i in $(seq 1 "$PAIRS"); do
    out=$(build/bench/bench_images run "$T/$kind" "$size" "$SECONDS_EACH") || exit 1
    h1=$(sed -n 's/^hubel 1 thread(s): \([0-9]*\).*/\1/p' <<< "$out"); hn=$(sed -n '2s/^hubel [0-9]* thread(s): \([0-9]*\).*/\1/p' <<< "$out")
    out=$("$PY" bench/peers/pil_images.py "$T/$kind" "$size" "$SECONDS_EACH") || exit 1
    p1=$(sed -n 's/^PIL 1 process: \([0-9]*\).*/\1/p' <<< "$out"); pn=$(sed -n '2s/^PIL [0-9]* processes: \([0-9]*\).*/\1/p' <<< "$out")
    echo "$kind -> ${size}x${size}, pair $i: hubel $h1 / $hn images/s (1 / all threads), PIL $p1 / $pn (1 / all processes)"
    echo "$h1" >> "$T/h1"; echo "$hn" >> "$T/hn"; echo "$p1" >> "$T/p1"; echo "$pn" >> "$T/pn"
  done
  med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  python3 -c "
h1, hn, p1, pn = $(med "$T/h1"), $(med "$T/hn"), $(med "$T/p1"), $(med "$T/pn")
print('$kind -> ${size}x${size} medians: hubel %d / %d, PIL %d / %d images/s; hubel/PIL %.2fx on one core, %.2fx on all' % (h1, hn, p1, pn, h1 / p1, hn / pn))"
done
