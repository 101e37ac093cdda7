/**
 * The loss of `trainDraftHeads`: offset j at position p against the frozen model's own choice at
 * p + j, teacher forced (the head's `trainingLogits`: sequential module j is fed the true token
 * at p + j). Hard target: cross-entropy with the argmax (the greedy acceptance test itself),
 * averaged over the rows whose target is in the draft vocabulary. Soft target: cross-entropy with
 * the frozen model's distribution restricted to the draft vocabulary and renormalised. `mix`:
 * half each.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3.2 (self-distillation; hard vs soft targets).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DraftHeadLayer } from '../../layers/draft_head.js';
import type { HeadData } from './data.js';

/** Weight of the hard target per `targets` setting (the soft one gets the rest). */
export const HARD_WEIGHT = { hard: 1, soft: 0, mix: 0.5 } as const;

/** Positions p + 1 … p + k − 1 of every row p, int32 `[m, k − 1]`. */
export function offsetPositions(rows: tf.Tensor1D, numHeads: number): tf.Tensor2D {
  return tf.add(tf.expandDims(rows, 1), tf.range(1, numHeads, 1, 'int32')) as tf.Tensor2D; // [m, k−1]
}

/** The teacher-forced draft logits `[m, k − 1, Vd]` at `rows` and the positions they predict `[m, k − 1]`. */
export function draftLogitsAt(head: DraftHeadLayer, data: HeadData, rows: tf.Tensor1D): { logits: tf.Tensor3D; at: tf.Tensor2D } {
  const at = offsetPositions(rows, head.numHeads); // [m, k−1]
  const states = tf.gather(data.hidden, rows) as tf.Tensor2D; // [m, D]
  const next = tf.gather(data.tokens, at) as tf.Tensor as tf.Tensor2D; // [m, k−1] the true tokens at p+1…p+k−1
  return { logits: head.trainingLogits(states, next), at }; // [m, k−1, Vd]
}

/**
 * Per row and offset, the cross-entropy with the hard target `[m, k − 1]` and whether the target
 * is in the draft vocabulary (float 0/1 `[m, k − 1]`). The target's log-probability is picked with
 * a one-hot product: a gather's gradient would be a segment sum, which is slow on cpu and missing
 * on wasm (a target of −1 is a zero row).
 */
export function hardCrossEntropy(logp: tf.Tensor3D, target: tf.Tensor2D): { nll: tf.Tensor2D; valid: tf.Tensor2D } {
  const valid = tf.cast(tf.greaterEqual(target, tf.scalar(0, 'int32')), 'float32') as tf.Tensor2D; // [m, k−1]
  const hot = tf.oneHot(target, logp.shape[2]); // [m, k−1, Vd]
  return { nll: tf.neg(tf.sum(tf.mul(hot, logp), -1)) as tf.Tensor2D, valid }; // [m, k−1]
}

/** Mean loss over offsets of the rows `rows`, and the per-offset losses `[k − 1]`. */
export function batchLoss(head: DraftHeadLayer, data: HeadData, rows: tf.Tensor1D, hardWeight: number): { loss: tf.Scalar; perOffset: tf.Tensor1D } {
  const { logits, at } = draftLogitsAt(head, data, rows); // [m, k−1, Vd], [m, k−1]
  const [m, k1, vd] = logits.shape;
  const logp = tf.logSoftmax(logits) as tf.Tensor3D; // [m, k−1, Vd]
  const parts: tf.Tensor1D[] = [];
  if (hardWeight > 0) {
    const { nll, valid } = hardCrossEntropy(logp, tf.gather(data.target, at) as tf.Tensor as tf.Tensor2D); // [m, k−1] each
    const mean = tf.div(tf.sum(nll, 0), tf.maximum(tf.sum(valid, 0), 1)); // [k−1] over rows with a target in the draft vocabulary
    parts.push(tf.mul(mean, hardWeight) as tf.Tensor1D);
  }
  if (hardWeight < 1) {
    const flat = tf.reshape(at, [m * k1]); // [m·(k−1)]
    const teacher = tf.reshape(head.logits(tf.gather(data.hidden, flat) as tf.Tensor2D, [0]), [m * k1, head.vocabSize]); // [m·(k−1), V] offset 0 at p + j
    const restricted = data.draftIds === null ? teacher : tf.gather(teacher, data.draftIds, 1); // [m·(k−1), Vd]
    const p = tf.reshape(tf.softmax(restricted), [m, k1, vd]); // the teacher's distribution over the draft vocabulary
    parts.push(tf.mul(tf.neg(tf.mean(tf.sum(tf.mul(p, logp), -1), 0)), 1 - hardWeight) as tf.Tensor1D); // [k−1]
  }
  const perOffset = parts.length === 1 ? parts[0]! : (tf.add(parts[0]!, parts[1]!) as tf.Tensor1D); // [k−1]
  return { loss: tf.mean(perOffset) as tf.Scalar, perOffset };
}
