/**
 * `freezeAllButDraftHeads`: after it, training moves offsets 1…k−1 only — offset 0's logits (the
 * model's own next-token predictions) stay bit-identical — with `model.fit` and with a custom
 * `optimizer.minimize` loop, tied or untied, on the README's quick-start model (Embedding → GRU
 * → MultiTokenHead tied to the embedding) and on a SequentialMtpHead. `restore` puts every flag
 * back; bad models fail with the function, the rule and the value named, changing nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  freezeAllButDraftHeads,
  multiTokenHead,
  type MultiTokenHeadArgs,
  multiTokenLoss,
  multiTokenLossFunction,
  multiTokenTargets,
  oneHotMultiTokenTargets,
  sequentialMtpHead,
} from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';

const V = 32; // vocabulary
const D = 16; // hidden size
const K = 4; // offsets
const LENGTH = 8; // tokens per sequence: every offset has targets, and the GRU unrolls over few steps

beforeAll(useCpu);
afterEach(() => vi.restoreAllMocks());

/** The quick start's model: ids → Embedding → GRU → head (seeded, so runs repeat). */
function gruModel(head: Partial<MultiTokenHeadArgs> & { tied?: boolean } = {}) {
  const { tied = true, ...args } = head;
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const embed = tfl.layers.embedding({ inputDim: V, outputDim: D, embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 1 }) });
  const gru = tfl.layers.gru({ units: D, returnSequences: true, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }), recurrentInitializer: tfl.initializers.glorotUniform({ seed: 3 }) });
  const mtp = multiTokenHead({ numHeads: K, vocabSize: V, unembeddingInitializer: tfl.initializers.glorotUniform({ seed: 4 }), ...args, ...(tied ? { tiedTo: embed } : {}) });
  const model = tfl.model({ inputs: ids, outputs: mtp.apply(gru.apply(embed.apply(ids))) as tfl.SymbolicTensor });
  return { model, embed, gru, head: mtp };
}

/** Sequences that count in steps of 3, as the quick start: [rows, LENGTH]. */
function counting(rows = 16): tf.Tensor2D {
  return tf.tensor2d(
    Array.from({ length: rows }, (_, r) => Array.from({ length: LENGTH }, (_, t) => (r + 3 * t) % V)),
    [rows, LENGTH],
    'int32',
  );
}

/** Offset j's logits of `model` on `x`, flattened. */
function offsetLogits(model: tfl.LayersModel, x: tf.Tensor, j: number): Float32Array {
  return tf.tidy(() => tf.gather(model.predict(x) as tf.Tensor, j, 2).dataSync() as Float32Array); // [B, T, V]
}

/** Offset j's logits before and after `train`, and whether each offset changed. */
async function offsetsAround(model: tfl.LayersModel, x: tf.Tensor, train: () => Promise<void> | void): Promise<{ before: Float32Array[]; after: Float32Array[] }> {
  const before = Array.from({ length: K }, (_, j) => offsetLogits(model, x, j));
  await train();
  const after = Array.from({ length: K }, (_, j) => offsetLogits(model, x, j));
  return { before, after };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);
}

/** Offset 0 bit-identical, every offset 1…k−1 moved. */
function expectOnlyDrafts(before: Float32Array[], after: Float32Array[]): void {
  expect(after[0]).toEqual(before[0]); // bit-identical: toEqual on Float32Arrays compares every element exactly
  for (let j = 1; j < K; j++) expect(maxAbsDiff(after[j]!, before[j]!), `offset ${j}`).toBeGreaterThan(1e-4);
}

/** Training steps of each fit and custom loop: a frozen weight that moves, moves at the first (Adam steps every weight with a gradient by ~lr); the third shows the loss falling. */
const STEPS = 3;

async function fit(model: tfl.LayersModel, x: tf.Tensor2D, epochs = STEPS): Promise<number[]> {
  const y = oneHotMultiTokenTargets(multiTokenTargets(x, K), V); // [B, T, k, V]
  const history = await model.fit(x, y, { epochs, batchSize: x.shape[0], shuffle: false, verbose: 0 });
  y.dispose();
  return history.history['loss']!.map(Number);
}

describe('freezeAllButDraftHeads then model.fit', () => {
  it.each<[string, { tied: boolean; offset0Kind?: 'linear' | 'residual' }]>([
    ['tied, identity offset 0 (the quick start)', { tied: true }],
    ['untied (the unembedding is frozen too)', { tied: false }],
    ['tied, linear offset 0 (its transform is frozen too)', { tied: true, offset0Kind: 'linear' }],
    ['untied, residual offset 0', { tied: false, offset0Kind: 'residual' }],
  ])('GRU model, %s: offset 0 bit-identical, offsets 1…k−1 trained', async (_, args) => {
    const { model, head } = gruModel(args);
    if (args.offset0Kind !== undefined) randomizeWeights(head.offsetHeads[0]!, 5, 0.1); // an offset-0 transform that is not the identity
    const x = counting();
    freezeAllButDraftHeads(model);
    model.compile({ optimizer: tf.train.adam(0.02), loss: multiTokenLossFunction() });
    let losses: number[] = [];
    const { before, after } = await offsetsAround(model, x, async () => {
      losses = await fit(model, x);
    });
    expectOnlyDrafts(before, after);
    expect(losses[losses.length - 1]).toBeLessThan(losses[0]!);
    x.dispose();
    model.dispose();
  });

  it('freezes the embedding, the GRU, offset 0 and the unembedding; leaves offsets 1…k−1', () => {
    const { model, embed, gru, head } = gruModel({ tied: false, offset0Kind: 'linear' });
    const freeze = freezeAllButDraftHeads(model);
    const draft = head.offsetHeads.slice(1).flatMap((h) => h.weights);
    expect(freeze.trainable).toEqual(draft);
    expect(model.trainableWeights).toEqual(draft);
    expect(freeze.variables).toEqual(draft.map((w) => w.read()));
    const frozen = [...embed.weights, ...gru.weights, ...head.offsetHeads[0]!.weights, ...head.unembedding.weights];
    expect(new Set(freeze.frozen)).toEqual(new Set(frozen));
    for (const w of frozen) expect(w.trainable, w.name).toBe(false);
    model.dispose();
  });

  it('a model compiled before the call trains only the drafts, without a warning or a second compile', async () => {
    const { model } = gruModel();
    const x = counting();
    model.compile({ optimizer: tf.train.adam(0.02), loss: multiTokenLossFunction() });
    freezeAllButDraftHeads(model);
    const warn = vi.spyOn(console, 'warn');
    const { before, after } = await offsetsAround(model, x, () => fit(model, x).then(() => undefined));
    expectOnlyDrafts(before, after);
    expect(warn).not.toHaveBeenCalled(); // tfjs-layers warns when its compiled weight list is stale
    x.dispose();
    model.dispose();
  });

  it('restore puts every flag back, and the next fit of a model compiled while frozen trains offset 0 again (no second compile)', async () => {
    const { model, embed, gru, head } = gruModel({ tied: false });
    const layers = [embed, gru, head, ...head.offsetHeads, head.unembedding];
    const weights = model.weights;
    const flags = () => ({ layers: layers.map((l) => l.trainable), weights: weights.map((w) => w.trainable), count: model.trainableWeights.length });
    const initial = flags();
    const freeze = freezeAllButDraftHeads(model);
    model.compile({ optimizer: tf.train.adam(0.02), loss: multiTokenLossFunction() }); // compiled with the drafts alone
    expect(flags()).not.toEqual(initial);
    freeze.restore();
    expect(flags()).toEqual(initial);
    const x = counting();
    const { before, after } = await offsetsAround(model, x, () => fit(model, x, 2).then(() => undefined));
    expect(maxAbsDiff(after[0]!, before[0]!)).toBeGreaterThan(1e-4);
    x.dispose();
    model.dispose();
  });

  it('restore keeps a layer that was already frozen frozen', () => {
    const { model, gru } = gruModel();
    gru.trainable = false;
    const freeze = freezeAllButDraftHeads(model);
    freeze.restore();
    expect(gru.trainable).toBe(false);
    expect(gru.trainableWeights).toEqual([]);
    model.dispose();
  });

  it('finds a head inside a nested model, and a frozen outer model is made trainable for its drafts', () => {
    const inner = gruModel().model;
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const outer = tfl.model({ inputs: ids, outputs: inner.apply(ids) as tfl.SymbolicTensor });
    outer.trainable = false;
    const freeze = freezeAllButDraftHeads(outer);
    expect(outer.trainableWeights).toEqual(freeze.trainable);
    expect(freeze.trainable).toHaveLength(2 * (K - 1)); // a residual head's kernel and bias each
    freeze.restore();
    expect(outer.trainable).toBe(false);
    expect(outer.trainableWeights).toEqual([]);
    outer.dispose();
  });

  it('creates and leaves no tensor', async () => {
    const { model } = gruModel();
    await expectNoLeak(() => {
      freezeAllButDraftHeads(model).restore();
    });
    model.dispose();
  });
});

describe('freezeAllButDraftHeads then a custom loop', () => {
  /** Adam steps of the multi-token loss over `x`; `varList` as optimizer.minimize's. */
  function minimize(model: tfl.LayersModel, x: tf.Tensor2D, varList?: tf.Variable[]): void {
    const optimizer = tf.train.adam(0.02);
    const targets = multiTokenTargets(x, K); // [B, T, k]
    for (let step = 0; step < STEPS; step++) {
      optimizer.minimize(() => multiTokenLoss(targets, model.apply(x, { training: true }) as tf.Tensor).loss, true, varList)?.dispose();
    }
    targets.dispose();
    optimizer.dispose();
  }

  it('optimizer.minimize without a varList (every trainable variable) leaves offset 0 bit-identical: the GRU cell is frozen too', async () => {
    const { model } = gruModel();
    const x = counting();
    freezeAllButDraftHeads(model);
    const { before, after } = await offsetsAround(model, x, () => minimize(model, x));
    expectOnlyDrafts(before, after);
    x.dispose();
    model.dispose();
  });

  it('optimizer.minimize with its variables, untied', async () => {
    const { model } = gruModel({ tied: false });
    const x = counting();
    const { variables } = freezeAllButDraftHeads(model);
    const { before, after } = await offsetsAround(model, x, () => minimize(model, x, variables));
    expectOnlyDrafts(before, after);
    x.dispose();
    model.dispose();
  });

  it('a SequentialMtpHead: the modules train on teacher-forced logits, offset 0 and the tied embedding stay', async () => {
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const embed = tfl.layers.embedding({ inputDim: V, outputDim: D, embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 1 }) });
    const gru = tfl.layers.gru({ units: D, returnSequences: true, kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }), recurrentInitializer: tfl.initializers.glorotUniform({ seed: 3 }) });
    const hidden = gru.apply(embed.apply(ids)) as tfl.SymbolicTensor;
    const head = sequentialMtpHead({ numHeads: K, vocabSize: V, headHiddenSize: 16, tiedTo: embed });
    const model = tfl.model({ inputs: ids, outputs: head.apply(hidden) as tfl.SymbolicTensor });
    const trunk = tfl.model({ inputs: ids, outputs: hidden });
    const freeze = freezeAllButDraftHeads(model);
    expect(freeze.trainable).toEqual(head.weights);
    expect(new Set(freeze.frozen)).toEqual(new Set([...embed.weights, ...gru.weights]));

    const x = counting(8); // [8, LENGTH]
    const T = LENGTH - (K - 1); // positions with k−1 true next tokens
    const optimizer = tf.train.adam(0.02);
    const before = offsetLogits(model, x, 0);
    const draftsBefore = Array.from(head.moduleWeights(1)['w2']!.read().dataSync());
    for (let step = 0; step < 5; step++) {
      const cost = optimizer.minimize(
        () =>
          tf.tidy(() => {
            const states = tf.reshape(tf.slice(trunk.apply(x, { training: true }) as tf.Tensor, [0, 0, 0], [-1, T, -1]), [8 * T, D]) as tf.Tensor2D; // [8·T, D]
            const next = tf.stack(Array.from({ length: K - 1 }, (_, j) => tf.slice(x, [0, 1 + j], [-1, T])), 2); // [8, T, k−1]: tokens t+1…t+k−1
            const logits = tf.concat([head.logits(states, [0]), head.trainingLogits(states, tf.reshape(next, [8 * T, K - 1]) as tf.Tensor2D)], 1); // [8·T, k, V]
            const targets = tf.reshape(tf.slice(multiTokenTargets(x, K), [0, 0, 0], [-1, T, -1]), [1, 8 * T, K]); // [1, 8·T, k]
            return multiTokenLoss(targets, tf.expandDims(logits, 0)).loss;
          }),
        true,
        freeze.variables,
      );
      cost?.dispose();
    }
    expect(offsetLogits(model, x, 0)).toEqual(before);
    expect(Array.from(head.moduleWeights(1)['w2']!.read().dataSync())).not.toEqual(draftsBefore);
    x.dispose();
    optimizer.dispose();
    model.dispose();
  });
});

describe('freezeAllButDraftHeads guards', () => {
  it('refuses something that is not a model', () => {
    expect(() => freezeAllButDraftHeads({} as tfl.LayersModel)).toThrow('freezeAllButDraftHeads: model must be a tf.LayersModel, but got an object (Object).');
    expect(() => freezeAllButDraftHeads(null as unknown as tfl.LayersModel)).toThrow('freezeAllButDraftHeads: model must be a tf.LayersModel, but got null.');
  });

  it('refuses a model without a multi-token head, changing nothing', () => {
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const model = tfl.model({ inputs: ids, outputs: tfl.layers.embedding({ inputDim: V, outputDim: D, name: 'emb' }).apply(ids) as tfl.SymbolicTensor });
    expect(() => freezeAllButDraftHeads(model)).toThrow(
      `freezeAllButDraftHeads: model must contain a MultiTokenHead or SequentialMtpHead layer, but its layers are [${model.layers[0]!.name} (InputLayer), emb (Embedding)].`,
    );
    expect(model.trainableWeights).toHaveLength(1);
    model.dispose();
  });

  it('refuses a head whose offsets 1…k−1 own no weight, changing nothing', () => {
    const { model, head } = gruModel({ headKind: 'identity', name: 'plain_head' });
    const count = model.trainableWeights.length;
    expect(() => freezeAllButDraftHeads(model)).toThrow(
      "freezeAllButDraftHeads: every head must have weights in offsets 1…k−1 to train, but 'plain_head' (numHeads 4 (offsets 1…k−1: identity, identity, identity), built true) has none.",
    );
    expect(model.trainableWeights).toHaveLength(count);
    expect(head.trainable).toBe(true);
    model.dispose();
  });
});
