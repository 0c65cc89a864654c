#!/usr/bin/env bash
# The cost of exact training (docs/many-ranks.md): the same workload with train.exact on
# (the default) and off, runs interleaved (exact, not, exact, not, ...), PAIRS pairs each
# (default 5). Prints images/second of each run, the ratio exact/not of each pair and its
# median, the gradient bytes each rank sends per step and the time it waited for them.
#
#   bash bench/exact.sh              # LeNet-5, Fashion-MNIST, 2 ranks x 1 thread, batch 128
#   PAIRS=3 NP=4 THREADS=1 bash bench/exact.sh
#
# With it, `mpirun -np 2 build/bench/bench_allreduce` measures the ordered allreduce itself
# against MPI_Allreduce for a LeNet-sized and a 10-million-float arena.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PAIRS=${PAIRS:-5} NP=${NP:-2} THREADS=${THREADS:-1} BATCH=${BATCH:-128}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x build/launch/hubel ] || { echo "exact.sh: build hubel first (bash launch/test.sh or launch/run.sh)"; exit 1; }
[ -f data/fashion-mnist.h5 ] ||
  build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist > /dev/null ||
  exit 1
LOG=$ROOT/runs/exact-$(date +%Y%m%d-%H%M%S)
mkdir -p "$LOG"
E=$ROOT/bench/experiments/lenet_peer.yaml
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), family $(lscpu | sed -n 's/^CPU family: *//p') model $(lscpu | sed -n 's/^Model: *//p'); hubel $(git rev-parse --short HEAD 2>/dev/null); $NP ranks x $THREADS threads, batch $BATCH; logs $LOG" | tee "$LOG/summary.txt"
for i in $(seq 1 "$PAIRS"); do
  for mode in true false; do
    mpirun --oversubscribe -np "$NP" build/launch/hubel train "$E" --threads "$THREADS" --set train.batch="$BATCH" \
      --set train.exact=$mode --run-dir "$LOG/$mode.$i" > "$LOG/$mode.$i.log" 2>&1 ||
      { echo "exact.sh: run $mode.$i failed; see $LOG/$mode.$i.log"; exit 1; }
  done
done
python3 - "$LOG" "$PAIRS" "$NP" <<'PY' | tee -a "$LOG/summary.txt"
import json, re, statistics, sys
log, pairs, p = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def run(name):
    text = open(f"{log}/{name}.log").read()
    rate = float(re.search(r"([0-9.]+) samples/s", text).group(1))
    params = int(re.search(r"total: .*?, ([0-9]+) parameters", text).group(1))
    epoch = [json.loads(l) for l in open(f"{log}/{name}/metrics.jsonl") if '"epoch"' in l and '"kind": "epoch"' in l][0]
    return rate, params, epoch["comm_wait_ms"]
print(f"{'pair':>4}  {'exact img/s':>11}  {'not exact img/s':>15}  {'ratio':>6}  {'wait exact ms/step':>18}  {'wait not ms/step':>16}")
ratios = []
for i in range(1, pairs + 1):
    (a, params, wa), (b, _, wb) = run(f"true.{i}"), run(f"false.{i}")
    ratios.append(a / b)
    print(f"{i:>4}  {a:>11,.0f}  {b:>15,.0f}  {a / b:>6.3f}  {wa:>18.3f}  {wb:>16.3f}")
sent = 2 * (p - 1) / p * params * 4
print(f"median ratio exact / not exact: {statistics.median(ratios):.3f}; gradient bytes sent per rank and step: "
      f"{sent / 1e3:.1f} kB ({params} parameters, the same either way)")
PY
