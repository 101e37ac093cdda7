/**
 * multiTokenTargets and multiTokenLoss on hand-made tensors: shifted targets with -1 masks, the
 * loss against a direct computation, masks, offset weights, the Keras adapters, every guard's
 * message, and no leaked tensor after a call or a throw.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenLoss, multiTokenLossFunction, multiTokenTargets, offsetLossMetric, oneHotMultiTokenTargets } from '../../src/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

/** Reference cross-entropy of one row, in float64. */
function ce(row: number[], target: number): number {
  const m = Math.max(...row);
  const lse = m + Math.log(row.reduce((a, x) => a + Math.exp(x - m), 0));
  return lse - row[target]!;
}

describe('multiTokenTargets', () => {
  it('shifts by 1+j and masks past the end', async () => {
    const tokens = tf.tensor2d([[5, 6, 7]], [1, 3], 'int32');
    const t = multiTokenTargets(tokens, 2);
    expect(t.dtype).toBe('int32');
    expect(t.arraySync()).toEqual([[[6, 7], [7, -1], [-1, -1]]]);
    expect(tf.tidy(() => multiTokenTargets(tokens, 4).arraySync())).toEqual([[[6, 7, -1, -1], [7, -1, -1, -1], [-1, -1, -1, -1]]]);
    const three = await expectNoLeak(() => multiTokenTargets(tokens, 3));
    expect(three.shape).toEqual([1, 3, 3]);
    tf.dispose([tokens, t]);
  });
});

describe('multiTokenLoss', () => {
  const logitsData = [
    [[[2, 0, -1], [0, 1, 0]], [[5, 0, 0], [1, 1, 1]]],
    [[[0, 0, 3], [-2, 4, 0]], [[0.5, 0.1, 0], [9, -9, 0]]],
  ]; // [b=2, s=2, k=2, V=3]
  const targetData = [[[0, 1], [2, -1]], [[2, 1], [-1, -1]]]; // [2, 2, 2]

  it('equals the per-offset mean cross-entropy over unmasked positions, weighted over offsets', async () => {
    const logits = tf.tensor4d(logitsData);
    const targets = tf.tensor3d(targetData, undefined, 'int32');
    const ref = [0, 1].map((j) => {
      const terms: number[] = [];
      for (let b = 0; b < 2; b++) for (let s = 0; s < 2; s++) if (targetData[b]![s]![j]! >= 0) terms.push(ce(logitsData[b]![s]![j]!, targetData[b]![s]![j]!));
      return terms.reduce((a, x) => a + x, 0) / terms.length;
    });
    const { loss, perOffset } = multiTokenLoss(targets, logits, { offsetWeights: [1, 3] });
    expect(Array.from(perOffset.dataSync())[0]).toBeCloseTo(ref[0]!, 5);
    expect(Array.from(perOffset.dataSync())[1]).toBeCloseTo(ref[1]!, 5);
    expect(loss.dataSync()[0]).toBeCloseTo((ref[0]! + 3 * ref[1]!) / 4, 5);
    const decay = multiTokenLoss(targets, logits, { offsetWeights: { decay: 0.5 } });
    expect(decay.loss.dataSync()[0]).toBeCloseTo((ref[0]! + 0.5 * ref[1]!) / 1.5, 5);
    const hot = oneHotMultiTokenTargets(targets, 3);
    const dense = multiTokenLoss(hot, logits, { offsetWeights: [1, 3] });
    expect(dense.loss.dataSync()[0]).toBeCloseTo(loss.dataSync()[0]!, 6);
    const mask = tf.tensor2d([[1, 0], [1, 1]]); // drop b=0, s=1
    const masked = multiTokenLoss(targets, logits, { mask });
    expect(masked.perOffset.dataSync()[0]).toBeCloseTo((ce([2, 0, -1], 0) + ce([0, 0, 3], 2)) / 2, 5);
    const weighted = await expectNoLeak(() => multiTokenLoss(targets, logits, { mask, offsetWeights: { decay: 0.8 } }));
    expect(weighted.perOffset.shape).toEqual([2]);
    tf.dispose([logits, targets, loss, perOffset, decay.loss, decay.perOffset, hot, dense.loss, dense.perOffset, mask, masked.loss, masked.perOffset]);
  });

  it('is finite with huge logits and all-masked offsets, and has finite gradients', async () => {
    const logits = tf.tensor4d([[[[1e4, -1e4, 0], [0, 0, 0]]]]); // [1, 1, 2, 3]
    const targets = tf.tensor3d([[[1, -1]]], undefined, 'int32');
    const { loss, perOffset } = multiTokenLoss(targets, logits);
    expect(Array.from(perOffset.dataSync())).toEqual([2e4, 0]);
    const g = tf.grad((l: tf.Tensor) => multiTokenLoss(targets, l).loss)(logits);
    expect(Array.from(g.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([logits, targets, loss, perOffset, g]);
  });

  it('Keras adapters: loss function and offset metric', async () => {
    const logits = tf.tensor4d(logitsData);
    const targets = tf.tensor3d(targetData, undefined, 'int32');
    const fn = multiTokenLossFunction();
    const metric = offsetLossMetric(1);
    expect(metric.name).toBe('offset1_loss');
    const full = multiTokenLoss(targets, logits);
    let value = NaN;
    const l = await expectNoLeak(() => {
      const out = fn(targets, logits); // the caller's scalar; every intermediate must be gone
      value = out.dataSync()[0]!;
      return out;
    });
    expect(l.shape).toEqual([]);
    const m = metric(targets, logits);
    expect(value).toBeCloseTo(full.loss.dataSync()[0]!, 6);
    expect(m.dataSync()[0]).toBeCloseTo(full.perOffset.dataSync()[1]!, 6);
    await expectThrowNoLeak(() => offsetLossMetric(2)(targets, logits), 'offsetLossMetric: offset must be below the number of offsets 2 of logits [2, 2, 2, 3], but got 2.');
    tf.dispose([logits, targets, full.loss, full.perOffset, m]);
  });

  it('guards name the argument and the value', async () => {
    const logits = tf.zeros([1, 2, 2, 3]);
    const targets = tf.zeros([1, 2, 2], 'int32');
    const tokens = tf.zeros([1, 2, 3], 'int32');
    const mask = tf.ones([2, 2]);
    await expectThrowNoLeak(() => multiTokenTargets(targets, 0), 'multiTokenTargets: k must be a positive integer at most 64, but got 0.');
    await expectThrowNoLeak(() => multiTokenTargets(tokens, 2), 'multiTokenTargets: tokens must have rank 2 ([batch, seq]), but got rank 3 (shape [1, 2, 3]).');
    await expectThrowNoLeak(() => oneHotMultiTokenTargets(targets, 0), 'oneHotMultiTokenTargets: vocabSize must be a positive integer at most 1048576, but got 0.');
    await expectThrowNoLeak(() => multiTokenLoss(targets, logits, { offsetWeights: [1] }), 'multiTokenLoss: offsetWeights must have length k = 2, but got length 1.');
    await expectThrowNoLeak(() => multiTokenLoss(targets, logits, { offsetWeights: [1, -0.5] }), 'multiTokenLoss: offsetWeights[1] must be a finite number ≥ 0, but got -0.5.');
    await expectThrowNoLeak(() => multiTokenLoss(targets, logits, { offsetWeights: [0, 0] }), 'multiTokenLoss: offsetWeights must have a positive entry, but got [0, 0].');
    await expectThrowNoLeak(() => multiTokenLoss(targets, logits, { offsetWeights: { decay: 0 } }), 'multiTokenLoss: offsetWeights.decay must be a finite number > 0, but got 0.');
    await expectThrowNoLeak(() => multiTokenLoss(targets, targets), 'multiTokenLoss: logits must have rank 4 ([batch, seq, k, vocab]), but got shape [1, 2, 2].');
    await expectThrowNoLeak(() => multiTokenLoss(tokens, logits), 'multiTokenLoss: targets must be ids [1, 2, 2] or one-hot [1, 2, 2, 3] to match logits [1, 2, 2, 3], but got shape [1, 2, 3].');
    await expectThrowNoLeak(() => multiTokenLoss(targets, logits, { mask }), 'multiTokenLoss: mask must have shape [1, 2] ([batch, seq]), but got shape [2, 2].');
    await expectThrowNoLeak(() => multiTokenLossFunction({ mask }), 'multiTokenLossFunction: options.mask is not supported (model.fit batches the data), but got a tensor of shape [2, 2]; mark padding as -1 targets instead.');
    await expectThrowNoLeak(() => multiTokenLossFunction({ offsetWeights: [-1] }), 'multiTokenLossFunction: offsetWeights[0] must be a finite number ≥ 0, but got -1.');
    await expectThrowNoLeak(() => offsetLossMetric(-1), 'offsetLossMetric: offset must be an integer in [0, 63], but got -1.');
    tf.dispose([logits, targets, tokens, mask]);
  });
});
