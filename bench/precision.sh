#!/usr/bin/env bash
# What train.precision: bf16 costs in accuracy and gains in speed: every ready experiment of
# launch/experiments/ that trains convolutions (finetune_fashion freezes its own), trained twice from the same seed, fp32 and
# bf16, on 1 rank x 2 threads; prints the final test accuracy (the autoencoder: its test
# loss) and the training rate of each, and the difference. Logs in runs/precision-*/.
#   bash bench/precision.sh                      # all of them (about an hour on 2 cores)
#   bash bench/precision.sh lenet5 resnet20      # some
# ResNet-20 runs 2 of its 5 epochs (SETS_resnet20 below) to keep the whole under an hour.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HUBEL=${HUBEL:-$ROOT/build/launch/hubel}
[ -x "$HUBEL" ] || { echo "precision: build hubel first (bash launch/setup.sh build)"; exit 1; }
LOG=$ROOT/runs/precision-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG"
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=(lenet5 lenet_modern allconv inception conv_autoencoder resnet20)
SETS_resnet20=(--set train.epochs=2)
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); hubel $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); bf16 products: $(grep -q avx512_bf16 /proc/cpuinfo && echo AVX512_BF16 || echo 'none (the bf16 runs are fp32)')"
printf "%-18s %-9s %12s %12s %10s\n" experiment precision "test" "img/s" "bf16-fp32"
for name in "${NAMES[@]}"; do
  exp=$ROOT/launch/experiments/$name.yaml
  [ -f "$exp" ] || { echo "precision: no experiment $exp"; exit 1; }
  declare -n sets="SETS_$name" 2>/dev/null || true
  extra=("${sets[@]+"${sets[@]}"}")
  unset -n sets
  fp32=""
  for p in fp32 bf16; do
    out=$LOG/$name.$p
    "$HUBEL" train "$exp" "${extra[@]+"${extra[@]}"}" --set train.precision=$p --threads 2 --run-dir "$out.run" \
      --new-run --progress none > "$out.log" 2>&1 || { echo "precision: $name $p failed, see $out.log"; exit 1; }
    acc=$(sed -n 's/^done: .*test accuracy \([0-9.]*\).*/\1/p' "$out.log")
    [ -n "$acc" ] || acc=$(sed -n 's/^done: .*test loss \([0-9.]*\).*/\1/p' "$out.log")
    rate=$(sed -n 's/.* \([0-9.]*\) samples\/s.*/\1/p' "$out.log" | awk '{s += $1; n++} END {if (n) printf "%.0f", s / n}')
    diff=""
    if [ $p = fp32 ]; then fp32=$acc; else diff=$(awk -v a="$acc" -v b="$fp32" 'BEGIN {printf "%+.4f", a - b}'); fi
    printf "%-18s %-9s %12s %12s %10s\n" "$name" $p "$acc" "$rate" "$diff"
  done
done | tee "$LOG/table.txt"
echo "logs: $LOG"
