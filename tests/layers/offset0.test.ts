/**
 * Offset 0 is the identity by default, so attaching MTP to a trained model leaves its
 * next-token logits exactly unchanged (untied: the trained unembedding is reused; tied: the
 * same embedding is read).
 */
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenHead, sharedUnembedding } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';

beforeAll(useCpu);

const V = 13;
const D = 8;

function trunk(): { ids: tfl.SymbolicTensor; emb: tfl.layers.Layer; h: tfl.SymbolicTensor } {
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const emb = tfl.layers.embedding({ inputDim: V, outputDim: D, name: 'tok_emb' });
  const h = tfl.layers.dense({ units: D, activation: 'tanh' }).apply(emb.apply(ids)) as tfl.SymbolicTensor; // [B, T, D]
  return { ids, emb, h };
}

describe('offset 0 is exact', () => {
  it.each([false, true])('tied=%s: next-token logits unchanged after attaching MTP', (tied) => {
    const { ids, emb, h } = trunk();
    const base = sharedUnembedding({ vocabSize: V, useBias: !tied, ...(tied ? { tiedTo: emb } : {}) });
    const baseModel = tfl.model({ inputs: ids, outputs: base.apply(h) as tfl.SymbolicTensor }); // "trained" next-token model
    randomizeWeights(baseModel, 5);
    const head = multiTokenHead({ numHeads: 3, vocabSize: V, useBias: !tied, ...(tied ? { tiedTo: emb } : {}) });
    const mtpModel = tfl.model({ inputs: ids, outputs: head.apply(h) as tfl.SymbolicTensor });
    if (!tied) head.unembedding.setWeights(base.getWeights()); // reuse the trained unembedding
    randomizeWeights({ weights: head.offsetHeads.slice(1).flatMap((o) => o.weights) }, 9); // offsets ≥ 1 trained
    const x = tf.tensor2d([[3, 1, 4, 1, 5, 9, 2, 6]], [1, 8], 'int32');
    const next = baseModel.predict(x) as tf.Tensor; // [1, 8, V]
    const all = mtpModel.predict(x) as tf.Tensor; // [1, 8, 3, V]
    const offset0 = tf.squeeze(tf.slice(all, [0, 0, 0, 0], [1, 8, 1, V]), [2]); // [1, 8, V]
    expect(Array.from(offset0.dataSync())).toEqual(Array.from(next.dataSync()));
    const offset1 = tf.squeeze(tf.slice(all, [0, 0, 1, 0], [1, 8, 1, V]), [2]);
    expect(Array.from(offset1.dataSync())).not.toEqual(Array.from(next.dataSync()));
    tf.dispose([x, next, all, offset0, offset1]);
  });
});
