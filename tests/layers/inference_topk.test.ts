/**
 * MultiTokenHead.headTopK (tree drafting's head pass): prepared and unprepared, rank 0 is exactly
 * headArgmax's column, the ranks are the k most likely tokens in decreasing order with their
 * log-softmax values, a row with a non-finite logit is −1 throughout, and bad n / k are refused.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights, tinyModel } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

describe.each([false, true])('headTopK (prepared: %s)', (prepared) => {
  it('rank 0 equals headArgmax; ranks are the top k of log-softmax(logits), descending', async () => {
    const { model, head } = tinyModel({ numHeads: 4, vocabSize: 29, hidden: 16, headKind: 'mlp', headHiddenSize: 12, tied: true, useBias: true, seed: 5 });
    randomizeWeights(head, 5, 0.5);
    const rows = tf.randomNormal([6, 16], 0, 1, 'float32', 11) as tf.Tensor2D; // [m, D]
    await expectNoLeak(async () => {
      if (prepared) head.prepare(); // the stacked kernels it makes on first use are freed by release
      const top = head.headTopK(rows, 3, 5); // [6, 3, 5]
      const argmax = head.headArgmax(rows, 3); // [6, 3]
      const logits = head.computeLogits(rows, [0, 1, 2]) as tf.Tensor3D; // [6, 3, V]
      const logSoftmax = tf.logSoftmax(logits);
      const [ids, lp, best, ls] = [await top.ids.array(), await top.logProbs.array(), await argmax.array(), await logSoftmax.array()];
      expect(top.ids.shape).toEqual([6, 3, 5]);
      expect(top.ids.dtype).toBe('int32');
      ids.forEach((row, m) =>
        row.forEach((cands, j) => {
          expect(cands[0]).toBe(best[m]![j]);
          const want = ls[m]![j]!.map((v, t) => [v, t] as const).sort((a, b) => b[0] - a[0]).slice(0, 5);
          expect(cands).toEqual(want.map(([, t]) => t));
          lp[m]![j]!.forEach((v, r) => expect(v).toBeCloseTo(want[r]![0], 4));
        }),
      );
      tf.dispose([top.ids, top.logProbs, argmax, logits, logSoftmax]);
      if (prepared) head.release();
    });
    rows.dispose();
    model.dispose();
  });
});

it('a row with a non-finite logit has −1 ids; bad n and k are refused naming them', async () => {
  const { model, head } = tinyModel({ numHeads: 3, vocabSize: 11, hidden: 8, headKind: 'residual', tied: false, useBias: false, seed: 2 });
  const rows = tf.tensor2d([Array.from({ length: 8 }, () => 0.5), [NaN, ...Array.from({ length: 7 }, () => 0)]]); // [2, 8]
  const top = head.headTopK(rows, 2, 3);
  const ids = (await top.ids.array()) as number[][][];
  expect(ids[0]!.flat().every((t) => t >= 0 && t < 11)).toBe(true);
  expect(ids[1]!.flat()).toEqual([-1, -1, -1, -1, -1, -1]);
  expect(() => head.headTopK(rows, 4, 3)).toThrow('MultiTokenHead.headTopK: n must be an integer in [1, 3], but got 4.');
  expect(() => head.headTopK(rows, 2, 12)).toThrow('MultiTokenHead.headTopK: k must be an integer in [1, 11], but got 12.');
  tf.dispose([rows, top.ids, top.logProbs]);
  model.dispose();
});
