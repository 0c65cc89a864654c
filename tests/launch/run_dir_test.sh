#!/usr/bin/env bash
# The run directory as users meet it, with LeNet on real Fashion-MNIST converted to HDF5
# (the loader thread reading it) and under mpirun where ranks matter:
#  - a damaged newest checkpoint: --resume auto falls back and finishes (no hang), on 2 ranks;
#  - a new run into a directory holding another run's checkpoints is refused; --new-run
#    moves them aside; pruning keeps the run's own; `latest` always names a file;
#  - two runs into one directory at once: the second fails at once naming the holder;
#  - metrics.jsonl after a rank is killed and the run resumed: every step once, every line
#    whole JSON, the same records as an uninterrupted run; a full disk is an error;
#  - converted data carries checksums: flipped image bytes are an error naming the file
#    and split, not silent training.
# usage: run_dir_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
fashion 4000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
D=(--set data.file="$T/fm.h5" --threads 1)
mp() { timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" "${D[@]}" "$@"; }
one() { timeout -k 5 120 "$HUBEL" train "$LENET" "${D[@]}" "$@"; }

# 1. --resume auto with the newest checkpoint damaged inside /model/f5/w, on 2 ranks.
mp --set train.max_steps=130 --set checkpoint.every_steps=60 --run-dir "$T/whole" > "$T/log" 2>&1 || fail "uninterrupted 130 steps"
mp --set train.max_steps=120 --set checkpoint.every_steps=60 --run-dir "$T/a" > "$T/log" 2>&1 || fail "120 steps"
newest="$T/a/checkpoints/ckpt-000000120.h5"
h5dump -d /model/f5/w -b LE -o "$T/f5w.bin" "$newest" > /dev/null
python3 - "$newest" "$T/f5w.bin" <<'PY'
import sys
f, pattern = sys.argv[1], open(sys.argv[2], "rb").read()
b = bytearray(open(f, "rb").read())
at = b.find(pattern[len(pattern) // 2:len(pattern) // 2 + 32])
assert at >= 0
for i in range(at + 8, at + 12): b[i] ^= 0xFF
open(f, "wb").write(b)
PY
start=$(date +%s)
mp --set train.max_steps=130 --set checkpoint.every_steps=60 --run-dir "$T/a" --resume auto > "$T/alog" 2>&1
rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from .*ckpt-000000114.h5" "$T/alog"; then
  ok "damaged newest checkpoint: --resume auto on 2 ranks fell back to step 114 (the second epoch's end: 3600 of the 4000 train, 400 held out) and finished in $(($(date +%s) - start)) s"
else
  fail "damaged newest checkpoint: exit $rc after $(($(date +%s) - start)) s"; tail -3 "$T/alog"
fi
same "$(last "$T/whole")" "$T/a/checkpoints/ckpt-000000130.h5" && ok "the fallback run ends bitwise where the uninterrupted one does" || fail "the fallback run differs"

# 2. Re-running into a finished run's directory.
one --set train.max_steps=200 --set checkpoint.every_steps=50 --run-dir "$T/old" > "$T/log" 2>&1 || fail "the old run"
cp -r "$T/old" "$T/re"
before=$(cd "$T/re/checkpoints" && ls ckpt-*.h5 | tr '\n' ' ')
out=$(one --set train.max_steps=100 --set checkpoint.every_steps=50 --run-dir "$T/re" 2>&1); rc=$?
if [ $rc -eq 1 ] && grep -q "^hubel: error: .*re/checkpoints holds the checkpoints of another run (newest: ckpt-000000200.h5): continue that run with --resume auto, train into another --run-dir, or start a new run here with --new-run" <<<"$out"; then
  ok "a new run into another run's directory is refused: ${out#hubel: error: }"
else
  fail "new run into another run's directory: exit $rc"; tail -2 <<<"$out"
fi
[ "$(cd "$T/re/checkpoints" && ls ckpt-*.h5 | tr '\n' ' ')" = "$before" ] && ok "the old run's checkpoints are untouched" || fail "the old checkpoints changed"
one --set train.max_steps=100 --set checkpoint.every_steps=50 --run-dir "$T/re" --new-run > "$T/log" 2>&1 || { fail "--new-run"; tail -3 "$T/log"; }
aside=$(ls -d "$T"/re/checkpoints/previous-* 2>/dev/null | head -1)
[ -n "$aside" ] && [ "$(cd "$aside" && ls ckpt-*.h5 | tr '\n' ' ')" = "$before" ] && [ -f "$aside/metrics.jsonl" ] \
  && ok "--new-run moved the old checkpoints and logs to $(basename "$aside")" || fail "--new-run did not keep the old run"
[ "$(cat "$T/re/checkpoints/latest")" = "ckpt-000000100.h5" ] && [ "$(cd "$T/re/checkpoints" && ls ckpt-*.h5 | tr '\n' ' ')" = "ckpt-000000050.h5 ckpt-000000057.h5 ckpt-000000100.h5 " ] \
  && ok "the new run's own checkpoints, latest at step 100" || fail "new run checkpoints: $(ls "$T/re/checkpoints")"
out=$(one --set train.max_steps=150 --set checkpoint.every_steps=50 --run-dir "$T/re" --resume auto 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "resumed from .*ckpt-000000100.h5" <<<"$out" && ok "--resume auto continues the new run, not the old one" || fail "resume auto after --new-run: exit $rc"
# A foreign checkpoint with a later step in the directory is never pruned, overwritten or
# resumed from: the run writes its own step 200 and keeps the other as ckpt-000000200.h5.run-<id>.
cp "$T/old/checkpoints/ckpt-000000200.h5" "$T/re/checkpoints/"
foreign=$(md5sum < "$T/re/checkpoints/ckpt-000000200.h5")
one --set train.max_steps=300 --set checkpoint.every_steps=50 --set checkpoint.keep=1 --run-dir "$T/re" --resume auto > "$T/log" 2>&1 || fail "resume with a foreign checkpoint present"
grep -q "resumed from .*ckpt-000000150.h5" "$T/log" && [ "$(md5sum < "$T"/re/checkpoints/ckpt-000000200.h5.run-*)" = "$foreign" ] && [ -f "$T/re/checkpoints/$(cat "$T/re/checkpoints/latest")" ] \
  && [ "$(cat "$T/re/checkpoints/latest")" = "ckpt-000000300.h5" ] && ok "pruning keeps another run's checkpoint; latest names an existing file" \
  || fail "pruning with a foreign checkpoint: $(ls "$T/re/checkpoints"), latest $(cat "$T/re/checkpoints/latest")"

# 3. Two runs at once.
"$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" "${D[@]}" --set train.max_steps=100000 --set train.epochs=1000 --run-dir "$T/busy" > "$T/busy.log" 2>&1 &
first=$!
for _ in $(seq 200); do [ -s "$T/busy/.hubel.lock" ] && grep -q "epoch\|step" "$T/busy.log" && break; sleep 0.05; done
start=$(date +%s%N)
out=$(mp --set train.max_steps=10 --run-dir "$T/busy" 2>&1); rc=$?
took=$((($(date +%s%N) - start) / 1000000))
if [ $rc -ne 0 ] && grep -q "busy: another hubel run is using this run directory (PID [0-9]* on host $(hostname), since " <<<"$out"; then
  ok "a second run into a busy directory fails after ${took} ms naming the holder"
else
  fail "second run into a busy directory: exit $rc"; tail -3 <<<"$out"
fi
kill -USR1 $first; wait $first
one --set train.epochs=1000 --set train.max_steps=10 --run-dir "$T/busy" --resume auto > "$T/log" 2>&1 && ok "the directory is free again after the first run ended" || { fail "lock left behind"; tail -3 "$T/log"; }

# 4. metrics.jsonl: a rank killed mid-run, then resumed; and a full disk.
records() {  # "kind:step" of every record; fails on a line that is not whole JSON
  python3 - "$1" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    print("%s:%s" % (r["kind"], r.get("step", r.get("steps", r.get("samples")))))
PY
}
L=(--set train.max_steps=400 --set checkpoint.every_steps=70 --set train.log_every=10)
mp "${L[@]}" --run-dir "$T/m0" > "$T/log" 2>&1 || fail "uninterrupted logged run"
mp "${L[@]}" --run-dir "$T/m1" > "$T/m1.log" 2>&1 &
pid=$!
for _ in $(seq 400); do [ "$(cat "$T/m1/checkpoints/latest" 2>/dev/null)" = "ckpt-000000140.h5" ] && break; sleep 0.02; done
sleep 0.2
victim=$(pgrep -f "$HUBEL train .*--run-dir $T/m1" | tail -1)
kill -KILL "$victim" 2>/dev/null
wait $pid
mp "${L[@]}" --run-dir "$T/m1" --resume auto > "$T/log" 2>&1 || { fail "resume after the kill"; tail -3 "$T/log"; }
if a=$(records "$T/m0/metrics.jsonl") && b=$(records "$T/m1/metrics.jsonl") && [ "$a" = "$b" ]; then
  ok "metrics.jsonl after a killed rank and a resume: $(wc -l <<<"$b") whole records, each step once, as uninterrupted"
else
  fail "metrics.jsonl differs from the uninterrupted run's"; diff <(echo "$a") <(echo "$b") | head -5
fi
mkdir -p "$T/full"
ln -s /dev/full "$T/full/metrics.jsonl"
out=$(one --set train.max_steps=100 --set train.log_every=10 --run-dir "$T/full" 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "^hubel: error: writing .*full/metrics.jsonl failed: No space left on device (the disk is full)" <<<"$out" \
  && ok "a full disk under metrics.jsonl: exit 2, named" || { fail "metrics.jsonl on a full disk: exit $rc"; tail -2 <<<"$out"; }

# 5. Flipped bytes in a converted data file's images.
cp "$T/fm.h5" "$T/bad.h5"
h5dump -d /train/images -b LE -o "$T/img.bin" "$T/bad.h5" > /dev/null
python3 - "$T/bad.h5" "$T/img.bin" <<'PY'
import sys
f, pattern = sys.argv[1], open(sys.argv[2], "rb").read()
b = bytearray(open(f, "rb").read())
at = b.find(pattern[1000000:1000064])
assert at >= 0
for i in range(at, at + 4): b[i] ^= 0xFF
open(f, "wb").write(b)
PY
out=$(timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" --set data.file="$T/bad.h5" --threads 1 --set train.max_steps=10 --run-dir "$T/bad" 2>&1); rc=$?
[ $rc -eq 1 ] && grep -q "error: .*bad.h5:/train/images: reading failed (a damaged file, or a checksum mismatch)" <<<"$out" \
  && ok "flipped image bytes: exit 1 naming the file and split" || { fail "flipped image bytes: exit $rc"; grep error <<<"$out" | head -3; }

[ "$failures" -eq 0 ] || { echo "$failures run directory check(s) failed"; exit 1; }
echo "all run directory checks passed"
