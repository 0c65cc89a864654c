#!/usr/bin/env bash
# Bitwise the same training on any number of ranks and threads (docs/many-ranks.md): real
# Fashion-MNIST converted to HDF5, read by the loader thread, trained under mpirun on 1, 2
# and 4 ranks with 1 and 2 threads; the checkpoints' /model and /optimizer and every
# number in metrics.jsonl (timings aside) must be bitwise equal to the 1-rank run's, also
# after a 2-rank run stopped at step 25 is resumed on 1 and on 4 ranks.
#   exact_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "$0")/common.sh"
DATA="$T/fashion.h5"
fashion 1200 "$DATA" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }

# LeNet with momentum SGD (cosine schedule, weight decay), and a net with synchronized
# batch norm, a residual block (its add passes the gradient through, the pooled output's
# two gradients added by the fan-out), a strided convolution (read through its phases),
# dropout and Adam with gradient clipping.
cat > "$T/bn.yaml" <<'YAML'
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, name: c1, filters: 8, kernel: 3, padding: same, bias: false}
    - {type: batchnorm, name: bn1, sync: true}
    - {type: relu}
    - {type: maxpool2d, name: p1, kernel: 2}
    - {type: conv2d, name: r1, filters: 8, kernel: 3, padding: same, bias: false}
    - {type: batchnorm, name: rbn, sync: true}
    - {type: add, name: res, inputs: [rbn, p1]}
    - {type: relu}
    - {type: conv2d, name: c2, filters: 16, kernel: 3, stride: 2, padding: 1, rounding: floor}
    - {type: batchnorm, name: bn2, sync: true}
    - {type: relu}
    - {type: global_avgpool}
    - {type: dropout, rate: 0.3}
    - {type: dense, name: out, units: 10}
  loss: softmax_cross_entropy
data: {train: train, test: test, normalize: file}
optimizer: {type: adam, lr: 0.003, clip_norm: 1.0}
train: {epochs: 3, batch: 64, seed: 5}
YAML

# run NAME RANKS THREADS EXPERIMENT [ARGS...]: trains 60 steps into $T/NAME
run() {
  local name=$1 np=$2 threads=$3 exp=$4
  shift 4
  "$MPIEXEC" --oversubscribe -np "$np" "$HUBEL" train "$exp" --run-dir "$T/$name" --threads "$threads" \
    --set data.file="$DATA" --set train.max_steps=60 --set checkpoint.every_steps=0 "$@" > "$T/$name.log" 2>&1 ||
    { fail "$name: exit $?"; tail -5 "$T/$name.log"; return 1; }
}
# the numbers of metrics.jsonl, timings left out
numbers() {
  python3 - "$1/metrics.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print({k: v for k, v in r.items() if k not in ("seconds", "time", "samples_per_second", "comm_wait_ms", "data_wait_ms", "busy_ms_min", "busy_ms_max", "slowest_rank")})
PY
}
# equal REFERENCE NAME: the checkpoints and the metrics bitwise equal
equal() {
  local a b
  a=$(last "$T/$1") b=$(last "$T/$2")
  if ! same "$a" "$b"; then
    fail "$2 differs from $1: $(h5diff -q "$a" "$b" /model 2>&1 | head -1; h5diff "$a" "$b" /model 2>&1 | grep -c 'differences found') tensors of /model differ"
    return
  fi
  if ! diff <(numbers "$T/$1") <(numbers "$T/$2") > /dev/null; then
    fail "$2: metrics.jsonl differs from $1's"
    diff <(numbers "$T/$1") <(numbers "$T/$2") | head -4
    return
  fi
  ok "$2 equals $1 bit for bit (model, optimizer, metrics)"
}

for exp in lenet bn; do
  e="$LENET"
  [ $exp = bn ] && e="$T/bn.yaml"
  run $exp-1x1 1 1 "$e" || continue
  grep -q "exact: yes" "$T/$exp-1x1.log" || fail "$exp: the banner does not say the run is exact: $(grep -m1 exact "$T/$exp-1x1.log")"
  for cfg in 1x2 2x1 2x2 4x1; do
    run $exp-$cfg "${cfg%x*}" "${cfg#*x}" "$e" && equal $exp-1x1 $exp-$cfg
  done
done

# train.precision: bf16 is as exact: the bf16 convolutions on 1, 2 and 4 ranks, 1 and 2
# threads, give the 1-rank bits; and they are not the fp32 run's bits.
if grep -qw avx512_bf16 /proc/cpuinfo; then
  if run bf16-1x1 1 1 "$T/bn.yaml" --set train.precision=bf16; then
    grep -q "bf16 products (fp32 sums) in 3 of 3 convolutions" "$T/bf16-1x1.log" ||
      fail "bf16: the banner does not say the convolutions run in bf16: $(head -1 "$T/bf16-1x1.log")"
    same "$(last "$T/bn-1x1")" "$(last "$T/bf16-1x1")" && fail "bf16: the model equals the fp32 run's: bf16 did not run"
    for cfg in 1x2 2x1 4x1; do
      run bf16-$cfg "${cfg%x*}" "${cfg#*x}" "$T/bn.yaml" --set train.precision=bf16 && equal bf16-1x1 bf16-$cfg
    done
  fi
else
  run bf16-1x1 1 1 "$T/bn.yaml" --set train.precision=bf16 &&
    grep -q "precision bf16 asked, but this CPU has no AVX512_BF16: fp32" "$T/bf16-1x1.log" &&
    equal bn-1x1 bf16-1x1
fi

# Resume on another number of ranks: 2 ranks stop at step 25, 1 and 4 ranks go on to 60.
run stop25 2 1 "$LENET" --set train.max_steps=25 && for np in 1 4; do
  cp -r "$T/stop25" "$T/resume-on-$np"
  "$MPIEXEC" --oversubscribe -np $np "$HUBEL" train "$LENET" --run-dir "$T/resume-on-$np" --resume auto --threads 1 \
    --set data.file="$DATA" --set train.max_steps=60 --set checkpoint.every_steps=0 > "$T/resume-on-$np.log" 2>&1 ||
    { fail "resume on $np ranks: exit $?"; tail -5 "$T/resume-on-$np.log"; continue; }
  a=$(last "$T/lenet-1x1") b=$(last "$T/resume-on-$np")
  same "$a" "$b" && ok "2 ranks to step 25, then $np rank(s) to 60: equal to the straight run" ||
    fail "2 ranks to step 25, then $np rank(s) to 60: differs from the straight run"
done

# Not exact, and said so: 3 ranks do not divide the chunks.
"$MPIEXEC" --oversubscribe -np 3 "$HUBEL" train "$LENET" --run-dir "$T/three" --set data.file="$DATA" --set train.batch=48 \
  --set train.max_steps=2 > "$T/three.log" 2>&1 || fail "3 ranks: exit $?"
grep -q "exact: no" "$T/three.log" && ok "3 ranks: the banner says the run is not exact ($(grep -m1 'exact: no' "$T/three.log"))" ||
  fail "3 ranks: the banner does not say the run is not exact"
"$MPIEXEC" --oversubscribe -np 3 "$HUBEL" train "$LENET" --run-dir "$T/three-strict" --set data.file="$DATA" --set train.batch=48 \
  --set train.max_steps=2 --set train.exact=true > "$T/three-strict.log" 2>&1
rc=$?
[ $rc = 1 ] && grep -q "train.exact" "$T/three-strict.log" && ok "3 ranks with train.exact: true: refused, naming the key" ||
  fail "3 ranks with train.exact: true: exit $rc, $(grep -m1 -i exact "$T/three-strict.log")"

# A mistake in the experiment under mpirun: said once (rank 0), every rank ends with exit
# 1, without MPI_Abort.
sed 's/units: 120/unist: 120/' "$LENET" > "$T/typo.yaml"
"$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$T/typo.yaml" --run-dir "$T/typo" > "$T/typo.log" 2>&1
rc=$?
n=$(grep -c "unknown key 'unist'; did you mean 'units'" "$T/typo.log")
[ $rc != 0 ] && [ "$n" = 1 ] && ! grep -q "MPI_ABORT" "$T/typo.log" &&
  ok "a mistake under mpirun is printed once, without MPI_ABORT (exit $rc)" ||
  fail "a mistake under mpirun: exit $rc, printed $n times, $(grep -c MPI_ABORT "$T/typo.log") MPI_ABORT lines"

# launch/mpirun_example.sh passes the options after the experiment through to hubel train
# (it runs the build under the source tree: checked when that is the hubel under test).
if [ "$(realpath "$SRC/build/launch/hubel" 2> /dev/null)" = "$HUBEL" ]; then
  RANKS=2 bash "$SRC/launch/mpirun_example.sh" "$LENET" --set data.file="$DATA" --set train.max_steps=3 \
    --run-dir "$T/example" > "$T/example.log" 2>&1
  rc=$?
  [ $rc = 0 ] && grep -q "done: 3 steps" "$T/example.log" && grep -q "exact: yes" "$T/example.log" &&
    ok "mpirun_example.sh passes --set and --run-dir through (3 steps on 2 ranks)" ||
    fail "mpirun_example.sh with --set: exit $rc, $(tail -2 "$T/example.log")"
fi

[ $failures = 0 ] && echo "exact: all passed" || echo "exact: $failures failed"
[ $failures = 0 ]
