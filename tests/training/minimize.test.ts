/**
 * Training with a custom `optimizer.minimize` loop + `multiTokenLoss` on real text, joint
 * (trunk and heads, as Gloeckle et al. / DeepSeek-V3 MTP) and with a frozen trunk (Medusa-1:
 * trunk layers `trainable = false`, only the offset heads learn). Seeded; thresholds: setup.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenLoss, multiTokenTargets } from '../../src/index.js';
import { tinyModel } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';
import { BATCH, expectLearned, heldOutLosses, K, LEARNING_RATE, loadTrainingData, report, STEPS, type TrainingData } from '../helpers/training.js';

let data: TrainingData;
beforeAll(async () => {
  data = await loadTrainingData();
});

/** One Adam step on a batch of BATCH windows from `start` (modulo the window count). */
function step(model: ReturnType<typeof tinyModel>['model'], optimizer: tf.Optimizer, start: number): void {
  tf.tidy(() => {
    const x = tf.slice(data.train, [start % (data.train.shape[0] - BATCH), 0], [BATCH, -1]); // [BATCH, 32]
    const targets = multiTokenTargets(x, K); // [BATCH, 32, 3]
    optimizer.minimize(() => multiTokenLoss(targets, model.apply(x, { training: true }) as tf.Tensor, { offsetWeights: [1, 0.8, 0.64] }).loss);
  });
}

/** Every weight's values, in order. */
function values(weights: { read(): tf.Tensor }[]): number[][] {
  return weights.map((w) => Array.from(w.read().dataSync()));
}

describe('optimizer.minimize on real text (k = 3)', () => {
  it('joint training lowers every offset loss; a step leaks no tensor', async () => {
    const { model } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, tied: true, numHeads: K });
    const before = heldOutLosses(model, data);
    const optimizer = tf.train.adam(LEARNING_RATE);
    step(model, optimizer, 0); // creates Adam's slots
    await expectNoLeak(() => step(model, optimizer, BATCH));
    for (let s = 2; s < STEPS; s++) step(model, optimizer, 37 * s); // a stride coprime to the window count mixes the text
    const after = heldOutLosses(model, data);
    report('optimizer.minimize', before, after, data);
    expectLearned(before, after);
    model.dispose();
    optimizer.dispose();
  });

  it('frozen trunk (Medusa-1) changes head weights only', () => {
    const { model, head, trunk } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, numHeads: K });
    for (const layer of trunk) layer.trainable = false;
    expect(model.trainableWeights.map((w) => w.originalName).every((n) => n.startsWith('mtp_head/'))).toBe(true);
    const trunkBefore = values(trunk.flatMap((l) => l.weights));
    const headBefore = values(head.weights);
    const before = heldOutLosses(model, data);
    const optimizer = tf.train.adam(LEARNING_RATE);
    for (let s = 0; s < STEPS / 2; s++) step(model, optimizer, BATCH * s);
    const after = heldOutLosses(model, data);
    report(`frozen trunk, ${STEPS / 2} steps`, before, after, data);
    expect(values(trunk.flatMap((l) => l.weights))).toEqual(trunkBefore);
    values(head.weights).forEach((w, i) => expect(w, head.weights[i]!.originalName).not.toEqual(headBefore[i]));
    after.forEach((a, j) => expect(a, `offset ${j}`).toBeLessThan(before[j]!));
    model.dispose();
    optimizer.dispose();
  });
});
