/**
 * Training parameters of sequential MTP modules (`npm run train:heads -- --kind sequential`):
 * the variables of the model's own `SequentialMtpHead`, trained through its teacher-forced path
 * (module j fed the true tokens at p+1…p+j, as in DeepSeek-V3 §2.2), so the trained math is the
 * decoding chain's exactly — over the head's draft vocabulary when it has one.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import type { DraftParams } from './train.js';

/**
 * The head's module variables as {@link DraftParams} (names `module<j>/<weight>`); logits over the
 * head's draft vocabulary when it has one (set it before training), else the whole vocabulary.
 */
export function sequentialParams(head: SequentialMtpHead): DraftParams {
  const variables = new Map<string, tf.Variable>();
  for (let j = 1; j < head.numHeads; j++) {
    for (const [name, w] of Object.entries(head.moduleWeights(j))) variables.set(`module${j}/${name}`, w.read() as tf.Variable);
  }
  return {
    variables,
    logits: (data, rows) => {
      const h = tf.gather(data.hidden, rows) as tf.Tensor2D; // [m, D]
      const next = Array.from({ length: head.numHeads - 1 }, (_, i) => tf.gather(data.tokens, tf.add(rows, tf.scalar(i + 1, 'int32')))); // (k−1) × [m]
      const tokens = tf.stack(next, 1) as tf.Tensor2D; // [m, k − 1]
      return tf.unstack(head.trainingLogits(h, tokens), 1) as tf.Tensor2D[]; // (k−1) × [m, Vd]
    },
  };
}
