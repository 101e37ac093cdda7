/**
 * Training on the wasm backend WITHOUT `registerWasmTrainingKernels()` (this process never
 * registers it): when an embedding is being trained, `multiTokenLoss` — hence `model.fit` with
 * `multiTokenLossFunction` and a custom `optimizer.minimize` loop — fails before
 * backpropagation with an error that names the missing kernel, the backend and the fix, and
 * leaves no tensor of its own behind. Training that needs no `UnsortedSegmentSum` (a frozen
 * embedding, no embedding at all) and evaluation run as before.
 */
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { freezeAllButDraftHeads, multiTokenHead, multiTokenLoss, multiTokenLossFunction, multiTokenTargets, oneHotMultiTokenTargets, registerWasmTrainingKernels } from '../../src/index.js';
import { type WasmTrainingKernels } from '../../src/training/wasm/index.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

const MESSAGE =
  "multiTokenLoss: training an embedding (a weight read by gather) needs the backend's 'UnsortedSegmentSum' kernel for its gradient, but the 'wasm' backend has none; call registerWasmTrainingKernels() (exported by 'tfjs-mtp') once before training.";
const V = 16;
const D = 8;
const K = 2;

beforeAll(async () => {
  await tf.setBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
});

function embeddingModel(): { model: tfl.LayersModel; emb: tfl.layers.Layer } {
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const emb = tfl.layers.embedding({ inputDim: V, outputDim: D, embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 1 }) });
  const h = tfl.layers.dense({ units: D, activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }).apply(emb.apply(ids)) as tfl.SymbolicTensor;
  return { model: tfl.model({ inputs: ids, outputs: multiTokenHead({ numHeads: K, vocabSize: V, tiedTo: emb }).apply(h) as tfl.SymbolicTensor }), emb };
}

const tokens = () => tf.tensor2d([[1, 2, 3, 4, 5, 6, 7, 8], [2, 3, 4, 5, 6, 7, 8, 9]], [2, 8], 'int32');

describe('training an embedding on wasm without the kernel', () => {
  it('model.fit fails with the fix named', async () => {
    const { model } = embeddingModel();
    model.compile({ optimizer: tf.train.adam(0.05), loss: multiTokenLossFunction() });
    const x = tokens();
    const y = oneHotMultiTokenTargets(multiTokenTargets(x, K), V);
    const before = tf.memory().numTensors;
    await expect(model.fit(x, y, { epochs: 2, verbose: 0 })).rejects.toThrow(MESSAGE);
    // model.fit's own epoch index tensor is the one tfjs-layers leaves when a step throws; the loss leaves none (next test)
    expect(tf.memory().numTensors - before).toBeLessThanOrEqual(1);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('optimizer.minimize fails with the fix named and leaves no tensor (the gradient tape is freed)', async () => {
    const { model } = embeddingModel();
    const x = tokens();
    const targets = multiTokenTargets(x, K);
    const optimizer = tf.train.adam(0.05);
    await expectThrowNoLeak(() => optimizer.minimize(() => multiTokenLoss(targets, model.apply(x, { training: true }) as tf.Tensor).loss), MESSAGE);
    tf.dispose([x, targets]);
    optimizer.dispose();
    model.dispose();
  });
});

describe('what needs no UnsortedSegmentSum still runs on wasm', () => {
  it('draft heads on a frozen embedding train with model.fit', async () => {
    const { model } = embeddingModel();
    freezeAllButDraftHeads(model);
    model.compile({ optimizer: tf.train.adam(0.05), loss: multiTokenLossFunction() });
    const x = tokens();
    const y = oneHotMultiTokenTargets(multiTokenTargets(x, K), V);
    const losses = (await model.fit(x, y, { epochs: 6, verbose: 0 })).history['loss']!.map(Number);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]!);
    tf.dispose([x, y]);
    model.dispose();
  });

  it('a model without an embedding trains with model.fit', async () => {
    const states = tfl.input({ shape: [null, D] });
    const h = tfl.layers.dense({ units: D, activation: 'tanh', kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply(states) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: states, outputs: multiTokenHead({ numHeads: K, vocabSize: V, unembeddingInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(h) as tfl.SymbolicTensor });
    model.compile({ optimizer: tf.train.adam(0.05), loss: multiTokenLossFunction() });
    const x = tf.randomNormal([2, 8, D], 0, 1, 'float32', 5);
    const t = tokens();
    const y = oneHotMultiTokenTargets(multiTokenTargets(t, K), V);
    const losses = (await model.fit(x, y, { epochs: 6, verbose: 0 })).history['loss']!.map(Number);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]!);
    tf.dispose([x, t, y]);
    model.dispose();
  });

  it('evaluating the loss (no gradient) needs no kernel and leaves no tensor', async () => {
    const { model } = embeddingModel();
    const x = tokens();
    const targets = multiTokenTargets(x, K);
    await expectNoLeak(() => tf.tidy(() => multiTokenLoss(targets, model.predict(x) as tf.Tensor).loss));
    tf.dispose([x, targets]);
    model.dispose();
  });
});

describe('registerWasmTrainingKernels guards', () => {
  it.each([
    ["which.matMul must be a boolean, but got \"yes\".", { matMul: 'yes' }],
    ['which.layout must be a boolean, but got 1.', { layout: 1 }],
    ['which must be an object { matMul?, layout? } or undefined, but got null.', null],
  ])('refuses %s and registers nothing', (message, which) => {
    expect(() => registerWasmTrainingKernels(which as unknown as WasmTrainingKernels)).toThrow(`registerWasmTrainingKernels: ${message}`);
    expect(tf.getKernel(tf.UnsortedSegmentSum, 'wasm')).toBeUndefined();
  });
});
