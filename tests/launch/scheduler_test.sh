#!/usr/bin/env bash
# What batch systems do at a time limit, with LeNet on real Fashion-MNIST in HDF5 under
# mpirun: SIGUSR1 or SIGUSR2 to mpirun (forwarded to the ranks) gives a checkpoint and exit
# 0, and the resumed run ends bitwise equal to an uninterrupted one; SIGTERM to mpirun
# gives a checkpoint too, but Open MPI's mpirun then exits 1 (it counts the job as killed:
# documented); launch/slurm_example.sbatch, run under stub srun and scontrol, passes
# SLURM's SIGUSR1 on, requeues the job, and its second run resumes and finishes.
# usage: scheduler_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 4000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
# 1200 steps, about 2 s (the experiment's 10 epochs are 570 steps of this set; epochs: 40 lets max_steps end it):
# time for a signal sent after the first checkpoint to arrive before the run ends.
ARGS=(--set data.file="$T/fm.h5" --set train.epochs=40 --set train.max_steps=1200 --set checkpoint.every_steps=100)
mp() { "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" "${ARGS[@]}" --threads 1 "$@"; }
mp --run-dir "$T/whole" > "$T/log" 2>&1 || { fail "the uninterrupted run"; tail -3 "$T/log"; }
final=$(last "$T/whole")

# signal_mpirun SIG DIR: starts a run, sends SIG to mpirun once its first checkpoint is
# written, prints mpirun's exit code.
signal_mpirun() {
  # mpirun itself in the background ($! must be mpirun, not a subshell).
  "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" "${ARGS[@]}" --threads 1 --run-dir "$2" > "$2.log" 2>&1 &
  local pid=$!
  for _ in $(seq 400); do [ -s "$2/checkpoints/latest" ] && break; sleep 0.05; done
  kill -"$1" $pid
  wait $pid
  echo $?
}
for sig in USR1 USR2; do
  rc=$(signal_mpirun $sig "$T/$sig")
  if [ "$rc" = 0 ] && grep -q "stopped by signal .* resume with: hubel train .* --resume auto" "$T/$sig.log"; then
    ok "SIG$sig to mpirun: exit 0, a checkpoint at step $(cat "$T/$sig/checkpoints/latest")"
  else
    fail "SIG$sig to mpirun: exit $rc"; tail -3 "$T/$sig.log"
  fi
  mp --run-dir "$T/$sig" --resume auto > "$T/log" 2>&1 || fail "resume after SIG$sig"
  same "$final" "$(last "$T/$sig")" && ok "resumed after SIG$sig = uninterrupted, bitwise" || fail "resumed after SIG$sig differs"
done
rc=$(signal_mpirun TERM "$T/TERM")
if [ "$rc" != 0 ] && grep -q "stopped by signal 15" "$T/TERM.log" && "$HUBEL" inspect "$T/TERM/checkpoints/$(cat "$T/TERM/checkpoints/latest")" > /dev/null; then
  ok "SIGTERM to mpirun: the ranks write a checkpoint; mpirun itself exits $rc (Open MPI's behaviour, documented)"
else
  fail "SIGTERM to mpirun: exit $rc"; tail -3 "$T/TERM.log"
fi

# Ctrl-C on a one-process run in a terminal: SIGINT finishes the step, writes a
# checkpoint and exits 0 with the resume line.
"$HUBEL" train "$LENET" "${ARGS[@]}" --threads 1 --run-dir "$T/INT" > "$T/INT.log" 2>&1 &
pid=$!
for _ in $(seq 400); do [ -s "$T/INT/checkpoints/latest" ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 0 ] && grep -q "stopped by signal 2 .*resume with: hubel train .* --resume auto" "$T/INT.log" \
  && ok "SIGINT (Ctrl-C): a checkpoint at $(cat "$T/INT/checkpoints/latest"), exit 0" || { fail "SIGINT: exit $rc"; tail -3 "$T/INT.log"; }
# A second Ctrl-C stops at once (exit 130, said), even inside a step: a net whose steps
# take half a second, the second SIGINT sent once the first is taken (so the kernel
# does not merge them); a checkpoint, if the step ended in between, is whole.
cat > "$T/slow.yaml" <<'YAML'
model:
  input: [1, 64, 64]
  layers:
    - {type: conv2d, filters: 16, kernel: 5, padding: 2, activation: relu}
    - {type: conv2d, filters: 32, kernel: 3, padding: 1, activation: relu}
    - {type: global_avgpool}
    - {type: dense, units: 10}
  loss: softmax_cross_entropy
data: {synthetic: {shape: [1, 64, 64], classes: 10, train: 4096, test: 0}}
optimizer: {type: sgd, lr: 0.01}
train: {epochs: 1, batch: 256}
checkpoint: {every_epochs: 0}
YAML
"$HUBEL" train "$T/slow.yaml" --threads 1 --run-dir "$T/INT2" --progress lines > "$T/INT2.log" 2>&1 &
pid=$!
for _ in $(seq 400); do [ -e "$T/INT2/metrics.jsonl" ] && break; sleep 0.05; done
sleep 1
kill -INT $pid
# The second once the first is taken (said in the log): two SIGINTs that arrive before
# the handler runs merge into one in the kernel, as happened under load with a fixed 5 ms.
for _ in $(seq 400); do grep -q "interrupted: finishing the step" "$T/INT2.log" && break; sleep 0.005; done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 130 ] && grep -q "interrupted: finishing the step" "$T/INT2.log" \
  && grep -q "interrupted again: stopping now, without a checkpoint" "$T/INT2.log" \
  && { [ ! -e "$T/INT2/checkpoints/latest" ] || "$HUBEL" inspect "$T/INT2/checkpoints/$(cat "$T/INT2/checkpoints/latest")" > /dev/null; } \
  && ok "a second Ctrl-C inside a step: exit 130 at once, said, $(ls "$T/INT2/checkpoints" 2>/dev/null | wc -l) checkpoint files" || { fail "second SIGINT: exit $rc"; cat "$T/INT2.log"; }

# The SLURM script under stubs: srun runs the ranks with mpirun; scontrol records.
mkdir -p "$T/bin"
cat > "$T/bin/srun" <<STUB
#!/bin/bash
[ "\$1" = "--cpu-bind=cores" ] && shift
exec "$MPIEXEC" --oversubscribe -np 2 "\$@"
STUB
cat > "$T/bin/scontrol" <<STUB
#!/bin/bash
echo "\$*" >> "$T/scontrol.log"
STUB
chmod +x "$T/bin/srun" "$T/bin/scontrol"
export PATH="$T/bin:$PATH" SLURM_JOB_ID=77 SLURM_JOB_NAME=lenet EXP="$LENET" HUBEL HUBEL_ARGS="${ARGS[*]}"
cd "$T"
bash "$SRC/launch/slurm_example.sbatch" > "$T/slurm1.log" 2>&1 &
pid=$!
for _ in $(seq 400); do [ -s "$T/runs/lenet-77/checkpoints/latest" ] && break; sleep 0.05; done
kill -USR1 $pid
wait $pid
rc=$?
if [ $rc -eq 0 ] && grep -qx "requeue 77" "$T/scontrol.log" 2>/dev/null; then
  ok "sbatch script: SLURM's SIGUSR1 stops the ranks with a checkpoint, exit 0, job requeued"
else
  fail "sbatch script on SIGUSR1: exit $rc, scontrol: $(cat "$T/scontrol.log" 2>/dev/null)"; tail -5 "$T/slurm1.log"
fi
bash "$SRC/launch/slurm_example.sbatch" > "$T/slurm2.log" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from .*ckpt-" "$T/slurm2.log" && [ "$(wc -l < "$T/scontrol.log")" = 1 ]; then
  ok "sbatch script, requeued: resumes, finishes, exit 0, not requeued again"
else
  fail "requeued sbatch run: exit $rc"; tail -5 "$T/slurm2.log"
fi
same "$final" "$(last "$T/runs/lenet-77")" && ok "the requeued job ends bitwise equal to an uninterrupted run" || fail "the requeued job differs"

[ "$failures" -eq 0 ] || { echo "$failures scheduler check(s) failed"; exit 1; }
echo "all scheduler checks passed"
