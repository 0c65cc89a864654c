#!/usr/bin/env bash
# Training on images stored encoded (`hubel convert images --encoded`): does decoding show
# in the step time? ResNet-20 on 3 x 64 x 64 samples with random resized crops and flips,
# from 320 x 256 JPEGs, trained three ways in interleaved rounds of one run:
#   decoded      the set converted with --size 64,64 (no decoding while training: the reference)
#   encoded/pool the files decoded at full resolution by the loader on TBB's threads (shared
#                with training: data.decode_threads 0, the default)
#   encoded/1    the same on the loader thread alone (data.decode_threads 1)
# Prints images/s and the data wait (the step's time waiting for the loader) per run, the
# medians, the ratios to the decoded reference, the file sizes and the machine line.
#
#   bash bench/encoded.sh      (PAIRS=3 STEPS=20 THREADS=2 by default)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PAIRS=${PAIRS:-3} STEPS=${STEPS:-20} THREADS=${THREADS:-$(nproc)}
H=build/launch/hubel
[ -x build/bench/bench_images ] && [ -x $H ] || { echo "encoded.sh: build first (bash launch/test.sh or launch/run.sh)"; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
for k in 0 1 2 3 4 5 6 7 8 9; do  # 10 classes (the net's), landscape and portrait
  if ((k % 2)); then build/bench/bench_images make "$T/jpg/c$k" 52 256 320 jpg; else build/bench/bench_images make "$T/jpg/c$k" 52 320 256 jpg; fi > /dev/null || exit 1
done
$H convert images "$T/jpg" "$T/dec.h5" --size 64,64 > /dev/null || exit 1
$H convert images "$T/jpg" "$T/enc.h5" --encoded --size 64,64 > "$T/enc.log" || exit 1
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'); hubel $(git rev-parse --short HEAD 2>/dev/null), $THREADS thread(s)"
echo "files: $(du -k "$T/enc.h5" | cut -f1) KiB encoded (520 JPEGs, 320x256 and 256x320) against $(du -k "$T/dec.h5" | cut -f1) KiB decoded at 64x64 (the full-resolution pixels: $(sed -n 's/.* for \([0-9.]*\) MB of decoded pixels.*/\1/p' "$T/enc.log") MB)"
AUG='{flip: true, resized_crop: {scale: [0.25, 1]}}'
run() {  # run NAME FILE EXTRA...: prints "images/s data-wait-percent"
  local name=$1 file=$2; shift 2
  $H train launch/experiments/resnet20.yaml --threads "$THREADS" --set model.input=[3,64,64] --set data.file="$file" \
    --set data.pad=0 --set "data.augment=$AUG" --set train.batch=64 --set train.max_steps="$STEPS" --set data.val_fraction=0 --set data.test= \
    --profile --progress none --run-dir "$T/run-$name" "$@" > "$T/$name.log" 2>&1 || { echo "encoded.sh: $name failed:" >&2; tail -5 "$T/$name.log" >&2; exit 1; }
  rm -rf "$T/run-$name"
  awk '/^\(data wait\)/ {w = $5} /^\(step\)/ {s = $2} END {printf "%.0f %s\n", 64000 / s, w}' "$T/$name.log"
}
: > "$T/all"
for i in $(seq 1 "$PAIRS"); do
  for mode in decoded encoded/pool encoded/1; do
    case $mode in
      decoded) r=$(run dec "$T/dec.h5") ;;
      encoded/pool) r=$(run pool "$T/enc.h5" --set data.decode_threads=0) ;;
      encoded/1) r=$(run one "$T/enc.h5" --set data.decode_threads=1) ;;
    esac || exit 1
    echo "round $i, $mode: ${r% *} images/s, data wait ${r#* }"
    echo "$mode $r" >> "$T/all"
  done
done
python3 - "$T/all" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1])]
med = {m: statistics.median(float(r[1]) for r in rows if r[0] == m) for m in ("decoded", "encoded/pool", "encoded/1")}
wait = {m: statistics.median(float(r[2].rstrip("%")) for r in rows if r[0] == m) for m in med}
for m in med:
    print("%-13s median %5.0f images/s, data wait %4.1f%% of the step, %.2fx the decoded set's throughput" % (m, med[m], wait[m], med[m] / med["decoded"]))
PY
