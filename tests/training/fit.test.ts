/**
 * Training on a small real text (the start of TypeScript's lib.es5.d.ts, character level, V = 77):
 * a tiny seeded causal trunk + MultiTokenHead (k = 3, tied) trained with `model.fit` +
 * `multiTokenLossFunction` + `offsetLossMetric` logging.
 *
 * Threshold (measured, documented in docs/training.md): after STEPS Adam steps every offset's
 * held-out loss is below RATIO× its initial value (≈ ln V = 4.34). The run is seeded (weights,
 * no shuffling), so it repeats exactly.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { multiTokenLossFunction, multiTokenTargets, offsetLossMetric, oneHotMultiTokenTargets } from '../../src/index.js';
import { tinyModel } from '../helpers/layers.js';
import { BATCH, expectLearned, heldOutLosses, K, LEARNING_RATE, loadTrainingData, report, STEPS, type TrainingData } from '../helpers/training.js';

let data: TrainingData;
beforeAll(async () => {
  data = await loadTrainingData();
});

describe('model.fit on real text (k = 3)', () => {
  it('lowers every offset loss and logs offset{j}_loss', async () => {
    const { model } = tinyModel({ vocabSize: data.vocabSize, hidden: 16, tied: true, numHeads: K });
    const before = heldOutLosses(model, data);
    model.compile({ optimizer: tf.train.adam(LEARNING_RATE), loss: multiTokenLossFunction({ offsetWeights: { decay: 0.8 } }), metrics: [0, 1, 2].map(offsetLossMetric) });
    const epochs = 2;
    const x = tf.slice(data.train, [0, 0], [(STEPS / epochs) * BATCH, -1]); // [24, 32]: STEPS / 2 batches per epoch
    const y = tf.tidy(() => oneHotMultiTokenTargets(multiTokenTargets(x, K), data.vocabSize)); // [24, 32, 3, V]
    const history = await model.fit(x, y, { epochs, batchSize: BATCH, shuffle: false, verbose: 0 });
    tf.dispose([x, y]);
    expect(Object.keys(history.history).sort()).toEqual(['loss', 'offset0_loss', 'offset1_loss', 'offset2_loss']);
    const logged = history.history['offset1_loss']!.map(Number); // one mean per epoch
    expect(logged).toHaveLength(epochs);
    expect(logged[1]).toBeLessThan(logged[0]!);
    const after = heldOutLosses(model, data);
    report('model.fit', before, after, data);
    expectLearned(before, after);
    model.dispose();
  });
});
