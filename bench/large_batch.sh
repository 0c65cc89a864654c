#!/usr/bin/env bash
# Large-batch training (docs/many-ranks.md): LeNet (launch/experiments/lenet_modern.yaml)
# on Fashion-MNIST at global batch 64 against 1024 (64 x 16 accumulated micro-batches,
# the mathematics of 16 ranks x 64 on one machine), with SGD and the linear scaling rule
# (scale_lr_with_batch: the warm-up included), LARS and LAMB. Prints, per run, the
# held-out accuracy after each epoch, the epochs to reach TARGET (default 0.89) and the
# test accuracy at the end.
#
#   bash bench/large_batch.sh                  # 15 epochs each, 2 threads
#   EPOCHS=10 TARGET=0.88 bash bench/large_batch.sh
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
EPOCHS=${EPOCHS:-15} TARGET=${TARGET:-0.89} THREADS=${THREADS:-2}
export OPENBLAS_NUM_THREADS=1
[ -x build/launch/hubel ] || { echo "large_batch.sh: build hubel first (bash launch/test.sh or launch/run.sh)"; exit 1; }
[ -f data/fashion-mnist.h5 ] ||
  build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist > /dev/null ||
  exit 1
LOG=$ROOT/runs/large-batch-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'); hubel $(git rev-parse --short HEAD 2>/dev/null); $EPOCHS epochs, cosine; logs $LOG" | tee "$LOG/summary.txt"
run() {  # name, --set ...
  local name=$1
  shift
  build/launch/hubel train launch/experiments/lenet_modern.yaml --threads "$THREADS" --set data.file="$ROOT/data/fashion-mnist.h5" \
    --set train.epochs="$EPOCHS" --run-dir "$LOG/$name" --progress none "$@" > "$LOG/$name.log" 2>&1 ||
    { echo "large_batch.sh: $name failed; see $LOG/$name.log"; exit 1; }
  python3 - "$name" "$TARGET" "$LOG/$name.log" <<'PY' | tee -a "$LOG/summary.txt"
import re, sys
name, target, text = sys.argv[1], float(sys.argv[2]), open(sys.argv[3]).read()
acc = [float(a) for a in re.findall(r"val loss [0-9.]+ acc ([0-9.]+)", text)]
test = re.search(r"test accuracy ([0-9.]+)", text)
reach = next((i + 1 for i, a in enumerate(acc) if a >= target), None)
print("%-34s epochs to %.2f: %-4s test %s   val by epoch: %s" % (name, target, reach or "-", test.group(1) if test else "?",
      " ".join("%.3f" % a for a in acc)))
PY
}
run "batch 64, sgd lr 0.02" 
run "batch 1024, sgd lr 0.02 (not scaled)" --set train.accumulate=16
run "batch 1024, sgd scaled x16 + warm-up" --set train.accumulate=16 \
  --set 'optimizer={type: sgd, lr: 0.02, momentum: 0.9, weight_decay: 5.0e-4, scale_lr_with_batch: true, reference_batch: 64}'
run "batch 1024, lars lr 10 + warm-up" --set train.accumulate=16 \
  --set 'optimizer={type: lars, lr: 10, momentum: 0.9, weight_decay: 5.0e-4}' --set 'schedule={type: cosine, warmup_epochs: 2}'
run "batch 1024, lamb lr 0.02 + warm-up" --set train.accumulate=16 \
  --set 'optimizer={type: lamb, lr: 0.02, weight_decay: 0.01}' --set 'schedule={type: cosine, warmup_epochs: 2}'
