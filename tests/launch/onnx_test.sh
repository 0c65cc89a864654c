#!/usr/bin/env bash
# ONNX export, verified in a real runtime: every ready experiment in launch/experiments
# (and one model with every other layer type ONNX can express) is trained a few steps on
# real Fashion-MNIST in HDF5, exported with `hubel export --reference`, and run by
# onnxruntime (npm's onnxruntime-node, installed by `launch/setup.sh test`) on the same
# test samples: its outputs must equal hubel's to 1e-5 relative. Also: the opsets and a
# fixed batch, encoded images, and the layers ONNX cannot express refused by name.
# usage: onnx_test.sh HUBEL SOURCE_DIR MPIEXEC
source "$(dirname "$0")/common.sh"
ORT_DIR="${HUBEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hubel}/onnxruntime-1.20.1"
if [ ! -f "$ORT_DIR/node_modules/onnxruntime-node/package.json" ] || ! command -v node > /dev/null; then
  echo "FAIL: onnxruntime-node is not in $ORT_DIR (bash launch/setup.sh test installs it)"
  exit 1
fi
export NODE_PATH="$ORT_DIR/node_modules"
CHECK="$SRC/tests/launch/onnx_check.js"

fashion 1000 "$T/fm.h5" || fail "fashion data"
# check NAME CHECKPOINT [export options]: export with a reference, run onnxruntime on it.
check() {
  local name=$1 ck=$2
  shift 2
  if ! "$HUBEL" export "$ck" "$T/$name.onnx" --reference "$T/$name" "$@" > "$T/$name.export" 2>&1; then
    fail "$name: export"; cat "$T/$name.export"; return
  fi
  if node "$CHECK" "$T/$name.json" 1e-5 > "$T/$name.check" 2>&1; then ok "$(cat "$T/$name.check")"
  else fail "$name: $(cat "$T/$name.check")"; fi
}
# train NAME EXP [--set ...]: a few steps on fm.h5, its checkpoint directory.
train() {
  local name=$1 exp=$2
  shift 2
  "$HUBEL" train "$exp" --run-dir "$T/run-$name" --set data.file="$T/fm.h5" --set train.max_steps=3 \
    --progress none --quiet "$@" > "$T/$name.train" 2>&1 || { fail "$name: training"; tail -3 "$T/$name.train"; }
}

# Every ready experiment.
python3 "$SRC/launch/fashion_images.py" /usr/share/datasets/fashion-mnist "$T/img" --limit 600 > /dev/null 2>&1 \
  && "$HUBEL" convert images "$T/img" "$T/img.h5" --split-dir > /dev/null 2>&1 || fail "image folders"
train lenet_modern "$LENET"  # (finetune_fashion starts from it)
for f in "$SRC"/launch/experiments/*.yaml; do
  name=$(basename "$f" .yaml)
  case $name in
    lenet_modern) ;;
    fashion_images) train "$name" "$f" --set data.file="$T/img.h5" ;;
    finetune_fashion) train "$name" "$f" --set "model.weights={file: $T/run-lenet_modern/checkpoints, exclude: [output]}" ;;
    spirals_mlp) "$HUBEL" train "$f" --run-dir "$T/run-$name" --set train.max_steps=3 --quiet --progress none \
      > "$T/$name.train" 2>&1 || fail "$name: training" ;;
    *) train "$name" "$f" ;;
  esac
  check "$name" "$T/run-$name/checkpoints"
done
grep -q "opset 13, " "$T/lenet5.export" || fail "the default opset is 13"

# Opsets 13 to 17 and a fixed batch.
check resnet20_opset17 "$T/run-resnet20/checkpoints" --opset 17
check lenet5_batch8 "$T/run-lenet5/checkpoints" --batch 8
grep -q "\"input_shape\": \[8, 1, 28, 28\]" "$T/lenet5_batch8.json" || fail "--batch 8 gives 8 reference samples"
"$HUBEL" export "$T/run-lenet5/checkpoints" "$T/x.onnx" --opset 12 > "$T/out" 2>&1
grep -q "opset 12: hubel writes opsets 13 to 17" "$T/out" || fail "opset 12 refused: $(cat "$T/out")"

# Images stored encoded: the model takes the image at the samples' size.
"$HUBEL" convert images "$T/img" "$T/enc.h5" --split-dir --encoded > /dev/null 2>&1 || fail "encoded conversion"
train enc "$SRC/launch/experiments/fashion_images.yaml" --set data.file="$T/enc.h5" --set data.size=[28,28]
check encoded "$T/run-enc/checkpoints"

# Every other layer type ONNX can express (decomposed where it has no operator: the
# connection table, trainable subsampling, weighted pooling, maxout, layer norm, scaled
# tanh), in 1-D, 2-D and 3-D, with the padding modes, ceil rounding, groups, dilation.
cat > "$T/layers.yaml" <<'YAML'
model:
  input: [1, 30, 30]
  layers:
    - {name: a, type: conv2d, filters: 6, kernel: 3, padding: 1, padding_value: reflect, bias: location}
    - {name: b, type: conv2d, filters: 6, kernel: 3, padding: 2, dilation: 2, groups: 3, padding_value: replicate, flip: true, activation: relu}
    - {name: c, type: conv2d, filters: 4, kernel: 3, padding: same, connections: [[0, 1], [2, 3, 4], [5], [0, 5]]}
    - {name: d, type: maxpool2d, kernel: 3, stride: 2, padding: 1, rounding: ceil}
    - {name: e, type: avgpool2d, kernel: 3, stride: 1, padding: 1, count_padding: false}
    - {name: f, type: l2pool2d, kernel: 3, stride: 1, padding: 1}
    - {name: g, type: subsample2d, kernel: 1}
    - {name: h, type: weighted_avgpool2d, kernel: 3, stride: 1, padding: 1}
    - {name: i, type: conv_transpose2d, filters: 4, kernel: 4, stride: 2, padding: 1, output_padding: 1}
    - {name: j, type: maxout, pieces: 2}
    - {name: k, type: layernorm}
    - {name: l, type: leaky_relu, slope: 0.1}
    - {name: m, type: avgpool2d, kernel: 3, stride: 3, rounding: ceil}
    - {name: n, type: elu}
    - {name: p, type: reshape, shape: [2, 1, 11, 11]}
    - {name: q, type: conv3d, filters: 3, kernel: [1, 3, 3], padding: [0, 1, 1]}
    - {name: r, type: maxpool3d, kernel: [1, 2, 2], stride: 1}
    - {name: s, type: reshape, shape: [12, 25]}
    - {name: t, type: conv1d, filters: 8, kernel: 3, padding: valid, dilation: 2, bias: none}
    - {name: u, type: sigmoid}
    - {name: v, type: tanh, inputs: [t]}
    - {name: w, type: concat, inputs: [u, v]}
    - {name: x, type: conv_transpose1d, filters: 4, kernel: 3, stride: 1}
    - {name: y, type: add, inputs: [x, x]}
    - {name: z, type: global_maxpool}
    - {name: bn, type: batchnorm}
    - {name: dr, type: dropout, rate: 0.3}
    - {name: fc, type: dense, units: 10}
    - {name: sm, type: softmax}
  loss: softmax_cross_entropy
data: {file: data.h5, train: train, test: test, normalize: file, pad: 1}
optimizer: {type: sgd, lr: 0.01, momentum: 0.9}
train: {epochs: 1, batch: 32, seed: 3}
YAML
"$HUBEL" summary "$T/layers.yaml" --set data.file="$T/fm.h5" > "$T/layers.summary" 2>&1 || { fail "layers: summary"; cat "$T/layers.summary"; }
train layers "$T/layers.yaml"
check layers "$T/run-layers/checkpoints"

# What ONNX cannot express is refused, named.
sed 's/- {name: c, type: conv2d, filters: 4, kernel: 3, padding: same, connections: .*}/- {name: c, type: conv2d, filters: 4, kernel: 3, padding: same, tiles: all}/' \
  "$T/layers.yaml" > "$T/tiled.yaml"
train tiled "$T/tiled.yaml"
"$HUBEL" export "$T/run-tiled/checkpoints" "$T/tiled.onnx" > "$T/out" 2>&1
grep -q "layer 'c' (conv2d): a locally connected layer (one weight set per position) has no ONNX operator; the ONNX export is refused" "$T/out" \
  && [ ! -e "$T/tiled.onnx" ] || fail "locally connected refused: $(cat "$T/out")"
"$HUBEL" export "$T/run-lenet_modern/checkpoints" "$T/crop.onnx" --set data.augment.eval_crop=0.875 > "$T/out" 2>&1
grep -q "eval_crop: the evaluation crop resamples the image, which ONNX cannot repeat exactly" "$T/out" \
  || fail "eval_crop refused: $(cat "$T/out")"
"$HUBEL" export "$T/run-lenet_modern/checkpoints" "$T/x.onnx" --batch 0 > "$T/out" 2>&1
grep -q "batch is dynamic or a positive number; got '0'" "$T/out" || fail "--batch 0 refused: $(cat "$T/out")"
# A file that is there is replaced whole: no temporary file is left.
ls "$T"/*.tmp.* > /dev/null 2>&1 && fail "a temporary file was left"

[ "$failures" -eq 0 ] && echo "all ONNX export checks passed" || { echo "$failures failure(s)"; exit 1; }
