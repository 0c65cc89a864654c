#!/usr/bin/env bash
# Real images through the command: Fashion-MNIST written as PNG files in class folders
# (launch/fashion_images.py), converted with `hubel convert images --split-dir`, trains to
# bitwise the same weights as the same samples converted from IDX files in the same order
# (same pixels, same order), on 2 ranks under mpirun with the loader thread; bad files are
# named, stop the conversion with nothing written, or are skipped and counted.
# usage: images_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
python3 "$SRC/launch/fashion_images.py" /usr/share/datasets/fashion-mnist "$T/img" --limit 2000 --grouped-idx "$T/idx" > "$T/log" 2>&1 \
  || { echo "FAIL: writing the image folders"; cat "$T/log"; exit 1; }
"$HUBEL" convert images "$T/img" "$T/img.h5" --split-dir > "$T/conv.log" 2>&1 || { fail "convert images"; cat "$T/conv.log"; }
grep -q "train 2000 x \[1, 28, 28\]; test 400 x \[1, 28, 28\]; 10 classes" "$T/conv.log" \
  && ok "convert images: $(cat "$T/conv.log")" || { fail "convert images said: $(cat "$T/conv.log")"; }
"$HUBEL" convert idx "$T/idx" "$T/idx.h5" > /dev/null 2>&1 || fail "convert idx"
h5diff "$T/img.h5" "$T/idx.h5" /train/images > /dev/null && h5diff "$T/img.h5" "$T/idx.h5" /train/labels > /dev/null \
  && ok "the PNG folders hold the IDX files' pixels and labels, in the same order" || fail "pixels or labels differ"
for f in img idx; do
  timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" --threads 1 --set data.file="$T/$f.h5" \
    --set train.max_steps=60 --run-dir "$T/run-$f" > "$T/$f.log" 2>&1 || { fail "training on $f.h5"; tail -3 "$T/$f.log"; }
done
same "$(last "$T/run-img")" "$(last "$T/run-idx")" \
  && ok "training on PNG-decoded and on IDX-converted Fashion-MNIST: the same weights, bit for bit (2 ranks)" \
  || fail "the weights differ between the PNG and the IDX runs"
# The ready experiment trains from it.
"$HUBEL" train "$SRC/launch/experiments/fashion_images.yaml" --set data.file="$T/img.h5" --set train.max_steps=20 \
  --run-dir "$T/ready" --threads 1 > "$T/ready.log" 2>&1 && grep -q "^done: 20 steps" "$T/ready.log" \
  && ok "launch/experiments/fashion_images.yaml trains on the converted folder" || { fail "fashion_images.yaml"; tail -3 "$T/ready.log"; }
# hubel predict: the folder of test PNGs and the converted split give the same top classes
# and probabilities, line by line (the same pixels, the same order), on 1 and 2 ranks; its
# top-1 accuracy is the one hubel eval reports.
"$HUBEL" predict "$T/run-img/checkpoints" "$T/img/test" --top 3 --out "$T/p-png.jsonl" --threads 1 > "$T/p.log" 2>&1 || { fail "predict PNGs"; tail -3 "$T/p.log"; }
"$HUBEL" predict "$T/run-img/checkpoints" "$T/img.h5:test" --top 3 --out "$T/p-h5.jsonl" --threads 1 > /dev/null 2>&1 || fail "predict DATA.h5:test"
timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" predict "$T/run-img/checkpoints" "$T/img/test" --top 3 --out "$T/p-np2.jsonl" --threads 1 > /dev/null 2>&1 || fail "predict on 2 ranks"
python3 - "$T/p-png.jsonl" "$T/p-h5.jsonl" "$T/p-np2.jsonl" "$T/idx/t10k-labels-idx1-ubyte" > "$T/pcheck" 2>&1 <<'PY'
import json, sys
png, h5, np2 = ([json.loads(l) for l in open(f)] for f in sys.argv[1:4])
labels = open(sys.argv[4], "rb").read()[8:]
assert len(png) == len(h5) == len(np2) == 400, (len(png), len(h5), len(np2))
assert [r["top"] for r in png] == [r["top"] for r in h5], "folder and split differ"
assert png == np2, "2 ranks differ"
assert png[0]["input"].endswith("test/0_T-shirt_top/000019.png"), png[0]["input"]
acc = sum(r["top"][0]["class"] == labels[i] for i, r in enumerate(png)) / len(png)
print("%.4f" % acc)
PY
acc=$(cat "$T/pcheck")
eval_acc=$("$HUBEL" eval --checkpoint "$T/run-img/checkpoints" --set data.file="$T/img.h5" 2>&1 | sed -n 's/.*accuracy \([0-9.]*\).*/\1/p' | head -1)
[ -n "$eval_acc" ] && [ "$acc" = "$eval_acc" ] \
  && ok "predict: PNG folder = DATA.h5:test = 2 ranks, top-1 accuracy $acc = hubel eval's" || fail "predict: $(cat "$T/pcheck"), eval $eval_acc"
# Stored encoded (--encoded): the PNG files as they are, decoded by the loader on its
# threads. The same pixels and the same random resized crops give the weights of the
# decoded set, bit for bit, on 2 ranks.
AUG='{flip: true, resized_crop: {scale: [0.35, 1]}, rotate: 8}'
"$HUBEL" convert images "$T/img" "$T/enc.h5" --split-dir --encoded > "$T/enc.log" 2>&1 && grep -q "train 2000; test 400; 10 classes; 1 channel(s), stored encoded" "$T/enc.log" \
  && ok "convert images --encoded: $(cat "$T/enc.log")" || { fail "convert --encoded"; cat "$T/enc.log"; }
for f in img enc; do
  timeout -k 5 120 "$MPIEXEC" --oversubscribe -np 2 "$HUBEL" train "$LENET" --threads 1 --set data.file="$T/$f.h5" --set "data.augment=$AUG" \
    --set train.max_steps=40 --run-dir "$T/aug-$f" > "$T/aug-$f.log" 2>&1 || { fail "augmented training on $f.h5"; tail -3 "$T/aug-$f.log"; }
done
same "$(last "$T/aug-img")" "$(last "$T/aug-enc")" \
  && ok "training on encoded PNGs decoded by the loader = on decoded ones, with random resized crops, bit for bit (2 ranks)" \
  || fail "the weights differ between the encoded and the decoded runs"
# Full-resolution images of varied sizes (each side enlarged 1-2.5x): decoded, cropped and
# shrunk (antialiased) to data.size by the loader; the same weights on 1 and 2 ranks.
python3 "$SRC/launch/fashion_images.py" /usr/share/datasets/fashion-mnist "$T/big" --limit 1000 --enlarge 2.5 > /dev/null 2>&1 || fail "enlarged folders"
"$HUBEL" convert images "$T/big" "$T/big.h5" --split-dir --encoded > "$T/big.log" 2>&1 || { fail "convert the enlarged folder"; cat "$T/big.log"; }
out=$("$HUBEL" train "$LENET" --set data.file="$T/big.h5" --set train.max_steps=1 --run-dir "$T/nosize" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "big.h5:/train: the images have .* different sizes and the file records none for the samples; give data.size: \[H, W\]" <<<"$out" \
  && ok "without a size: ${out#hubel: error: }" || { fail "no data.size: exit $rc"; echo "$out"; }
for np in 1 2; do
  timeout -k 5 120 "$MPIEXEC" --oversubscribe -np $np "$HUBEL" train "$LENET" --threads 1 --set data.file="$T/big.h5" --set data.size=28 \
    --set "data.augment=$AUG" --set train.max_steps=30 --run-dir "$T/big-$np" > "$T/big-$np.log" 2>&1 || { fail "training on big.h5, $np rank(s)"; tail -3 "$T/big-$np.log"; }
done
same "$(last "$T/big-1")" "$(last "$T/big-2")" \
  && ok "full-resolution encoded images of varied sizes: the same weights on 1 and 2 ranks" || fail "1 and 2 ranks differ on big.h5"
"$HUBEL" predict "$T/big-1/checkpoints" "$T/big.h5:test" --top 1 --out "$T/pb.csv" --threads 1 > /dev/null 2>&1 \
  && [ "$(wc -l < "$T/pb.csv")" = 201 ] && ok "predict on an encoded split" || fail "predict on big.h5:test"
# Bad files: a text file named .png, an empty .jpg (both found from their headers), a
# truncated PNG (found decoding).
cls="$T/img/train/3_Dress"
echo "not an image" > "$cls/zz-text.png"
: > "$cls/zz-empty.jpg"
head -c 100 "$(ls "$cls"/0*.png | head -1)" > "$cls/zz-cut.png"
out=$("$HUBEL" convert images "$T/img" "$T/bad.h5" --split-dir 2>&1); rc=$?
[ $rc = 1 ] && grep -q "zz-empty.jpg: an empty file (0 bytes), not an image (2 bad file(s) found reading the headers); nothing was written" <<<"$out" && [ ! -e "$T/bad.h5" ] \
  && ok "a bad file stops the conversion, named, nothing written: ${out#hubel: error: }" || { fail "bad files: exit $rc"; echo "$out"; }
out=$("$HUBEL" convert images "$T/img" "$T/bad.h5" --split-dir --skip-bad 2>&1); rc=$?
[ $rc = 0 ] && grep -q "3 bad file(s) skipped" <<<"$out" && grep -q "^skipped: .*zz-empty.jpg: an empty file" <<<"$out" \
  && grep -q "train 2000 x" <<<"$out" && ok "--skip-bad converts the rest and counts the 3 bad files" || { fail "--skip-bad: exit $rc"; echo "$out"; }
out=$("$HUBEL" predict "$T/run-img/checkpoints" "$cls/zz-text.png" "$cls/$(ls "$cls" | head -1)" 2>&1); rc=$?
[ $rc = 1 ] && grep -q "zz-text.png: not a PNG or JPEG image.*--skip-bad predicts the rest" <<<"$out" \
  && ok "predict names a file that is not an image: ${out#hubel: error: }" || { fail "predict on a bad file: exit $rc"; echo "$out"; }
out=$("$HUBEL" predict "$T/run-img/checkpoints" "$cls/zz-text.png" "$cls/$(ls "$cls" | head -1)" --skip-bad 2>&1); rc=$?
[ $rc = 0 ] && grep -q "^skipped: .*zz-text.png" <<<"$out" && [ "$(grep -c "^/.*png: " <<<"$out")" = 1 ] \
  && ok "predict --skip-bad predicts the rest" || { fail "predict --skip-bad: exit $rc"; echo "$out"; }
rm "$cls/zz-text.png" "$cls/zz-empty.jpg" "$T/bad.h5"
out=$("$HUBEL" convert images "$T/img" "$T/bad.h5" --split-dir 2>&1); rc=$?
[ $rc = 1 ] && grep -q "zz-cut.png: a damaged or truncated PNG (libpng: .*) (1 bad file(s) found decoding); nothing was written" <<<"$out" \
  && [ ! -e "$T/bad.h5" ] && ok "a truncated PNG, found decoding: ${out#hubel: error: }" || { fail "truncated PNG: exit $rc"; echo "$out"; }
# Resizing: --size 32,32 gives LeNet-5's input without padding.
"$HUBEL" convert images "$T/img" "$T/r.h5" --split-dir --skip-bad --size 32,32 --resize exact 2>&1 | grep -q "train 2000 x \[1, 32, 32\]" \
  && ok "--size 32,32 --resize exact" || fail "--size 32,32"
[ "$failures" = 0 ] || { echo "$failures image check(s) failed"; exit 1; }
