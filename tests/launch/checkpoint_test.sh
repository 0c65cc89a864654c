#!/usr/bin/env bash
# Checkpoints and resuming, through the hubel command: a run stopped anywhere (max_steps,
# SIGTERM) and resumed ends bitwise equal to an uninterrupted one, for every optimizer and
# on 2 ranks; a 2-rank checkpoint resumes on 1 and 4 ranks; damaged checkpoints are
# refused and `--resume auto` falls back; mismatched models and optimizers are refused.
# usage: checkpoint_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
COMMON=(--set train.epochs=4 --set "data.spirals={train: 600, test: 200}" --threads 1)

for opt in "sgd, lr: 0.1, momentum: 0.9, nesterov: true" "adam, lr: 0.01" "rmsprop, lr: 0.01" "adagrad, lr: 0.1" "adamw, lr: 0.01"; do
  "$HUBEL" train "$E" "${COMMON[@]}" --set "optimizer={type: $opt}" --run-dir "$T/a" > "$T/log" 2>&1 || fail "train ($opt)"
  "$HUBEL" train "$E" "${COMMON[@]}" --set "optimizer={type: $opt}" --set train.max_steps=30 --run-dir "$T/b" > "$T/log" 2>&1 || fail "first half ($opt)"
  "$HUBEL" train "$E" "${COMMON[@]}" --set "optimizer={type: $opt}" --run-dir "$T/b" --resume auto > "$T/log" 2>&1 || fail "resume ($opt)"
  grep -q "resumed from .*ckpt-000000030.h5" "$T/log" || fail "resume did not start at step 30 ($opt)"
  same "$(last "$T/a")" "$(last "$T/b")" && echo "ok: stopped mid-epoch and resumed = uninterrupted ($opt)" || fail "resumed run differs ($opt)"
  rm -rf "$T/a" "$T/b"
done

# 2 ranks: interrupted = uninterrupted; the 2-rank checkpoint resumes on 1 and 4 ranks.
mp() { "$MPIEXEC" --oversubscribe -np "$1" "$HUBEL" "${@:2}"; }
mp 2 train "$E" "${COMMON[@]}" --run-dir "$T/m2" > "$T/log" 2>&1 || fail "2-rank run"
mp 2 train "$E" "${COMMON[@]}" --set train.max_steps=40 --run-dir "$T/m2b" > "$T/log" 2>&1 || fail "2-rank first half"
cp -r "$T/m2b" "$T/m1b"; cp -r "$T/m2b" "$T/m4b"
mp 2 train "$E" "${COMMON[@]}" --run-dir "$T/m2b" --resume auto > "$T/log" 2>&1 || fail "2-rank resume"
same "$(last "$T/m2")" "$(last "$T/m2b")" && echo "ok: 2 ranks, resumed = uninterrupted" || fail "2-rank resumed run differs"
"$HUBEL" train "$E" "${COMMON[@]}" --run-dir "$T/m1b" --resume auto > "$T/log" 2>&1 || fail "resume on 1 rank"
mp 4 train "$E" "${COMMON[@]}" --run-dir "$T/m4b" --resume auto > "$T/log" 2>&1 || fail "resume on 4 ranks"
for n in 1 4; do
  # Absolute 1e-5 on weights of order one (a relative test would flag weights near zero).
  h5diff -d 1e-5 "$(last "$T/m2")" "$(last "$T/m${n}b")" /model > "$T/diff" 2>&1 && echo "ok: a 2-rank checkpoint resumed on $n rank(s) agrees to 1e-5" \
    || { fail "resumed on $n ranks differs by more than 1e-5"; head -5 "$T/diff"; }
done

# SIGTERM: the step finishes, a checkpoint is written, exit 0 with how to resume; the
# resumed run ends where the uninterrupted one did.
"$HUBEL" train "$E" "${COMMON[@]}" --set train.epochs=1500 --run-dir "$T/s0" > "$T/log" 2>&1 || fail "long run"
"$HUBEL" train "$E" "${COMMON[@]}" --set train.epochs=1500 --run-dir "$T/s" > "$T/slog" 2>&1 &
pid=$!
sleep 0.5
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 0 ] || fail "SIGTERM: exit $rc"
grep -q "stopped by signal 15 .*resume with: hubel train .* --resume auto" "$T/slog" && echo "ok: SIGTERM writes a checkpoint and says how to resume" \
  || { fail "SIGTERM message"; tail -3 "$T/slog"; }
"$HUBEL" train "$E" "${COMMON[@]}" --set train.epochs=1500 --run-dir "$T/s" --resume auto > "$T/log" 2>&1 || fail "resume after SIGTERM"
same "$(last "$T/s0")" "$(last "$T/s")" && echo "ok: resumed after SIGTERM = uninterrupted" || fail "resumed after SIGTERM differs"

# SIGKILL while checkpoints are being written (one every step), on LeNet over real
# Fashion-MNIST in HDF5: whatever moment it lands, `latest` and the previous checkpoints
# stay loadable and the run resumes.
fashion 2000 "$T/fm.h5" || fail "converting Fashion-MNIST"
K=(--set data.file="$T/fm.h5" --set checkpoint.every_steps=1 --threads 1)
for delay in 0.6 0.8 1.0; do
  "$HUBEL" train "$LENET" "${K[@]}" --run-dir "$T/k" > /dev/null 2>&1 &
  pid=$!
  sleep $delay
  kill -KILL $pid
  wait $pid 2>/dev/null
  [ -s "$T/k/checkpoints/latest" ] || { fail "no checkpoint written before the kill at ${delay}s"; continue; }
  out=$("$HUBEL" train "$LENET" "${K[@]}" --set train.max_steps=1 --run-dir "$T/k" --resume auto 2>&1)
  rc=$?
  [ $rc -eq 0 ] && grep -q "resumed from" <<<"$out" && echo "ok: killed after ${delay}s while writing checkpoints; resumed" \
    || { fail "resume after SIGKILL (exit $rc)"; tail -3 <<<"$out"; }
  rm -rf "$T/k"
done

# Damaged checkpoints: refused by name; --resume auto falls back to the newest good one.
"$HUBEL" train "$E" "${COMMON[@]}" --run-dir "$T/d" > "$T/log" 2>&1
newest=$(last "$T/d")
size=$(stat -c %s "$newest")
head -c $((size / 2)) "$newest" > "$T/cut.h5" && cp "$T/cut.h5" "$newest"
out=$("$HUBEL" train "$E" "${COMMON[@]}" --run-dir "$T/d2" --resume "$newest" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "$(basename "$newest")" <<<"$out" && echo "ok: a truncated checkpoint is refused: $(tail -1 <<<"$out")" || fail "truncated checkpoint accepted (exit $rc): $out"
out=$("$HUBEL" train "$E" "${COMMON[@]}" --run-dir "$T/d" --resume auto 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "resumed from .*ckpt-" <<<"$out" && ! grep -q "resumed from $newest" <<<"$out" \
  && echo "ok: --resume auto skips the damaged checkpoint" || fail "auto fallback: $(grep resumed <<<"$out")"

# Mismatches.
"$HUBEL" train "$E" "${COMMON[@]}" --run-dir "$T/x" > "$T/log" 2>&1
ck=$(last "$T/x")
# The experiment's differences from the checkpoint's are refused first, naming the keys;
# accepted (--accept-changes), the checkpoint itself still refuses what cannot load.
out=$("$HUBEL" train "$E" "${COMMON[@]}" --set model.layers.0.units=32 --run-dir "$T/y" --resume "$ck" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "model.layers\[0\].units: 64 -> 32" <<<"$out" && grep -q "resuming would change model.layers\[0\].units" <<<"$out" \
  && echo "ok: a different model is refused, the difference shown" || fail "model difference: $out"
out=$("$HUBEL" train "$E" "${COMMON[@]}" --set model.layers.0.units=32 --run-dir "$T/y" --resume "$ck" --accept-changes 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "parameter fc1/w has shape \[64, 2\] in the checkpoint but \[32, 2\] in the model" <<<"$out" \
  && echo "ok: a different model is refused" || fail "model mismatch: $out"
out=$("$HUBEL" train "$E" "${COMMON[@]}" --set "optimizer={type: adam, lr: 0.01}" --run-dir "$T/y" --resume "$ck" --accept-changes 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "the checkpoint's optimizer is sgd but the experiment's is adam.*--weights-only" <<<"$out" \
  && echo "ok: a different optimizer is refused" || fail "optimizer mismatch: $out"
"$HUBEL" train "$E" "${COMMON[@]}" --set "optimizer={type: adam, lr: 0.01}" --run-dir "$T/y" --resume "$ck" --weights-only > "$T/log" 2>&1 \
  && grep -q "(weights only)" "$T/log" && echo "ok: --weights-only starts a new optimizer from the weights" || fail "--weights-only"

[ $failures -eq 0 ] && echo "all checkpoint checks passed" || { echo "$failures failure(s)"; exit 1; }
