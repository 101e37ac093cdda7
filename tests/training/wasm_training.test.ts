/**
 * Training on the wasm backend after `registerWasmTrainingKernels()`: `model.fit` of a model with
 * an Embedding works and lowers the loss, and every kernel it registers agrees with the cpu
 * backend's (the split kernels exactly; the JS `UnsortedSegmentSum`, the matMul wrappers and `Sum`
 * within float tolerance). Registration is process-wide, so this file registers and
 * wasm_unregistered.test.ts (another process) never does.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenHead, multiTokenLoss, multiTokenLossFunction, multiTokenTargets, oneHotMultiTokenTargets, registerWasmTrainingKernels } from '../../src/index.js';
import { expectNoLeak } from '../helpers/leak.js';

const REPLACED = [tf.BatchMatMul, tf._FusedMatMul, tf.SplitV, tf.Unpack, tf.Sum];

beforeAll(async () => {
  await tf.setBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
  expect(tf.getKernel(tf.UnsortedSegmentSum, 'wasm')).toBeUndefined(); // what tfjs-backend-wasm ships
  registerWasmTrainingKernels();
});

/** `f` on the cpu backend and on wasm, read back as nested arrays (tensors disposed). */
async function onBoth(f: () => tf.Tensor | tf.Tensor[]): Promise<{ cpu: number[][]; wasm: number[][] }> {
  const run = async (backend: string) => {
    await tf.setBackend(backend);
    const out = tf.tidy(f);
    const list = Array.isArray(out) ? out : [out];
    const values = list.map((t) => Array.from(t.dataSync()));
    tf.dispose(list);
    return values;
  };
  const cpu = await run('cpu');
  const wasm = await run('wasm');
  return { cpu, wasm };
}

function expectClose(a: number[][], b: number[][], tolerance: number): void {
  expect(a.map((x) => x.length)).toEqual(b.map((x) => x.length));
  a.forEach((x, i) => x.forEach((v, j) => expect(Math.abs(v - b[i]![j]!), `output ${i}, element ${j}`).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(v)))));
}

/** A seeded tensor of `shape` (the same on both backends). */
function data(shape: number[], seed: number): tf.Tensor {
  return tf.randomUniform(shape, -1, 1, 'float32', seed);
}

describe('model.fit on wasm with the training kernels', () => {
  it('an Embedding → Dense → tied MultiTokenHead model trains and its loss decreases', async () => {
    await tf.setBackend('wasm');
    const V = 16, D = 8, k = 2;
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const emb = tfl.layers.embedding({ inputDim: V, outputDim: D, embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 1 }) });
    const h = tfl.layers.dense({ units: D, activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }).apply(emb.apply(ids)) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: ids, outputs: multiTokenHead({ numHeads: k, vocabSize: V, tiedTo: emb }).apply(h) as tfl.SymbolicTensor });
    model.compile({ optimizer: tf.train.adam(0.05), loss: multiTokenLossFunction() });
    const x = tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9]], [2, 8], 'int32');
    const y = oneHotMultiTokenTargets(multiTokenTargets(x, k), V); // [2, 8, 2, 16]
    const embeddingBefore = Array.from(emb.weights[0]!.read().dataSync());
    const history = await model.fit(x, y, { epochs: 8, verbose: 0 });
    const losses = history.history['loss']!.map(Number);
    expect(tf.getBackend()).toBe('wasm');
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]! * 0.9);
    expect(Array.from(emb.weights[0]!.read().dataSync())).not.toEqual(embeddingBefore); // the embedding itself learned
    tf.dispose([x, y]);
    model.dispose();
  });

  it('a custom optimizer.minimize step leaks no tensor', async () => {
    await tf.setBackend('wasm');
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const emb = tfl.layers.embedding({ inputDim: 10, outputDim: 4 });
    const model = tfl.model({ inputs: ids, outputs: multiTokenHead({ numHeads: 2, vocabSize: 10, tiedTo: emb }).apply(emb.apply(ids)) as tfl.SymbolicTensor });
    const x = tf.tensor2d([[1, 2, 3, 4]], [1, 4], 'int32');
    const targets = multiTokenTargets(x, 2);
    const optimizer = tf.train.sgd(0.1);
    const step = () => optimizer.minimize(() => multiTokenLoss(targets, model.apply(x, { training: true }) as tf.Tensor).loss, true);
    step()?.dispose(); // the first step runs every kernel once (SGD keeps no slots)
    await expectNoLeak(step);
    tf.dispose([x, targets]);
    model.dispose();
  });
});

describe('the registered kernels agree with the cpu backend', () => {
  it('UnsortedSegmentSum (repeated ids, rows of rank 1 and 2)', async () => {
    const ids = [3, 0, 3, 1, 3, 0];
    const { cpu, wasm } = await onBoth(() => [
      tf.unsortedSegmentSum(data([6, 5], 1), tf.tensor1d(ids, 'int32'), 4),
      tf.unsortedSegmentSum(data([6, 2, 3], 2), tf.tensor1d(ids, 'int32'), 5),
    ]);
    expectClose(wasm, cpu, 1e-6); // the cpu kernel sums masked rows: another summation order
    expect(wasm[0]!.slice(10, 15)).toEqual([0, 0, 0, 0, 0]); // segment 2 has no row
  });

  it("an embedding gather's gradient equals the cpu backend's", async () => {
    const { cpu, wasm } = await onBoth(() => {
      const table = data([7, 4], 3);
      const ids = tf.tensor2d([[1, 6, 1], [0, 1, 5]], [2, 3], 'int32');
      return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, ids), data([2, 3, 4], 4))))(table);
    });
    expectClose(wasm, cpu, 1e-6);
  });

  it.each([
    ['plain', [5, 6], [6, 3], false, false],
    ['transposeA', [6, 5], [6, 3], true, false],
    ['transposeB', [5, 6], [3, 6], false, true],
    ['both', [6, 5], [3, 6], true, true],
    ['batched', [4, 5, 6], [4, 6, 3], false, false],
    ['batched, transposeB (attention scores)', [4, 5, 6], [4, 3, 6], false, true],
    ['batched, transposeA', [2, 3, 6, 5], [2, 3, 6, 3], true, false],
    ['broadcast batch', [1, 5, 6], [4, 6, 3], false, false],
  ] as const)('matMul %s', async (_, aShape, bShape, transposeA, transposeB) => {
    const { cpu, wasm } = await onBoth(() => tf.matMul(data([...aShape], 5), data([...bShape], 6), transposeA, transposeB));
    expectClose(wasm, cpu, 1e-5);
  });

  it.each([
    [false, false],
    [true, false],
    [false, true],
  ])('fused matMul with bias and relu (transposeA %s, transposeB %s), and its gradient', async (transposeA, transposeB) => {
    const { cpu, wasm } = await onBoth(() => {
      const a = data(transposeA ? [6, 5] : [5, 6], 7);
      const b = data(transposeB ? [3, 6] : [6, 3], 8);
      const bias = data([3], 9);
      const f = (x: tf.Tensor, y: tf.Tensor) => tf.fused.matMul({ a: x as tf.Tensor2D, b: y as tf.Tensor2D, transposeA, transposeB, bias, activation: 'relu' });
      return [f(a, b), ...tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(f(x, y)))([a, b])];
    });
    expectClose(wasm, cpu, 1e-5);
  });

  it.each([0, 1, 2, -1])('SplitV and Unpack along axis %i', async (axis) => {
    const { cpu, wasm } = await onBoth(() => {
      const x = data([6, 6, 6], 10);
      return [...tf.split(x, [2, -1, 3], axis), ...tf.split(x, 3, axis), ...tf.unstack(x, axis)];
    });
    expect(wasm).toEqual(cpu);
  });

  it.each([
    ['leading axis', [0], false],
    ['two leading axes', [0, 1], false],
    ['leading axes, keepDims', [0, 1], true],
    ['a trailing axis (the wasm kernel)', [2], false],
    ['every axis (the wasm kernel)', [0, 1, 2], false],
  ] as const)('Sum over %s', async (_, axes, keepDims) => {
    const { cpu, wasm } = await onBoth(() => tf.sum(data([5, 4, 3], 11), [...axes], keepDims));
    expectClose(wasm, cpu, 1e-5);
  });
});

describe('registerWasmTrainingKernels', () => {
  it('is idempotent: a second call replaces nothing', () => {
    const before = [tf.UnsortedSegmentSum, ...REPLACED].map((name) => tf.getKernel(name, 'wasm')!.kernelFunc);
    registerWasmTrainingKernels();
    expect([tf.UnsortedSegmentSum, ...REPLACED].map((name) => tf.getKernel(name, 'wasm')!.kernelFunc)).toEqual(before);
  });
});
