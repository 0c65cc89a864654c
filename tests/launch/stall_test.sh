#!/usr/bin/env bash
# A rank that stops (SIGSTOP, as a hung node or a debugger would) at each kind of wait on
# the other ranks: the gradient buckets, batch norm's statistics, the per-rank buffer
# averaging, the per-step agreement on signals, the checkpoint barrier, the epoch's
# metrics, the evaluation's sums and the partitioned store's data exchange. With train.comm_timeout: 3 the job ends within
# 3 + 5 s of the stop, non-zero, with a line naming the rank, the step and the
# operation, and leaves no process behind. LeNet (and a batch-norm variant) on real
# Fashion-MNIST converted to HDF5, the loader thread reading it, under mpirun.
# usage: stall_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 2000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
cat > "$T/bn.yaml" <<YAML
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, name: c1, filters: 6, kernel: 5, padding: 2}
    - {type: batchnorm, name: n1}
    - {type: relu}
    - {type: maxpool2d, kernel: 2}
    - {type: batchnorm, name: n2, sync: false}
    - {type: flatten}
    - {type: dense, name: out, units: 10}
  loss: softmax_cross_entropy
data: {file: $T/fm.h5, train: train, test: test, normalize: file}
optimizer: {type: sgd, lr: 0.02, momentum: 0.9}
train: {epochs: 2, batch: 64, seed: 1}
YAML

# stall NAME EXPERIMENT WHAT N [--set ...]: rank 1 stops before its N-th wait on WHAT.
stall() {
  local name=$1 exp=$2 what=$3 n=$4
  shift 4
  local log="$T/$name.log"
  "$MPIEXEC" --oversubscribe -np 2 -x HUBEL_TEST_STALL="1:$what:$n" "$HUBEL" train "$exp" --set data.file="$T/fm.h5" \
    --set train.comm_timeout=3 --set train.epochs=2 --threads 1 --run-dir "$T/run-$name" "$@" > "$log" 2>&1 &
  local pid=$! stopped=""
  for _ in $(seq 600); do
    grep -q "test: stopping myself" "$log" && { stopped=$(date +%s%N); break; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$stopped" ]; then
    fail "$name: rank 1 never reached '$what' #$n"; tail -5 "$log"; kill -KILL $pid 2>/dev/null; wait $pid; return
  fi
  # Bounded by the test itself: 30 s at most, then everything is killed and it fails.
  local waited=0
  while kill -0 $pid 2>/dev/null && [ $waited -lt 300 ]; do sleep 0.1; waited=$((waited + 1)); done
  if kill -0 $pid 2>/dev/null; then
    fail "$name: the job still runs 30 s after rank 1 stopped (a hang)"
    pkill -KILL -f "$T/run-$name"; kill -KILL $pid; wait $pid; return
  fi
  wait $pid
  local rc=$? took=$((($(date +%s%N) - stopped) / 1000000))
  local line
  line=$(grep -m1 "rank 0 waited .* for the other ranks in" "$log")
  if [ $rc -ne 0 ] && [ $took -le 8500 ] && grep -q "$what" <<<"$line" && grep -q "at step [0-9]\+\|before training" <<<"$line"; then
    ok "$name: exit $rc ${took} ms after the stop: ${line#*error: }"
  else
    fail "$name: exit $rc after ${took} ms; message: ${line:-none}"; tail -5 "$log"
  fi
  pgrep -f "$T/run-$name" > /dev/null && { fail "$name: ranks left behind"; pkill -KILL -f "$T/run-$name"; }
}

stall bucket "$LENET" "the gradient allreduce, bucket" 5
stall signals "$LENET" "the per-step agreement on signals" 7
stall barrier "$LENET" "the checkpoint barrier" 2 --set checkpoint.every_steps=4
stall epoch "$LENET" "the epoch's training metrics" 1
stall evaluation "$LENET" "the evaluation's sums" 1
stall batchnorm "$T/bn.yaml" "a layer's cross-rank statistics (batch norm)" 9
stall buffers "$T/bn.yaml" "the averaging of per-rank buffers" 4
# The partitioned store's exchange of a minibatch's rows, on the loader thread.
stall exchange "$LENET" "data exchange" 6 --set data.store=partitioned

# And stopped from outside, wherever it happens to be (as a hung node would be).
"$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" --set data.file="$T/fm.h5" --set train.comm_timeout=3 --set train.epochs=50 \
  --set checkpoint.every_steps=20 --threads 1 --run-dir "$T/run-outside" > "$T/outside.log" 2>&1 &
pid=$!
for _ in $(seq 400); do [ -s "$T/run-outside/checkpoints/latest" ] && break; sleep 0.05; done
victim=$(pgrep -f "$HUBEL train .*--run-dir $T/run-outside" | tail -1)
kill -STOP "$victim"
stopped=$(date +%s%N)
for _ in $(seq 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then
  fail "outside: the job still runs 30 s after a rank was stopped (a hang)"; pkill -KILL -f "$T/run-outside"; kill -KILL $pid
fi
wait $pid
rc=$?
took=$((($(date +%s%N) - stopped) / 1000000))
line=$(grep -m1 "waited .* for the other ranks in" "$T/outside.log")
[ $rc -ne 0 ] && [ $took -le 8500 ] && [ -n "$line" ] && ok "outside: a rank stopped by kill -STOP: exit $rc ${took} ms later: ${line#*error: }" \
  || { fail "outside: exit $rc after ${took} ms; message: ${line:-none}"; tail -3 "$T/outside.log"; }
pgrep -f "$T/run-outside" > /dev/null && { fail "outside: ranks left behind"; pkill -KILL -f "$T/run-outside"; }

[ "$failures" -eq 0 ] || { echo "$failures stall check(s) failed"; exit 1; }
echo "all stall checks passed"
