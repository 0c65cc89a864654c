#!/usr/bin/env bash
# Early stopping and the best checkpoint as users meet them, with LeNet on real
# Fashion-MNIST converted to HDF5 (the loader thread reading it), on 1 and 2 ranks:
#  - early stopping stops after `patience` epochs without improvement, says why, and a run
#    resumed from the middle (or from its end) stops where the uninterrupted one did, bitwise;
#  - best.h5 is the checkpoint of the best held-out epoch, kept whatever keep prunes;
#  - monitoring the held-out set without one is an error naming the key.
# usage: early_stop_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 2000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
# 1800 train rows (200 held out by the default val_fraction) = 29 steps of 64 per epoch.
# The monitor "train_loss, mode: max" has a known answer: a falling loss is best at epoch 1,
# so patience 2 stops after epoch 3.
D=(--set data.file="$T/fm.h5" --threads 1 --progress none --set train.epochs=6
  --set 'train.early_stop={monitor: train_loss, mode: max, patience: 2}')
one() { timeout -k 5 120 "$HUBEL" train "$LENET" "${D[@]}" "$@"; }
mp() { timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" "${D[@]}" "$@"; }
epochs() { grep -c '"kind": "epoch"' "$1/metrics.jsonl"; }

# 1. Early stopping, uninterrupted.
one --run-dir "$T/whole" > "$T/log" 2>&1 || { fail "the uninterrupted run"; tail -3 "$T/log"; }
if grep -q "^early stop: train_loss has not improved for 2 epochs (best [0-9.]* at epoch 1)$" "$T/log" \
  && [ "$(epochs "$T/whole")" = 3 ] && grep -q "^done: 87 steps" "$T/log"; then
  ok "early stopping ended the 6-epoch run after epoch 3: $(grep '^early stop' "$T/log")"
else
  fail "early stopping: $(grep -c '^epoch' "$T/log") epochs"; tail -4 "$T/log"
fi

# 2. Stopped mid-epoch 2 on 2 ranks, resumed: the same stop, the same weights.
mp --set train.max_steps=40 --run-dir "$T/r" > "$T/log" 2>&1 || fail "the first part on 2 ranks"
mp --run-dir "$T/r" --resume auto > "$T/rlog" 2>&1 || { fail "the resumed part"; tail -3 "$T/rlog"; }
grep -q "^early stop: train_loss has not improved for 2 epochs" "$T/rlog" && [ "$(epochs "$T/r")" = 3 ] \
  && same "$(last "$T/whole")" "$(last "$T/r")" \
  && ok "resumed at step 40 on 2 ranks, it stopped after epoch 3 too, bitwise as the uninterrupted run" \
  || { fail "the resumed run did not stop alike: $(epochs "$T/r") epochs"; tail -3 "$T/rlog"; }
# Resuming a run that stopped early trains nothing more.
before=$(ls "$T/r/checkpoints")
mp --run-dir "$T/r" --resume auto > "$T/rlog" 2>&1 || fail "resuming the stopped run"
grep -q "^early stop:" "$T/rlog" && ! grep -q "^epoch" "$T/rlog" && [ "$(epochs "$T/r")" = 3 ] \
  && ok "resuming a run that stopped early trains no further" || { fail "resuming a stopped run trained"; tail -3 "$T/rlog"; }

# 3. best.h5 by a monitor whose best is the first epoch (the highest held-out loss: mode
#    max), so that keep: 1 prunes that epoch's ckpt file; best.h5 stays.
one --set 'checkpoint.best={monitor: val_loss, mode: max}' --set checkpoint.keep=1 --set train.epochs=3 \
  --set 'train.early_stop=null' --run-dir "$T/b" > "$T/log" 2>&1 || { fail "the best-checkpoint run"; tail -3 "$T/log"; }
want=$(python3 - "$T/b/metrics.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1]) if '"epoch"' in l and '"kind": "epoch"' in l]
best = max(r, key=lambda e: (e["heldout_loss"], -e["epoch"]))
print(best["steps"])
PY
)
got=$(h5dump -a /step "$T/b/checkpoints/best.h5" 2>/dev/null | sed -n 's/.*(0): *//p')
files=$(cd "$T/b/checkpoints" && ls ckpt-*.h5 | wc -l)
[ -n "$want" ] && [ "$got" = "$want" ] && [ "$files" = 1 ] && [ ! -f "$T/b/checkpoints/ckpt-$(printf %09d "$got").h5" ] \
  && ok "best.h5 is the checkpoint of step $got, the highest val loss in metrics.jsonl; keep 1 left one ckpt beside it" \
  || fail "best.h5 is step '$got', the best epoch ended at step '$want'; $files ckpt files"
"$HUBEL" eval --checkpoint "$T/b/checkpoints/best.h5" --set data.file="$T/fm.h5" > "$T/elog" 2>&1 \
  && ok "hubel eval reads best.h5" || { fail "eval of best.h5"; tail -2 "$T/elog"; }

# 4. The held-out set monitored without one.
out=$(one --set data.val_fraction=0 --set 'train.early_stop={monitor: val_loss}' --run-dir "$T/e" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "train.early_stop watches val_loss but the run has no held-out set" <<<"$out" \
  && ok "early stopping on val_loss without a held-out set: ${out##*error: }" || { fail "no held-out set: exit $rc"; tail -2 <<<"$out"; }

[ "$failures" = 0 ] || { echo "$failures early stopping check(s) failed"; exit 1; }
