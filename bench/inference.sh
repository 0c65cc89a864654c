#!/usr/bin/env bash
# Inference, hubel against PyTorch, side by side in one run: LeNet (lenet_modern.yaml) and
# ResNet-20 (resnet20.yaml) through hubel::Model (bench_inference: the embedding API on a
# checkpoint trained a few steps; the evaluation transform included) and through PyTorch
# 1.13 in eval mode under torch.no_grad() (bench/peers/torch_inference.py, the same nets),
# each on 1 and 2 threads: batch-1 latency (median of single calls), batch-64 throughput
# and resident memory. PAIRS interleaved pairs (default 3); prints every pair, the medians
# and their ratios, and the machine line. hubel runs in fp32 and, where the CPU has
# AVX512_BF16, with Model::Options::precision bf16 too (PRECISIONS="fp32" for fp32 only).
#
#   bash bench/inference.sh        (installs python3-torch from Debian when missing)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PAIRS=${PAIRS:-3} SECONDS_EACH=${SECONDS_EACH:-4}
PRECISIONS=${PRECISIONS:-fp32 bf16}
grep -qw avx512_bf16 /proc/cpuinfo || PRECISIONS=fp32
cmake --build build -j2 --target hubel bench_inference > /dev/null || { echo "inference.sh: build first (bash launch/test.sh)"; exit 1; }
/usr/bin/python3 -c "import torch" 2> /dev/null || {
  apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-torch > /dev/null ||
    { echo "inference.sh: could not install python3-torch"; exit 1; }; }
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
[ -f data/fashion-mnist.h5 ] ||
  build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist > /dev/null || exit 1
for m in lenet_modern resnet20; do
  build/launch/hubel train "launch/experiments/$m.yaml" --run-dir "$T/$m" --set data.file="$PWD/data/fashion-mnist.h5" \
    --set train.max_steps=2 --quiet --progress none > "$T/$m.log" 2>&1 || { cat "$T/$m.log"; exit 1; }
done
MLA=/usr/lib/x86_64-linux-gnu
CAPABILITY=avx2
grep -qw avx512f /proc/cpuinfo && CAPABILITY=avx512
TORCH_ENV=(LD_LIBRARY_PATH=$MLA/openblas-serial ATEN_CPU_CAPABILITY=$CAPABILITY)
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'); hubel $(git rev-parse --short HEAD 2>/dev/null) ($(build/launch/hubel --version 2>/dev/null)); torch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)') (ATEN_CPU_CAPABILITY=$CAPABILITY)"
field() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<< "$2"; }
for m in lenet_modern resnet20; do
  peer=$([ $m = resnet20 ] && echo resnet20 || echo lenet)
  for t in 1 2; do
   for prec in $PRECISIONS; do
    : > "$T/rows"
    for i in $(seq 1 "$PAIRS"); do
      h=$(build/bench/bench_inference "$T/$m/checkpoints" "$t" "$SECONDS_EACH" "$prec") || exit 1
      p=$(env "${TORCH_ENV[@]}" /usr/bin/python3 bench/peers/torch_inference.py "$peer" "$t" "$SECONDS_EACH") || exit 1
      echo "$(field latency_ms_median "$h") $(field latency_ms_median "$p") $(field batch64_img_per_s "$h") $(field batch64_img_per_s "$p") $(field rss_loaded_mb "$h") $(field rss_loaded_mb "$p") $(field rss_before_mb "$h") $(field rss_before_mb "$p")" >> "$T/rows"
    done
    python3 - "$m" "$t" "$T/rows" "$prec" <<'PY'
import statistics, sys
m, t, rows = sys.argv[1], sys.argv[2], [list(map(float, l.split())) for l in open(sys.argv[3]) if l.strip()]
m = f"{m} (hubel {sys.argv[4]})"
for i, r in enumerate(rows, 1):
    print(f"  {m} {t} thread(s) pair {i}: latency {r[0]:.3f} / {r[1]:.3f} ms, batch 64 {r[2]:.0f} / {r[3]:.0f} img/s, RSS {r[4]:.1f} / {r[5]:.1f} MB (hubel / PyTorch)")
med = [statistics.median(c) for c in zip(*rows)]
print(f"{m}, {t} thread(s), medians: batch-1 latency hubel {med[0]:.3f} ms, PyTorch {med[1]:.3f} ms ({med[1] / med[0]:.2f}x lower); "
      f"batch-64 throughput hubel {med[2]:.0f}, PyTorch {med[3]:.0f} img/s ({med[2] / med[3]:.2f}x); "
      f"RSS loaded hubel {med[4]:.1f} MB (process before loading {med[6]:.1f}), PyTorch {med[5]:.1f} MB (after import {med[7]:.1f})")
PY
   done
  done
done
