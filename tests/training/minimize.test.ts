/**
 * Training with a custom `optimizer.minimize` loop + `multiTokenLoss` on real text, joint
 * (trunk and heads, as Gloeckle et al. / DeepSeek-V3 MTP) and with a frozen trunk (Medusa-1:
 * trunk layers `trainable = false`, only the offset heads learn). Thresholds: see setup.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenLoss, multiTokenTargets } from '../../src/index.js';
import { tinyModel } from '../layers/fixtures.js';
import { heldOutLosses, K, loadTrainingData, RATIO, report, type TrainingData } from './setup.js';

let data: TrainingData;
beforeAll(async () => {
  data = await loadTrainingData();
});

/** One Adam step on a batch of windows `[start, start + 8)`. */
function step(model: ReturnType<typeof tinyModel>['model'], optimizer: tf.Optimizer, start: number): void {
  tf.tidy(() => {
    const x = tf.slice(data.train, [start % (data.train.shape[0] - 8), 0], [8, -1]); // [8, 32], windows start…start+7
    const targets = multiTokenTargets(x, K); // [8, 32, 3]
    optimizer.minimize(() => multiTokenLoss(targets, model.apply(x, { training: true }) as tf.Tensor, { offsetWeights: [1, 0.8, 0.64] }).loss);
  });
}

describe('optimizer.minimize on real text (k = 3)', () => {
  it('joint training lowers every offset loss; a step leaks no tensor', () => {
    const { model } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, tied: true, numHeads: K });
    const before = heldOutLosses(model, data);
    const optimizer = tf.train.adam(0.03);
    step(model, optimizer, 0); // creates Adam's slots
    const tensors = tf.memory().numTensors;
    step(model, optimizer, 8);
    expect(tf.memory().numTensors).toBe(tensors);
    for (let s = 2; s < 80; s++) step(model, optimizer, 37 * s); // a stride coprime to the window count mixes the text
    const after = heldOutLosses(model, data);
    report('optimizer.minimize', before, after, data);
    after.forEach((a, j) => expect(a, `offset ${j}`).toBeLessThan(RATIO * before[j]!));
    model.dispose();
    optimizer.dispose();
  });

  it('frozen trunk (Medusa-1) changes head weights only', () => {
    const { model, head, trunk } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, numHeads: K });
    const trunkWeights = trunk.flatMap((l) => l.getWeights().map((w) => w.arraySync()));
    const headBefore = head.getWeights().map((w) => w.arraySync());
    for (const layer of trunk) layer.trainable = false;
    expect(model.trainableWeights.map((w) => w.originalName).every((n) => n.startsWith('mtp_head/'))).toBe(true);
    const before = heldOutLosses(model, data);
    const optimizer = tf.train.adam(0.03);
    for (let s = 0; s < 20; s++) step(model, optimizer, 8 * s);
    const after = heldOutLosses(model, data);
    report('frozen trunk, 20 steps', before, after, data);
    expect(trunk.flatMap((l) => l.getWeights().map((w) => w.arraySync()))).toEqual(trunkWeights);
    const headAfter = head.getWeights().map((w) => w.arraySync());
    headAfter.forEach((w, i) => expect(w, head.weights[i]!.originalName).not.toEqual(headBefore[i]));
    after.forEach((a, j) => expect(a, `offset ${j}`).toBeLessThan(before[j]!));
    model.dispose();
    optimizer.dispose();
  });
});
