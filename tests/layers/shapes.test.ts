/**
 * Shape grid of MultiTokenHead: k ∈ {1, 2, 4} × every head kind × tied/untied. The output is
 * [b, s, k, V], and computeLogits on a subset of offsets equals the matching slice of it.
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenHead } from '../../src/index.js';
import { type OffsetHeadKind } from '../../src/layers/args.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const V = 11;
const D = 6;
const grid = [1, 2, 4].flatMap((k) =>
  (['identity', 'linear', 'residual', 'lowRank', 'mlp'] as OffsetHeadKind[]).flatMap((kind) => [false, true].map((tied) => ({ k, kind, tied }))),
);

describe.each(grid)('MultiTokenHead k=$k kind=$kind tied=$tied', ({ k, kind, tied }) => {
  it('outputs [b, s, k, V] and computeLogits matches the full output', async () => {
    const embedding = tfl.layers.embedding({ inputDim: V, outputDim: D });
    tf.dispose(embedding.apply(tf.zeros([1, 1], 'int32')) as tf.Tensor);
    const head = multiTokenHead({ numHeads: k, vocabSize: V, headKind: kind, offset0Kind: kind, rank: 2, headHiddenSize: 3, ...(tied ? { tiedTo: embedding } : {}) });
    const hidden = tf.randomNormal([2, 5, D], 0, 1, 'float32', 7); // [2, 5, D]
    tf.dispose(head.apply(hidden) as tf.Tensor);
    randomizeWeights(head, 3);
    const checked = await expectNoLeak(() => head.apply(hidden) as tf.Tensor); // disposed by the leak check
    expect(checked.shape).toEqual([2, 5, k, V]);
    const logits = head.apply(hidden) as tf.Tensor; // [2, 5, k, V]
    expect(logits.shape).toEqual([2, 5, k, V]);
    const offsets = k === 1 ? [0] : [k - 1, 0];
    const subset = head.computeLogits(tf.reshape(hidden, [10, D]), offsets); // [10, n, V]
    expect(subset.shape).toEqual([10, offsets.length, V]);
    const expected = tf.reshape(tf.gather(logits, offsets, 2), [10, offsets.length, V]);
    expect(Array.from(subset.dataSync())).toEqual(Array.from(expected.dataSync()));
    const subset3 = head.computeLogits(hidden, offsets); // [2, 5, n, V]
    expect(subset3.shape).toEqual([2, 5, offsets.length, V]);
    expect(Array.from(subset3.dataSync())).toEqual(Array.from(expected.dataSync()));
    const again = await expectNoLeak(() => head.computeLogits(hidden, offsets)); // disposed by the leak check
    expect(again.shape).toEqual([2, 5, offsets.length, V]);
    tf.dispose([hidden, logits, subset, subset3, expected]);
  });
});
