/**
 * Training on a small real text (the start of TypeScript's lib.es5.d.ts, character level, V = 77):
 * a tiny causal trunk + MultiTokenHead (k = 3, tied) trained with `model.fit` +
 * `multiTokenLossFunction` + `offsetLossMetric` logging.
 *
 * Threshold (measured, documented in docs/training.md): after 80 Adam steps every offset's
 * held-out loss is below 0.8× its initial value (≈ ln V = 4.34); measured finals 2.9–3.2.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenLossFunction, multiTokenTargets, offsetLossMetric, oneHotMultiTokenTargets } from '../../src/index.js';
import { tinyModel } from '../layers/fixtures.js';
import { expectLearned, heldOutLosses, K, loadTrainingData, report, type TrainingData } from './setup.js';

let data: TrainingData;
beforeAll(async () => {
  data = await loadTrainingData();
});

describe('model.fit on real text (k = 3)', () => {
  it('lowers every offset loss and logs offset{j}_loss', async () => {
    const { model } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, tied: true, numHeads: K });
    const before = heldOutLosses(model, data);
    model.compile({ optimizer: tf.train.adam(0.03), loss: multiTokenLossFunction({ offsetWeights: { decay: 0.8 } }), metrics: [0, 1, 2].map(offsetLossMetric) });
    const x = tf.slice(data.train, [0, 0], [160, -1]); // [160, 32]
    const y = tf.tidy(() => oneHotMultiTokenTargets(multiTokenTargets(x, K), data.vocabSize)); // [160, 32, 3, V]
    const history = await model.fit(x, y, { epochs: 4, batchSize: 8, verbose: 0 }); // 80 steps
    tf.dispose([x, y]);
    expect(Object.keys(history.history).sort()).toEqual(['loss', 'offset0_loss', 'offset1_loss', 'offset2_loss']);
    const logged = history.history['offset1_loss']!.map(Number);
    expect(logged[logged.length - 1]).toBeLessThan(logged[0]!);
    const after = heldOutLosses(model, data);
    report('model.fit', before, after, data);
    expectLearned(before, after);
    model.dispose();
  });
});
