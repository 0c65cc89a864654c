// Runs an ONNX model exported by `hubel export --reference PREFIX` in onnxruntime (the
// npm package onnxruntime-node: Microsoft's CPU runtime) on the reference inputs and
// compares its outputs with hubel's: max |ort - hubel| / max |hubel| must be at most the
// tolerance. usage: node onnx_check.js PREFIX.json [TOLERANCE]; NODE_PATH names the
// folder holding onnxruntime-node.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const refFile = process.argv[2];
  const tolerance = Number(process.argv[3] || 1e-5);
  const ref = JSON.parse(fs.readFileSync(refFile, 'utf8'));
  const dir = path.dirname(refFile);
  const floats = (f) => {
    const b = fs.readFileSync(path.join(dir, f));
    return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
  };
  const x = floats(ref.input), want = floats(ref.output);
  const session = await ort.InferenceSession.create(path.join(dir, ref.model), {graphOptimizationLevel: 'disabled'});
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', x, ref.input_shape);
  const result = await session.run(feeds);
  const got = result[session.outputNames[0]];
  const same = got.dims.length === ref.output_shape.length && got.dims.every((d, i) => d === ref.output_shape[i]);
  if (!same) throw new Error(`output shape [${got.dims}] but hubel's is [${ref.output_shape}]`);
  let diff = 0, scale = 0;
  for (let i = 0; i < want.length; i++) {
    if (!Number.isFinite(got.data[i])) throw new Error(`output ${i} is ${got.data[i]}`);
    diff = Math.max(diff, Math.abs(got.data[i] - want[i]));
    scale = Math.max(scale, Math.abs(want[i]));
  }
  const rel = diff / Math.max(scale, 1e-30);
  console.log(`${ref.model}: ${ref.input_shape[0]} samples, output [${got.dims}], max |onnxruntime - hubel| / max |hubel| = ${rel.toExponential(2)} (tolerance ${tolerance})`);
  if (!(rel <= tolerance)) process.exit(1);
}
main().catch((e) => { console.error(`onnx_check: ${e.message}`); process.exit(1); });
