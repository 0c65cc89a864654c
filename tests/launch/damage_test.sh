#!/usr/bin/env bash
# The damaged-checkpoint matrix: a LeNet checkpoint (trained on real Fashion-MNIST in
# HDF5) with 4 bytes flipped at each of many offsets (spread over the whole file, and
# inside the parameters, the optimizer state, the history, the attributes and the
# experiment text), given to every command that reads checkpoints. Each must, within 60 s
# (never a hang) and never by a signal, either work and give exactly what the intact
# file gives, or exit 1 with one line naming the file; `--resume auto` may also fall back
# to the older checkpoint (and then still end exactly where an uninterrupted run does).
# usage: damage_test.sh HUBEL SOURCE_DIR MPIEXEC [SPREAD_OFFSETS]   (default 24)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SPREAD=${4:-24}
fashion 2000 "$T/fm.h5" || { echo "FAIL: converting Fashion-MNIST"; exit 1; }
D=(--set data.file="$T/fm.h5" --threads 1)
run() { timeout -k 5 60 "$HUBEL" "$@"; }
# The reference: 45 steps without a stop; and a run with checkpoints at 20 and 40.
run train "$LENET" "${D[@]}" --set train.max_steps=45 --run-dir "$T/ref" > "$T/log" 2>&1 || { fail "reference run"; cat "$T/log"; exit 1; }
REF=$(last "$T/ref")
run train "$LENET" "${D[@]}" --set train.max_steps=40 --set checkpoint.every_steps=20 --run-dir "$T/base" > "$T/log" 2>&1 || { fail "base run"; exit 1; }
GOOD="$T/base/checkpoints/ckpt-000000040.h5"
[ -f "$GOOD" ] && [ -f "$T/base/checkpoints/ckpt-000000020.h5" ] || { fail "base checkpoints missing"; exit 1; }
# What the intact file gives.
run train "$LENET" "${D[@]}" --set train.max_steps=2 --resume "$GOOD" --weights-only --run-dir "$T/wref" > /dev/null 2>&1 || fail "weights-only reference"
WREF=$(last "$T/wref")
run eval "$LENET" "${D[@]}" --checkpoint "$GOOD" 2>&1 | sed "s|$GOOD|CKPT|g" > "$T/eval.ref" || fail "eval reference"
run inspect "$GOOD" 2>&1 | sed "s|$GOOD|CKPT|g" > "$T/inspect.ref" || fail "inspect reference"
run visualize "$GOOD" --sample 3 --out "$T/visref" "${D[@]:0:2}" > /dev/null 2>&1 || fail "visualize reference"
VISREF=$(cd "$T/visref" && md5sum *.png)

checks=0
# judge NAME RC OUT FILE: rc 0 is judged by the caller; otherwise exit 1 and one error line naming FILE.
judge_error() {
  local what=$1 rc=$2 out=$3 file=$4
  if [ "$rc" -eq 124 ]; then fail "$what: no answer within 60 s (a hang)"; return 1; fi
  if [ "$rc" -ge 128 ] || grep -q "Sanitizer\|runtime error" <<<"$out"; then fail "$what: exit $rc (a crash)"; echo "$out" | tail -5; return 1; fi
  local errors
  errors=$(grep -c "^hubel: error: " <<<"$out")
  if [ "$rc" -ne 1 ] || [ "$errors" -ne 1 ] || ! grep "^hubel: error: " <<<"$out" | grep -qF "$(basename "$file")"; then
    fail "$what: exit $rc, $errors error line(s), not naming the file"; echo "$out" | tail -3; return 1
  fi
}

while read -r label offset; do
  dir="$T/dmg/$label"
  mkdir -p "$dir/checkpoints"
  cp "$T/base/checkpoints/ckpt-000000020.h5" "$GOOD" "$T/base/checkpoints/latest" "$dir/checkpoints/"
  F="$dir/checkpoints/ckpt-000000040.h5"
  python3 -c "
import sys; p, o = sys.argv[1], int(sys.argv[2]); b = bytearray(open(p, 'rb').read())
for i in range(o, min(o + 4, len(b))): b[i] ^= 0xFF
open(p, 'wb').write(b)" "$F" "$offset"
  cmp -s "$F" "$GOOD" && { fail "$label: the flip changed nothing"; continue; }
  verdicts=""
  # train --resume FILE
  out=$(run train "$LENET" "${D[@]}" --set train.max_steps=45 --resume "$F" --run-dir "$dir/a" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then same "$REF" "$(last "$dir/a")" && verdicts+=" resume:same" || fail "$label: resume FILE exit 0 with other weights"
  else judge_error "$label: train --resume FILE" $rc "$out" "$F" && verdicts+=" resume:refused"; fi
  # train --resume auto (the damaged file is the newest, named by latest)
  out=$(run train "$LENET" "${D[@]}" --set train.max_steps=45 --resume auto --run-dir "$dir" 2>&1); rc=$?
  if [ $rc -eq 0 ] && same "$REF" "$dir/checkpoints/ckpt-000000045.h5"; then
    grep -q "resumed from .*ckpt-000000020.h5" <<<"$out" && verdicts+=" auto:fell-back" || verdicts+=" auto:same"
  else fail "$label: --resume auto exit $rc"; echo "$out" | tail -3; fi
  # --weights-only
  out=$(run train "$LENET" "${D[@]}" --set train.max_steps=2 --resume "$F" --weights-only --run-dir "$dir/w" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then same "$WREF" "$(last "$dir/w")" && verdicts+=" weights:same" || fail "$label: --weights-only exit 0 with other weights"
  else judge_error "$label: --weights-only" $rc "$out" "$F" && verdicts+=" weights:refused"; fi
  # eval, inspect, visualize
  out=$(run eval "$LENET" "${D[@]}" --checkpoint "$F" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then [ "$(sed "s|$F|CKPT|g" <<<"$out")" = "$(cat "$T/eval.ref")" ] && verdicts+=" eval:same" || fail "$label: eval exit 0 with other results"
  else judge_error "$label: eval" $rc "$out" "$F" && verdicts+=" eval:refused"; fi
  out=$(run inspect "$F" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then [ "$(sed "s|$F|CKPT|g" <<<"$out")" = "$(cat "$T/inspect.ref")" ] && verdicts+=" inspect:same" || fail "$label: inspect exit 0 with other output"
  else judge_error "$label: inspect" $rc "$out" "$F" && verdicts+=" inspect:refused"; fi
  out=$(run visualize "$F" --sample 3 --out "$dir/vis" "${D[@]:0:2}" 2>&1); rc=$?
  if [ $rc -eq 0 ]; then [ "$(cd "$dir/vis" && md5sum *.png)" = "$VISREF" ] && verdicts+=" visualize:same" || fail "$label: visualize exit 0 with other pictures"
  else judge_error "$label: visualize" $rc "$out" "$F" && verdicts+=" visualize:refused"; fi
  checks=$((checks + 1))
  echo "$label @$offset:$verdicts"
  rm -rf "$dir"
done < <(python3 "$SRC/tests/launch/damage_offsets.py" "$GOOD" "$SPREAD" 40)

[ $checks -ge $((SPREAD + 5)) ] || fail "only $checks damaged files were tried"
[ "$failures" -eq 0 ] || { echo "$failures damage check(s) failed"; exit 1; }
echo "all damage checks passed ($checks damaged files x 6 commands)"
