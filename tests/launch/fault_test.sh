#!/usr/bin/env bash
# Fault injection under mpirun with 2 ranks, on LeNet over real Fashion-MNIST converted to
# HDF5 (the loader thread reading it): a rank killed mid-epoch, a checkpoint write that
# fails, a diverging learning rate, a data file removed or replaced while a run is paused.
# Each ends with a clear message and a non-zero exit, within seconds, and loses nothing
# that was saved.
# usage: fault_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 2000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
E=$LENET
COMMON=(--set data.file="$T/fm.h5" --set checkpoint.every_steps=25 --threads 1)
mp() { "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" "$@"; }

# 1. A rank killed with SIGKILL mid-epoch: mpirun ends non-zero within seconds; resuming
#    from `latest` ends bitwise equal to an uninterrupted run on the same 2 ranks.
mp train "$E" "${COMMON[@]}" --set train.epochs=30 --run-dir "$T/whole" > "$T/log" 2>&1 || fail "uninterrupted 2-rank run"
mp train "$E" "${COMMON[@]}" --set train.epochs=30 --run-dir "$T/k" > "$T/klog" 2>&1 &
mpirun_pid=$!
for _ in $(seq 100); do [ -s "$T/k/checkpoints/latest" ] && break; sleep 0.05; done
sleep 0.3
victim=$(pgrep -f "$HUBEL train .*--run-dir $T/k" | tail -1)
if [ -z "$victim" ]; then
  fail "no rank to kill (the run ended too soon?)"
else
  start=$(date +%s%N)
  kill -KILL "$victim"
  wait $mpirun_pid
  rc=$?
  took_ms=$((($(date +%s%N) - start) / 1000000))
  if [ $rc -ne 0 ] && [ $took_ms -lt 15000 ]; then ok "a rank killed by SIGKILL: mpirun exits $rc after ${took_ms} ms"; else fail "after SIGKILL of a rank: exit $rc after ${took_ms} ms"; fi
  if pgrep -f "$HUBEL train .*--run-dir $T/k" > /dev/null; then fail "ranks left running after the kill"; fi
  mp train "$E" "${COMMON[@]}" --set train.epochs=30 --run-dir "$T/k" --resume auto > "$T/log" 2>&1 || { fail "resume after the kill"; tail -3 "$T/log"; }
  grep -q "resumed from" "$T/log" || fail "the resumed run did not start from a checkpoint"
  same "$(last "$T/whole")" "$(last "$T/k")" && ok "resumed after a killed rank = uninterrupted, bitwise" || fail "resumed run differs from the uninterrupted one"
fi

# 2. A checkpoint write that fails (the file size limit): a clear error, exit 2; the
#    previous checkpoint and `latest` are unchanged and loadable.
mp train "$E" "${COMMON[@]}" --set train.epochs=2 --run-dir "$T/w" > "$T/log" 2>&1 || fail "run before the write failure"
before=$(cat "$T/w/checkpoints/latest")
sums=$(md5sum "$T"/w/checkpoints/*)
# The limit applies to the ranks only (over TCP: shared-memory transport files would hit it).
"$MPIEXEC" --oversubscribe --mca btl self,tcp -np 2 bash -c 'ulimit -f 40; exec "$@"' limited "$HUBEL" \
  train "$E" "${COMMON[@]}" --set train.epochs=4 --run-dir "$T/w" --resume auto > "$T/wlog" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -q "writing the checkpoint of step [0-9]* failed: .*File too large (the file size limit: see ulimit -f); the previous checkpoints and .*latest are unchanged" "$T/wlog"; then
  ok "a failing checkpoint write: exit $rc and the reason"
else
  fail "a failing checkpoint write: exit $rc"; tail -5 "$T/wlog"
fi
[ "$(cat "$T/w/checkpoints/latest")" = "$before" ] && [ "$(md5sum "$T"/w/checkpoints/*)" = "$sums" ] && ok "previous checkpoints and latest unchanged" \
  || fail "the checkpoint directory changed"
ls "$T"/w/checkpoints/*.tmp.* > /dev/null 2>&1 && fail "a temporary file was left behind"
"$HUBEL" inspect "$T/w/checkpoints/$before" > /dev/null 2>&1 && ok "latest still loads" || fail "latest does not load"

# 3. A learning rate that makes the loss diverge: stopped at the first non-finite loss,
#    naming the step and the layer; the last good checkpoint is kept.
mp train "$E" "${COMMON[@]}" --set optimizer.lr=1.0e+12 --set checkpoint.every_steps=1 --run-dir "$T/d" > "$T/dlog" 2>&1
rc=$?
[ $rc -eq 2 ] && grep -q "the loss became .*nan at epoch 1, step [0-9]* (rank [01]); the first non-finite value is in the output of layer" "$T/dlog" \
  && ok "divergence on 2 ranks: exit 2 naming step and layer" || { fail "divergence: exit $rc"; tail -3 "$T/dlog"; }
"$HUBEL" inspect "$T/d/checkpoints/$(cat "$T/d/checkpoints/latest")" > /dev/null 2>&1 && ok "the last good checkpoint loads" || fail "no good checkpoint after divergence"

# 4. The data file removed, or replaced by a damaged one, while a run is paused between
#    epochs: a clear error on resume (exit 1), not a crash.
printf '\x00\x00\x08\x03\x00\x00\x00\x40\x00\x00\x00\x04\x00\x00\x00\x04' > "$T/train-images-idx3-ubyte"
head -c 1024 /dev/urandom >> "$T/train-images-idx3-ubyte"
printf '\x00\x00\x08\x01\x00\x00\x00\x40' > "$T/train-labels-idx1-ubyte"
for i in $(seq 64); do printf "\\x0$((i % 4))"; done >> "$T/train-labels-idx1-ubyte"
cp "$T/train-images-idx3-ubyte" "$T/t10k-images-idx3-ubyte"; cp "$T/train-labels-idx1-ubyte" "$T/t10k-labels-idx1-ubyte"
"$HUBEL" convert idx "$T" "$T/small.h5" > "$T/log" 2>&1 || { fail "convert a small IDX set"; cat "$T/log"; }
cat > "$T/small.yaml" <<YAML
model:
  input: [1, 4, 4]
  layers: [{type: flatten}, {type: dense, units: 8}, {type: relu}, {type: dense, units: 4}]
  loss: softmax_cross_entropy
data: {file: $T/small.h5, train: train, test: test}
optimizer: {type: sgd, lr: 0.05}
train: {epochs: 4, batch: 8, seed: 1}
YAML
mp train "$T/small.yaml" --set train.epochs=2 --run-dir "$T/p" --threads 1 > "$T/log" 2>&1 || { fail "paused run"; cat "$T/log"; }
mv "$T/small.h5" "$T/small.h5.away"
mp train "$T/small.yaml" --run-dir "$T/p" --resume auto --threads 1 > "$T/plog" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "small.h5: no such file" "$T/plog" && ok "data file removed: exit 1 naming it" || { fail "removed data file: exit $rc"; tail -3 "$T/plog"; }
head -c 3000 "$T/small.h5.away" > "$T/small.h5"
mp train "$T/small.yaml" --run-dir "$T/p" --resume auto --threads 1 > "$T/plog" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "small.h5.*\(not an HDF5 file\|truncated\|damaged\)" "$T/plog" && ok "data file truncated: exit 1 naming it" || { fail "truncated data file: exit $rc"; tail -3 "$T/plog"; }
grep -qi "segmentation\|core dumped\|signal" "$T/plog" && fail "a crash on the damaged data file"

[ "$failures" -eq 0 ] || { echo "$failures fault check(s) failed"; exit 1; }
echo "all fault checks passed"
