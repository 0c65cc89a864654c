#!/usr/bin/env bash
# Soak test (not part of CI): trains the modern LeNet on 2 ranks for MINUTES minutes
# (default 30) with a checkpoint every minute, and stops it with SIGTERM at random moments
# every few minutes, resuming each time with --resume auto. At the end it checks that
# metrics.jsonl (one record per step) has every step exactly once, in order, across all the
# restarts, and that the final weights equal, bit for bit, an uninterrupted run of the same
# number of steps (which it then trains: the whole soak takes about twice MINUTES).
# usage: bench/soak.sh [MINUTES] [RUN_DIR]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MINUTES=${1:-30}
DIR=${2:-runs/soak}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
[ -x build/launch/hubel ] || { echo "build hubel first (bash launch/test.sh or launch/run.sh)"; exit 1; }
[ -f data/fashion-mnist.h5 ] || build/launch/hubel convert idx /usr/share/datasets/fashion-mnist data/fashion-mnist.h5 --classes fashion-mnist
EXP=launch/experiments/lenet_modern.yaml
SETS=(--set train.epochs=100000 --set train.log_every=1 --set checkpoint.every_minutes=1 --set checkpoint.every_epochs=0 --set checkpoint.keep=2)
rm -rf "$DIR" "$DIR-reference"
deadline=$(($(date +%s) + 60 * MINUTES))
stops=0
resume=()
while [ "$(date +%s)" -lt "$deadline" ]; do
  mpirun --oversubscribe -np 2 build/launch/hubel train "$EXP" "${SETS[@]}" --threads 1 --run-dir "$DIR" "${resume[@]}" \
    >> "$DIR.log" 2>&1 &
  pid=$!
  # Run 2 to 5 minutes (less near the deadline), then SIGTERM at a random moment.
  left=$((deadline - $(date +%s)))
  pause=$((120 + RANDOM % 180))
  [ $pause -gt $left ] && pause=$left
  [ $pause -lt 30 ] && pause=30  # past start-up, so the signal finds the handler installed
  sleep "$pause"
  # SIGTERM to every rank, as a scheduler signals every process of a job (SIGTERM to
  # mpirun itself would make it end the job with an error of its own).
  pkill -TERM -f "^build/launch/hubel train $EXP .*--run-dir $DIR( |\$)"
  wait $pid
  rc=$?
  [ $rc -eq 0 ] || { echo "soak: the run exited $rc after SIGTERM; see $DIR.log"; exit 1; }
  stops=$((stops + 1))
  resume=(--resume auto)
done
steps=$(tail -1 "$DIR/checkpoints/latest" | sed 's/ckpt-0*\([0-9]*\).h5/\1/')
echo "soak: $stops SIGTERM stops in $MINUTES minutes; $steps steps"
# Every step exactly once, in order.
python3 - "$DIR/metrics.jsonl" "$steps" <<'PY' || exit 1
import json, sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["kind"] == "step"]
want = list(range(1, int(sys.argv[2]) + 1))
if steps != want:
    missing = sorted(set(want) - set(steps))[:5]
    repeated = sorted({s for s in steps if steps.count(s) > 1})[:5] if len(steps) < 200000 else "(not listed)"
    print(f"soak: metrics.jsonl has {len(steps)} step records for {len(want)} steps; missing {missing}, repeated {repeated}")
    sys.exit(1)
print(f"soak: metrics.jsonl has each of the {len(want)} steps once, in order")
PY
# The same number of steps without interruption: the same weights, bit for bit.
mpirun --oversubscribe -np 2 build/launch/hubel train "$EXP" "${SETS[@]}" --set train.max_steps="$steps" --threads 1 \
  --run-dir "$DIR-reference" > "$DIR-reference.log" 2>&1 || { echo "soak: the reference run failed"; exit 1; }
a="$DIR/checkpoints/$(cat "$DIR/checkpoints/latest")"
b="$DIR-reference/checkpoints/$(cat "$DIR-reference/checkpoints/latest")"
if h5diff "$a" "$b" /model > /dev/null && h5diff "$a" "$b" /optimizer > /dev/null; then
  echo "soak: passed: the final weights and optimizer state equal the uninterrupted run's, bitwise"
else
  echo "soak: FAILED: $a and $b differ"
  exit 1
fi
