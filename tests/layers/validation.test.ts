/**
 * Every guard of the layers fires with a message naming the argument and the value, and leaves
 * no tensor behind; apply leaks nothing.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { lightweightOffsetHead, multiTokenHead, parameterReport, sharedUnembedding } from '../../src/index.js';
import { type OffsetHeadKind } from '../../src/layers/args.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

describe('constructor guards', () => {
  it.each([
    [() => multiTokenHead({ numHeads: 0, vocabSize: 5 }), 'MultiTokenHead: numHeads must be a positive integer at most 64, but got 0.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 2.5 }), 'MultiTokenHead: vocabSize must be a positive integer at most 1048576, but got 2.5.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, headKind: 'conv' as OffsetHeadKind }), `MultiTokenHead: headKind must be one of 'identity', 'linear', 'residual', 'lowRank', 'mlp', but got "conv".`],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, offset0Kind: 'x' as OffsetHeadKind }), `MultiTokenHead: offset0Kind must be one of 'identity', 'linear', 'residual', 'lowRank', 'mlp', but got "x".`],
    [() => multiTokenHead({ numHeads: 3, vocabSize: 5, headKind: ['linear'] }), 'MultiTokenHead: headKind as an array must have length numHeads - 1 = 2, but got length 1.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, headKind: 'lowRank', rank: 0 }), 'MultiTokenHead: rank must be a positive integer at most 65536, but got 0.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, headKind: 'lowRank' }), 'MultiTokenHead: rank must be a positive integer at most 65536, but got undefined.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, activation: 'nope' as 'relu' }), 'MultiTokenHead: activation must be a tfjs-layers activation name, but got "nope".'],
    [() => lightweightOffsetHead({ kind: 'lowRank', rank: -1 }), 'LightweightOffsetHead: rank must be a positive integer at most 65536, but got -1.'],
    [() => sharedUnembedding({ vocabSize: 0 }), 'SharedUnembedding: vocabSize must be a positive integer at most 1048576, but got 0.'],
    [() => sharedUnembedding({ vocabSize: 4, tiedTo: 3 as unknown as string }), 'SharedUnembedding: tiedTo must be an Embedding layer or a non-empty layer name, but got 3.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, headKind: 'mlp' }), 'MultiTokenHead: headHiddenSize must be a positive integer at most 65536, but got undefined.'],
    [() => lightweightOffsetHead({ kind: 'mlp', mlpHiddenSize: 1.5 }), 'LightweightOffsetHead: mlpHiddenSize must be a positive integer at most 65536, but got 1.5.'],
    [() => multiTokenHead({ numHeads: 2, vocabSize: 5, unembeddingInitializer: 'nope' as 'zeros' }), 'MultiTokenHead: unembeddingInitializer must be a tfjs-layers initializer name or object, but got "nope".'],
    [() => sharedUnembedding({ vocabSize: 4, tiedTo: {} as unknown as string }), 'SharedUnembedding: tiedTo must be an Embedding layer or a non-empty layer name, but got an object (Object).'],
    [() => parameterReport({ vocabSize: 4, hiddenSize: 0, numHeads: 2 }), 'parameterReport: hiddenSize must be a positive integer at most 65536, but got 0.'],
  ])('%#: %s', async (fn, message) => expectThrowNoLeak(fn, message));
});

describe('build and call guards', () => {
  it('rank ≠ 3 input, eager and symbolic', async () => {
    const head = multiTokenHead({ numHeads: 2, vocabSize: 5 });
    const x = tf.zeros([2, 8]);
    await expectThrowNoLeak(() => head.apply(x), 'MultiTokenHead: the input must have rank 3 ([..., hidden]), but got rank 2 (shape [2, 8]).');
    await expectThrowNoLeak(() => head.apply(tfl.input({ shape: [3, 4, 8] })), 'MultiTokenHead: the input must have rank 3 ([..., hidden]), but got rank 4 (shape [, 3, 4, 8]).');
    const built = multiTokenHead({ numHeads: 2, vocabSize: 5 });
    tf.dispose(built.apply(tf.zeros([1, 2, 8])) as tf.Tensor);
    const flat = tf.zeros([4, 8]);
    await expectThrowNoLeak(() => built.apply(flat), 'MultiTokenHead: the input must have rank 3 ([..., hidden]), but got rank 2 (shape [4, 8]).');
    tf.dispose([x, flat]);
  });

  it('lowRank rank above the hidden size', async () => {
    const head = multiTokenHead({ numHeads: 2, vocabSize: 5, headKind: 'lowRank', rank: 9 });
    const x = tf.zeros([1, 2, 8]);
    await expectThrowNoLeak(() => head.apply(x), 'MultiTokenHead: rank must be at most the hidden size 8, but got 9.');
    const alone = lightweightOffsetHead({ kind: 'lowRank', rank: 9 });
    await expectThrowNoLeak(() => alone.apply(x), 'LightweightOffsetHead: rank must be at most the hidden size 8, but got 9.');
    x.dispose();
  });

  it('hidden size and vocabulary mismatch with the tied embedding', async () => {
    const ids = tfl.input({ shape: [null], dtype: 'int32' });
    const emb = tfl.layers.embedding({ inputDim: 5, outputDim: 8, name: 'tok_emb' });
    const h = tfl.layers.dense({ units: 16 }).apply(emb.apply(ids)) as tfl.SymbolicTensor; // [B, T, 16]
    await expectThrowNoLeak(() => multiTokenHead({ numHeads: 2, vocabSize: 5, tiedTo: emb }).apply(h), "SharedUnembedding: the input hidden size must equal the tied layer 'tok_emb' outputDim, but got hidden size 16 and outputDim 8.");
    const h8 = emb.apply(ids) as tfl.SymbolicTensor;
    await expectThrowNoLeak(() => multiTokenHead({ numHeads: 2, vocabSize: 6, tiedTo: 'tok_emb' }).apply(h8), "SharedUnembedding: vocabSize must equal the tied layer 'tok_emb' inputDim, but got vocabSize 6 and inputDim 5.");
    await expectThrowNoLeak(() => multiTokenHead({ numHeads: 2, vocabSize: 5, tiedTo: 'wte' }).apply(h8), "SharedUnembedding: tiedTo 'wte' must name a layer upstream of the input, but no such layer was found.");
    const byName = multiTokenHead({ numHeads: 2, vocabSize: 5, tiedTo: 'tokEmb' });
    byName.apply(h8);
    expect(byName.unembedding.tiedLayerObject).toBe(emb);
  });

  it('tied to an unbuilt embedding, or by an unresolved name, on the eager path', async () => {
    const emb = tfl.layers.embedding({ inputDim: 5, outputDim: 8 });
    const x = tf.zeros([1, 2, 8]);
    await expectThrowNoLeak(() => multiTokenHead({ numHeads: 2, vocabSize: 5, tiedTo: emb }).apply(x), `SharedUnembedding: tiedTo layer '${emb.name}' must be built (applied once) before it is used, but it is not built.`);
    await expectThrowNoLeak(() => multiTokenHead({ numHeads: 2, vocabSize: 5, tiedTo: 'wte' }).apply(x), "SharedUnembedding: tiedTo 'wte' is not resolved yet; apply the layer to a symbolic tensor downstream of it, or pass the layer object.");
    x.dispose();
  });

  it('computeLogits guards', async () => {
    const head = multiTokenHead({ numHeads: 3, vocabSize: 5 });
    const h = tf.zeros([4, 8]);
    await expectThrowNoLeak(() => head.computeLogits(h, [0]), 'MultiTokenHead.computeLogits: the layer must be built (applied once) first, but it is not built.');
    tf.dispose(head.apply(tf.zeros([1, 1, 8])) as tf.Tensor);
    await expectThrowNoLeak(() => head.computeLogits(h, [0, 3]), 'MultiTokenHead.computeLogits: every offset must be an integer in [0, 3), but got 3.');
    await expectThrowNoLeak(() => head.computeLogits(h, [-1]), 'MultiTokenHead.computeLogits: every offset must be an integer in [0, 3), but got -1.');
    await expectThrowNoLeak(() => head.computeLogits(h, [0.5]), 'MultiTokenHead.computeLogits: every offset must be an integer in [0, 3), but got 0.5.');
    await expectThrowNoLeak(() => head.computeLogits(h, []), 'MultiTokenHead.computeLogits: offsets must be a non-empty array, but got [].');
    const flat = tf.zeros([8]);
    await expectThrowNoLeak(() => head.computeLogits(flat, [0]), 'MultiTokenHead.computeLogits: the input must have rank 2 or 3 ([..., hidden]), but got rank 1 (shape [8]).');
    const some = await expectNoLeak(() => head.computeLogits(h, [2, 1])); // disposed by the check; its shape stays readable
    expect(some.shape).toEqual([4, 2, 5]);
    tf.dispose([h, flat]);
  });

  it('apply leaks nothing', async () => {
    const head = multiTokenHead({ numHeads: 4, vocabSize: 7, headKind: ['linear', 'residual', 'lowRank'], rank: 2 });
    const x = tf.ones([2, 3, 8]);
    tf.dispose(head.apply(x) as tf.Tensor);
    const out = await expectNoLeak(() => head.apply(x) as tf.Tensor);
    expect(out.shape).toEqual([2, 3, 4, 7]);
    x.dispose();
  });
});
