/**
 * Training throughput of the reference model per backend and per training-only wasm kernel
 * (the options docs/models.md compares). One configuration per process, because kernel
 * registrations are global:
 *
 *     npx tsx bench/train_speed.ts cpu | wasm-plain | wasm-matmul | wasm-all  [steps]
 *
 * wasm-plain still needs the JS UnsortedSegmentSum (wasm has none: no embedding gradient).
 * Prints tokens/s (median step time after 2 warm-up steps) of the exact step scripts/train.ts runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { multiTokenLoss, multiTokenTargets } from '../src/index.js';
import { createTransformer } from '../src/models/index.js';
import { registerWasmLayoutKernels } from '../scripts/lib/wasm_layout.js';
import { registerWasmFastMatMul } from '../scripts/lib/wasm_matmul.js';
import { registerWasmUnsortedSegmentSum } from '../scripts/lib/wasm_segment_sum.js';
import { median } from './lib.js';

const mode = process.argv[2] ?? 'wasm-all';
const steps = Number(process.argv[3] ?? 6);
if (mode !== 'cpu') registerWasmUnsortedSegmentSum();
if (mode === 'wasm-matmul' || mode === 'wasm-all') registerWasmFastMatMul();
if (mode === 'wasm-all') registerWasmLayoutKernels();
await tf.setBackend(mode === 'cpu' ? 'cpu' : 'wasm');

const [B, T, k, V] = [16, 128, 4, 256];
const model = createTransformer({}); // the checkpoint's configuration (the defaults)
const optimizer = tf.train.adam(1e-3, 0.9, 0.95, 1e-8);
const tokens = tf.randomUniform([B, T + k], 0, V, 'int32');
const times: number[] = [];
for (let i = 0; i < steps + 2; i++) {
  const t0 = performance.now();
  const loss = optimizer.minimize(() => {
    const ids = tf.slice(multiTokenTargets(tokens, k), [0, 0, 0], [B, T, k]); // [B, T, k]
    const targets = tf.cast(tf.oneHot(ids as tf.Tensor3D, V), 'float32'); // [B, T, k, V]
    const logits = model.apply(tf.slice(tokens, [0, 0], [B, T])) as tf.Tensor; // [B, T, k, V]
    return multiTokenLoss(targets, logits, { offsetWeights: [1, 0.8, 0.8, 0.8] }).loss;
  }, true)!;
  await loss.data();
  loss.dispose();
  if (i >= 2) times.push(performance.now() - t0);
}
const ms = median(times);
console.log(`${mode}: ${ms.toFixed(0)} ms/step of ${B}×${T} tokens → ${Math.round((B * T * 1000) / ms)} tokens/s (median of ${steps})`);
