/**
 * Training throughput of the reference model per backend and per training-only wasm kernel
 * (the options docs/models.md compares). One configuration per process, because kernel
 * registrations are global:
 *
 *     npx tsx bench/train_speed.ts [--mode cpu|wasm-plain|wasm-matmul|wasm-all] [--steps 6]
 *
 * wasm-plain still needs the JS UnsortedSegmentSum (wasm has none: no embedding gradient).
 * Prints tokens/s (median step time after 2 warm-up steps) of the forward, multi-token loss
 * (id targets) and Adam update that scripts/train.ts runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { multiTokenLoss, multiTokenTargets } from '../src/index.js';
import { createTransformer } from '../src/models/index.js';
import { parseCommandLine } from '../tools/args.js';
import { useBackend } from '../tools/backend.js';
import { median } from '../tools/stats.js';
import { registerWasmTrainingKernels } from '../tools/wasm/index.js';

const { mode, steps } = parseCommandLine({
  name: 'train_speed',
  usage: 'npx tsx bench/train_speed.ts [options]',
  summary: 'Training throughput (tokens/s) of the reference model on one backend and set of training-only wasm kernels.',
  options: {
    mode: { type: 'string', default: 'wasm-all', choices: ['cpu', 'wasm-plain', 'wasm-matmul', 'wasm-all'], help: 'backend and kernels' },
    steps: { type: 'number', default: 6, integer: true, min: 1, help: 'timed steps (after 2 warm-up steps)' },
  },
} as const);
if (mode !== 'cpu') registerWasmTrainingKernels({ matMul: mode !== 'wasm-plain', layout: mode === 'wasm-all' });
await useBackend(mode === 'cpu' ? 'cpu' : 'wasm');

const [B, T, k, V] = [16, 128, 4, 256];
const model = createTransformer({}); // the checkpoint's configuration (the defaults)
const optimizer = tf.train.adam(1e-3, 0.9, 0.95, 1e-8);
const tokens = tf.randomUniform([B, T + k], 0, V, 'int32');
const times: number[] = [];
for (let i = 0; i < steps + 2; i++) {
  const t0 = performance.now();
  const loss = optimizer.minimize(() => {
    const targets = tf.slice(multiTokenTargets(tokens, k), [0, 0, 0], [B, T, k]); // [B, T, k] ids
    const logits = model.apply(tf.slice(tokens, [0, 0], [B, T])) as tf.Tensor; // [B, T, k, V]
    return multiTokenLoss(targets, logits, { offsetWeights: [1, 0.8, 0.8, 0.8] }).loss;
  }, true)!;
  await loss.data();
  loss.dispose();
  if (i >= 2) times.push(performance.now() - t0);
}
const ms = median(times);
console.log(`${mode}: ${ms.toFixed(0)} ms/step of ${B}×${T} tokens → ${Math.round((B * T * 1000) / ms)} tokens/s (median of ${steps})`);
