#!/usr/bin/env bash
# The hubel command on bad and good input: each bad input gives one clear line naming the
# file, line and key (or layer), and exit code 1; good input trains and exits 0.
# usage: cli_test.sh HUBEL_BINARY SOURCE_DIR
set -u
HUBEL=$1
SRC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failures=0

# expect CODE PATTERN -- ARGS...: run hubel, check the exit code and that output matches.
expect() {
  local code=$1 pattern=$2
  shift 3
  local out rc
  out=$("$HUBEL" "$@" 2>&1)
  rc=$?
  if [ "$rc" -ne "$code" ] || ! grep -qE -- "$pattern" <<<"$out"; then
    echo "FAIL: hubel $* -> exit $rc (want $code), output does not match /$pattern/:"
    echo "$out" | head -20
    failures=$((failures + 1))
  else
    echo "ok: hubel $* -> $code, /$pattern/"
  fi
}

DEFAULT_LAYERS="    - {type: dense, units: 16}
    - {type: relu}
    - {type: dense, units: 2}"
good() {  # a valid experiment; $1 replaces the layers list when given
  local layers=${1:-$DEFAULT_LAYERS}
  cat <<YAML
model:
  input: [2]
  layers:
$layers
  loss: softmax_cross_entropy
data:
  spirals: {train: 200, test: 100}
optimizer: {type: sgd, lr: 0.1}
train: {epochs: 2, batch: 20, seed: 1}
YAML
}

good > "$T/good.yaml"
expect 0 "test accuracy" -- train "$T/good.yaml" --run-dir "$T/run"
[ -s "$T/run/metrics.csv" ] && [ "$(wc -l < "$T/run/metrics.csv")" -eq 3 ] || { echo "FAIL: metrics.csv missing or wrong"; failures=$((failures + 1)); }
expect 0 "total: 3 layers, 82 parameters" -- summary "$T/good.yaml"

# eval takes the checkpoint as --resume does (a file, the directory, its latest), the
# experiment from it when none is given, and prints per-class metrics.
expect 0 "ckpt-0+20.h5 on .*200 samples, loss [0-9.]+, accuracy" -- eval --checkpoint "$T/run/checkpoints" --split train
expect 0 "class +precision +recall +f1 +samples" -- eval --checkpoint "$T/run/checkpoints/latest"
expect 0 "^ +1 +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+$" -- eval "$T/good.yaml" --checkpoint "$T/run/checkpoints"
expect 1 "nothing: no such checkpoint file or directory" -- eval --checkpoint "$T/nothing"

# --quiet leaves out the data, the model summary and the settings; --progress none the
# progress lines; --progress lines prints them even to a pipe.
out=$("$HUBEL" train "$T/good.yaml" --run-dir "$T/quiet" --quiet --progress none --progress-seconds 0.001 2>&1)
if grep -q "^exact: yes" <<<"$out" && ! grep -qE "^layer |^data: |^loss " <<<"$out" && ! grep -qE "step +[0-9]+/" <<<"$out"; then
  echo "ok: --quiet --progress none"
else
  echo "FAIL: --quiet --progress none printed:"; echo "$out" | head; failures=$((failures + 1))
fi
expect 0 "epoch 1/2 +batch +[0-9]+/10" -- train "$T/good.yaml" --run-dir "$T/lines" --progress lines --progress-seconds 0.001
expect 1 "--progress must be bar, lines, none or auto; got 'bars'; did you mean 'bar'\?" -- train "$T/good.yaml" --progress bars

# Resuming compares the experiment with the checkpoint's: every difference printed; more
# epochs allowed, another learning rate refused unless accepted.
expect 0 "train.epochs: 2 -> 3" -- train "$T/good.yaml" --run-dir "$T/run" --resume auto --set train.epochs=3
expect 1 "resuming would change optimizer.lr .*--accept-changes" -- train "$T/good.yaml" --run-dir "$T/run" \
  --resume auto --set train.epochs=3 --set optimizer.lr=0.05
expect 0 "optimizer.lr: 0.1 -> 0.05" -- train "$T/good.yaml" --run-dir "$T/run" --resume auto --set train.epochs=3 \
  --set optimizer.lr=0.05 --accept-changes

# Mistakes are named with the nearest correct word, and a subcommand's mistake shows that
# subcommand's options.
expect 1 "unknown command 'trian'; did you mean 'train'\?" -- trian "$T/good.yaml"
expect 1 "unrecognised option '--thread'; did you mean '--threads'\?" -- train "$T/good.yaml" --thread 2
expect 1 "usage: hubel train EXPERIMENT.yaml" -- train "$T/good.yaml" --thread 2
good | sed 's/  optimizer:/  optimiser:/; s/^optimizer:/optimiser:/' > "$T/typo1.yaml"
expect 1 "typo1.yaml:[0-9]+:1 \(optimiser\): unknown key 'optimiser'; did you mean 'optimizer'\?" -- summary "$T/typo1.yaml"
good | sed 's/{type: dense, units: 16}/{type: dense, unist: 16}/; s/{type: relu}/{type: rleu}/' > "$T/typo2.yaml"
grep -q unist "$T/typo2.yaml" && grep -q rleu "$T/typo2.yaml" || { echo "FAIL: typo2.yaml not made"; failures=$((failures + 1)); }
expect 1 "unknown key 'unist'; did you mean 'units'\?" -- summary "$T/typo2.yaml"
sed -i 's/unist/units/' "$T/typo2.yaml"
expect 1 "unknown layer type 'rleu'; did you mean 'relu'(, 'elu')?.*known types" -- summary "$T/typo2.yaml"
expect 1 "is a directory, not an experiment file" -- summary "$T"

check() {  # check "what" command...: a failing command is a failed check
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; failures=$((failures + 1)); fi
}
# Progress for a log (stderr is not a terminal here): plain lines, no control characters.
# (A held-out set of 20,000 points: evaluating it takes milliseconds, so its progress is
# due at least once; 5 batches could all pass within the 0.1 ms after the last step's line.)
"$HUBEL" train "$T/good.yaml" --run-dir "$T/run3" --set train.log_every=3 --set data.spirals.val=20000 \
  --progress-seconds 0.0001 > "$T/out.txt" 2> "$T/err.txt"
check "progress lines on stderr" grep -qE "^epoch 2/2  batch [0-9]+/10  loss [0-9.]+ acc [0-9.]+  [0-9]+ img/s  run done in [0-9:]+$" "$T/err.txt"
check "evaluation progress lines on stderr" grep -qE "^evaluating val batch [0-9]+/[0-9]+  done in [0-9:]+$" "$T/err.txt"
check "no control characters in the progress lines" bash -c "! LC_ALL=C grep -q '[[:cntrl:]]' '$T/err.txt'"
# metrics.jsonl: every line a JSON object; step records every 3 steps, epochs in order.
check "metrics.jsonl parses line by line, in order" python3 - "$T/run3/metrics.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
steps = [r["step"] for r in records if r["kind"] == "step"]
epochs = [r["epoch"] for r in records if r["kind"] == "epoch"]
assert steps == [3, 6, 9, 12, 15, 18], steps
assert epochs == [1, 2], epochs
assert records[-1]["kind"] == "test" and 0 <= records[-1]["accuracy"] <= 1, records[-1]
assert all(r["epoch"] <= 2 for r in records if "epoch" in r)
PY
check "report.html with curves and the confusion matrix" bash -c "grep -q '<svg' '$T/run3/report.html' && grep -q 'Confusion matrix (test, 100 samples' '$T/run3/report.html'"
check "experiment.yaml as run, with the override" grep -q "log_every: 3" "$T/run3/experiment.yaml"
# A diverging run stops at the first non-finite loss, naming step and layer, exit code 2;
# the last good checkpoint stays, whole.
expect 2 "the loss became .*nan at epoch 1, step [0-9]+ \(rank 0\); the first non-finite value is in the output of layer 'dense[12]'" -- \
  train "$T/good.yaml" --run-dir "$T/div" --set optimizer.lr=1.0e+12 --set checkpoint.every_steps=1
check "the last good checkpoint is kept after divergence" "$HUBEL" inspect "$T/div/checkpoints/$(cat "$T/div/checkpoints/latest")"
# Absurd sizes are refused before anything is allocated.
expect 1 "this model needs [0-9.]+ GiB at 20 rows per rank .*the largest layer is 'dense1'.*more than this machine's" -- \
  train "$T/good.yaml" --set model.layers.0.units=1000000000
expect 1 "layer 'dense1' \(dense\): shape \[5000000000000000000, 2\] has more than 2\^63 elements" -- \
  train "$T/good.yaml" --set model.layers.0.units=5000000000000000000
# --profile: a table of the layers and the rest of the step.
expect 0 "profile \(rank 0, 20 steps, 20.0 rows per step" -- train "$T/good.yaml" --run-dir "$T/run4" --profile
expect 0 "^dense1 +dense +[0-9.]+ +[0-9.]+ +[0-9.]+%" -- train "$T/good.yaml" --run-dir "$T/run4b" --profile
expect 0 "^\(allreduce wait\) +[0-9.]+" -- train "$T/good.yaml" --run-dir "$T/run4c" --profile
# The product kernels' width: HUBEL_VECTOR_WIDTH chooses it, and anything else is refused by name.
HUBEL_VECTOR_WIDTH=128 expect 1 "HUBEL_VECTOR_WIDTH=128: expected 256 or 512" -- train "$T/good.yaml" --run-dir "$T/vw"
HUBEL_VECTOR_WIDTH=256 expect 0 "thread\(s\), 256-bit product kernels, experiment" -- train "$T/good.yaml" --run-dir "$T/vw"
# Every subcommand has --help.
for cmd in train eval summary inspect convert visualize; do
  expect 0 "usage: hubel $cmd" -- "$cmd" --help
done
expect 1 "unknown command 'trian'" -- trian "$T/good.yaml"
expect 1 "unrecognised option|unrecognized option" -- visualize "$T/run3/checkpoints/latest" --smaple 3
expect 0 "epoch +1/1" -- train "$T/good.yaml" --run-dir "$T/run2" --set train.epochs=1 --threads 1

expect 1 "cannot open the experiment file" -- train "$T/missing.yaml"
printf 'model: [1, 2\n  x: }\n' > "$T/notyaml.yaml"
expect 1 "notyaml.yaml:[0-9]+:[0-9]+: not valid YAML" -- train "$T/notyaml.yaml"
good "    - {type: dense, units: 16}
    - {type: rleu}
    - {type: dense, units: 2}" > "$T/type.yaml"
expect 1 "type.yaml:5:7 \(model.layers\[1\]\): unknown layer type 'rleu'; did you mean 'relu'\? \([0-9]+ known types" -- train "$T/type.yaml"
good "    - {type: dense, units: 16, activation: relu}
    - {type: dense, units: 2}" > "$T/key.yaml"
expect 1 "key.yaml:4:32 \(model.layers\[0\].activation\): unknown key 'activation'" -- train "$T/key.yaml"
good "    - {type: dense, units: sixteen}
    - {type: dense, units: 2}" > "$T/value.yaml"
expect 1 "value.yaml:4:28 \(model.layers\[0\].units\): expected an integer, found 'sixteen'" -- train "$T/value.yaml"
good "    - {type: dense, units: 16, units: 999}
    - {type: dense, units: 2}" > "$T/dup.yaml"
expect 1 "^hubel: error: .*dup.yaml:4:32 \(model.layers\[0\].units\): duplicate key 'units' \(also on line 4\)" -- train "$T/dup.yaml" --run-dir "$T/dup"
printf 'model:\n  input: [2]\n  layers: [{type: dense, units: 2}]\noptimizer: {type: sgd, lr: 0.1}\ndata: {spirals: {train: 10}}\noptimizer: {type: adam}\n' > "$T/dup2.yaml"
expect 1 "dup2.yaml:6:1 \(optimizer\): duplicate key 'optimizer' \(also on line 4\)" -- train "$T/dup2.yaml" --run-dir "$T/dup"
good "    - {type: dense, name: c1/w, units: 16}
    - {type: dense, units: 2}" > "$T/slash.yaml"
expect 1 "^hubel: error: .*slash.yaml:4:27 \(model.layers\[0\].name\): layer name 'c1/w' has '/'" -- train "$T/slash.yaml" --run-dir "$T/slash"
expect 1 "^hubel: error: --set model.layers.99999999999999999999999.units=3: 'model.layers' has 3 items; index 99999999999999999999999 is out of range$" -- \
  train "$T/good.yaml" --set model.layers.99999999999999999999999.units=3 --run-dir "$T/idx"
good "    - {type: dense, units: 6}
    - {type: reshape, name: grid, shape: [4, 4]}
    - {type: dense, units: 2}" > "$T/shape.yaml"
expect 1 "shape.yaml:5:7 .*layer 'grid' \(reshape\): cannot reshape \[6\]" -- train "$T/shape.yaml"
good "    - {type: dense, units: 3}" > "$T/classes.yaml"
expect 1 "outputs \[3\] .* the data has 2 classes" -- train "$T/classes.yaml"
expect 1 "--set optimizer.lr=fast: expected a number" -- train "$T/good.yaml" --set optimizer.lr=fast
expect 1 "unknown key 'epoch'" -- train "$T/good.yaml" --set train.epoch=3
expect 1 "unknown command 'trian'" -- trian "$T/good.yaml"
expect 1 "missing the experiment file" -- train
expect 1 "unrecognised option|unrecognized option" -- train "$T/good.yaml" --thread 2
expect 0 "usage: hubel" -- --help
expect 0 "--set" -- train --help

# A file with several mistakes lists them all (sections, layers, data), each where it is.
cat > "$T/bad.yaml" <<'YAML'
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, filters: 4, kernal: 5}
    - {type: rleu}
    - {type: flatten}
    - {type: dense, units: 10}
  loss: softmax_cross_entropy
data: {file: /nonexistent.h5}
optimiser: {type: sgd, lr: 0.1}
train: {epochs: 2, bacth: 3}
YAML
for verb in train summary; do
  expect 1 "^hubel: error: 5 mistakes:$" -- $verb "$T/bad.yaml"
  expect 1 "^  $T/bad.yaml:10:1 \(optimiser\): unknown key 'optimiser'; did you mean 'optimizer'\?$" -- $verb "$T/bad.yaml"
  expect 1 "^  $T/bad.yaml:11:20 \(train.bacth\): unknown key 'bacth' in 'train'; did you mean 'batch'\?$" -- $verb "$T/bad.yaml"
  expect 1 "^  $T/bad.yaml:4:34 \(model.layers\[0\].kernal\): unknown key 'kernal'; did you mean 'kernel'\?$" -- $verb "$T/bad.yaml"
  expect 1 "^  $T/bad.yaml:5:7 \(model.layers\[1\]\): unknown layer type 'rleu'; did you mean 'relu'\?" -- $verb "$T/bad.yaml"
  expect 1 "^  $T/bad.yaml:9:14 \(data.file\): /nonexistent.h5: no such file$" -- $verb "$T/bad.yaml"
done
# With the model right, the optimizer (which needs the built model) is checked with the rest.
sed -i 's/optimiser/optimizer/; s/{type: sgd, lr: 0.1}/{type: sgd, lr: 0.1, momentun: 0.9}/; s/bacth/batch/; s/kernal/kernel/; s/rleu/relu/' "$T/bad.yaml"
expect 1 "^hubel: error: 2 mistakes:$" -- summary "$T/bad.yaml"
expect 1 "^  $T/bad.yaml:10:.*unknown key 'momentun'.*did you mean 'momentum'" -- summary "$T/bad.yaml"

# hubel convert: errors name the file; the real Fashion-MNIST converts and LeNet trains on it.
expect 1 "unknown input format 'png'" -- convert png "$T" "$T/x.h5"
expect 1 "neither train-labels-idx1-ubyte nor train-labels-idx1-ubyte.gz is there|neither train-images" -- convert idx "$T" "$T/x.h5"
[ ! -e "$T/x.h5" ] || { echo "FAIL: a failed conversion left $T/x.h5"; failures=$((failures + 1)); }
FM=/usr/share/datasets/fashion-mnist
if [ -d "$FM" ]; then
  expect 0 "train 60000 x \[1, 28, 28\]; test 10000 x \[1, 28, 28\]; 10 classes" -- convert idx "$FM" "$T/fm.h5" --classes fashion-mnist
  expect 0 "test accuracy 0\.[5-9]" -- train "$SRC/launch/experiments/lenet_modern.yaml" --run-dir "$T/lenet" \
    --set data.file="$T/fm.h5" --set train.epochs=1 --set train.max_steps=150 --threads 2
  CK="$T/lenet/checkpoints/ckpt-000000150.h5"
  expect 0 "position: epoch 1, 150 minibatches into it, step 150" -- inspect "$CK" --export-weights "$T/w.h5"
  expect 0 "10000 samples, loss [0-9.]+, accuracy 0\.[5-9].*" -- eval "$SRC/launch/experiments/lenet_modern.yaml" \
    --checkpoint "$T/w.h5" --set data.file="$T/fm.h5" --threads 2
  expect 0 "confusion matrix" -- eval "$SRC/launch/experiments/lenet_modern.yaml" --checkpoint "$CK" --set data.file="$T/fm.h5" --split train
  # Resuming the Fashion-MNIST run (HDF5 through the loader) with another learning rate:
  # the difference shown, the resume refused before any step.
  expect 1 "resuming would change optimizer.lr" -- train "$SRC/launch/experiments/lenet_modern.yaml" --run-dir "$T/lenet" \
    --resume auto --set data.file="$T/fm.h5" --set train.epochs=1 --set train.max_steps=150 --set optimizer.lr=0.5
  expect 1 "optimizer.lr: 0.02 -> 0.5" -- train "$SRC/launch/experiments/lenet_modern.yaml" --run-dir "$T/lenet" \
    --resume auto --set data.file="$T/fm.h5" --set train.epochs=1 --set train.max_steps=150 --set optimizer.lr=0.5
  # Classes by name, the experiment from the checkpoint (its data.file as run).
  expect 0 "^ +Ankle boot +0\.[0-9]+ +0\.[0-9]+ +0\.[0-9]+ +1000$" -- eval --checkpoint "$T/lenet/checkpoints"
  # Relative paths in an experiment are relative to its file, wherever hubel runs; a
  # checkpoint's experiment keeps the folder it was run from.
  mkdir -p "$T/proj/exp" "$T/proj/data"
  ln -s "$T/fm.h5" "$T/proj/data/fm.h5"
  sed 's#file: ../../data/fashion-mnist.h5#file: ../data/fm.h5#' "$SRC/launch/experiments/lenet_modern.yaml" > "$T/proj/exp/x.yaml"
  cd /
  expect 0 "done: 20 steps" -- train "$T/proj/exp/x.yaml" --run-dir "$T/proj/run" --set train.max_steps=20 --threads 2
  cd "$T"
  expect 0 "10000 samples, loss" -- eval --checkpoint "$T/proj/run/checkpoints"
  sed -i 's#file: ../data/fm.h5#file: data/fm.h5#' "$T/proj/exp/x.yaml"
  expect 1 "exp/x.yaml:[0-9]+:[0-9]+ \(data.file\): $T/proj/exp/data/fm.h5: no such file \('data/fm.h5' is relative to the experiment file's folder, $T/proj/exp; --set data.file=... is relative to the current directory\)" \
    -- train "$T/proj/exp/x.yaml" --run-dir "$T/proj/run2"
  cd "$SRC"
  # Fine-tuning from that run: frozen convolutions, a new 4-way head, four classes.
  expect 0 "weights: 60856 values from .*ckpt-000000150.h5; initialized fresh: output/w, output/b" -- train \
    "$SRC/launch/experiments/finetune_fashion.yaml" --run-dir "$T/ft" --set data.file="$T/fm.h5" \
    --set model.weights.file="$T/lenet/checkpoints" --set train.max_steps=30 --threads 2
  FT="$T/ft/checkpoints/ckpt-000000030.h5"
  for frozen in c1/w c1/b c3/w c3/b; do
    if ! h5diff -q "$CK" "$FT" "/model/$frozen" "/model/$frozen"; then
      echo "FAIL: the frozen $frozen changed in fine-tuning"
      failures=$((failures + 1))
    fi
  done
  if h5diff -q "$CK" "$FT" /model/f5/w /model/f5/w; then
    echo "FAIL: f5 did not train in fine-tuning"
    failures=$((failures + 1))
  fi
  expect 1 "has shape \[4, 84\] there but \[10, 84\] in the model .*model.weights.exclude" -- train \
    "$SRC/launch/experiments/lenet_modern.yaml" --run-dir "$T/ft2" --set data.file="$T/fm.h5" --set "model.weights={file: $FT}"
  # The autoencoder: least squares against the input, no accuracy; its output must be the input's shape.
  expect 0 "done: 30 steps, test loss 0\.0[0-9]+" -- train "$SRC/launch/experiments/conv_autoencoder.yaml" --run-dir "$T/ae" \
    --set data.file="$T/fm.h5" --set train.max_steps=30 --threads 2
  expect 1 "must output the input's shape \[1, 28, 28\], not \[2, 28, 28\]" -- train "$SRC/launch/experiments/conv_autoencoder.yaml" \
    --run-dir "$T/ae2" --set data.file="$T/fm.h5" --set model.layers.6.filters=2
  # The report names the classes; visualize draws filters and feature maps of known sizes.
  check "the report's confusion matrix names the classes" grep -q "<th>Trouser</th>" "$T/lenet/report.html"
  expect 0 "sample 3: class 1 \(Trouser\)" -- visualize "$CK" --sample 3 --out "$T/vis" --set data.file="$T/fm.h5"
  check "visualize writes PNGs of the right sizes" python3 - "$T/vis" <<'PY'
import struct, sys, os
def size(name):
    with open(os.path.join(sys.argv[1], name), "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", name
    return struct.unpack(">II", head[16:24])
# The tiles: 28x28 input at 6x: 170; 6 filters 5x5 at 12x in a 3x2 grid; 6 maps 28x28 at
# 3x in 3x2; 6 maps 14x14 at 6x; 16 maps 10x10 at 9x in 4x4; 16 maps 5x5 at 16x in 4x4
# (1-pixel borders); above them a white band with the caption in the 5x7 font (twice its
# size where that fits), 4 pixels around it.
tiles = {"input.png": (170, 170, "input"), "filters_c1.png": (184, 123, "c1 filters"),
         "maps_c1.png": (256, 171, "c1 maps"), "maps_s2.png": (256, 171, "s2 maps"),
         "maps_c3.png": (365, 365, "c3 maps"), "maps_s4.png": (325, 325, "s4 maps")}
expected = {}
for name, (w, h, label) in tiles.items():
    chars = len(label + " - sample 3: Trouser, predicted Trouser")
    scale = 2 if chars * 12 + 8 <= w else 1
    expected[name] = (max(w, chars * 6 * scale + 8), h + 7 * scale + 8)
for name, dims in expected.items():
    assert size(name) == dims, (name, size(name), dims)
page = open(os.path.join(sys.argv[1], "visualize.html")).read()
for name in expected:
    assert 'src="%s"' % name in page, name
assert "sample 3: Trouser, predicted Trouser" in page
expected["visualize.html"] = None
assert sorted(os.listdir(sys.argv[1])) == sorted(expected), os.listdir(sys.argv[1])
PY
  expect 1 "--sample 10000 is past the end of .*10000 samples" -- visualize "$CK" --sample 10000 --set data.file="$T/fm.h5"
  expect 1 "not a hubel checkpoint|cannot open the HDF5 file|not an HDF5 file" -- inspect "$T/fm.h5"
  expect 1 "fm.h5:/val: no such split \(the file has: train, test\)" -- train "$SRC/launch/experiments/lenet_modern.yaml" \
    --set data.file="$T/fm.h5" --set data.val=val
  expect 1 "not a multiple of the|batch" -- train "$SRC/launch/experiments/lenet_modern.yaml" --set data.file="$T/fm.h5" --set train.batch=0
else
  echo "FAIL: $FM is missing (launch/setup.sh installs dataset-fashion-mnist)"
  failures=$((failures + 1))
fi

# The shipped experiments parse and build.
for f in "$SRC"/launch/experiments/*.yaml; do
  expect 0 "parameters" -- summary "$f" --no-data
done
# summary checks the whole experiment: the optimizer, the schedule and the data too.
good | sed 's/type: sgd/type: sgdd/' > "$T/badopt.yaml"
expect 1 "unknown optimizer 'sgdd'; did you mean 'sgd'" -- summary "$T/badopt.yaml"
good | sed 's/^train:/schedule: {type: cosin}\ntrain:/' > "$T/badsched.yaml"
expect 1 "unknown schedule 'cosin'; did you mean 'cosine'" -- summary "$T/badsched.yaml"
expect 0 "optimizer sgd lr 0.1; schedule constant" -- summary "$T/good.yaml"
expect 0 "data: spirals.* 200 samples" -- summary "$T/good.yaml"
expect 0 "c3 +conv2d +\[16, 10, 10\] +1516 " -- summary "$SRC/launch/experiments/lenet5.yaml" --no-data
expect 0 "total: 70 layers, 271994 parameters" -- summary "$SRC/launch/experiments/resnet20.yaml" --no-data
expect 0 "stage2.1.sum_proj +conv +stage1.3.out +\[32, 16, 16\] +512 .*stride 2,2.*no bias" -- summary "$SRC/launch/experiments/resnet20.yaml" --no-data
expect 1 "'\\\$width' is not a parameter of block 'residual'" -- summary "$SRC/launch/experiments/resnet20.yaml" \
  --set "model.blocks.residual.layers.0.filters=\$width"

if [ "$failures" -ne 0 ]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all command-line checks passed"
