/**
 * The loss of `trainDraftHeads`: offset j at position p against the frozen model's own choice at
 * p + j, teacher forced (the head's `trainingLogits`: sequential module j is fed the true token
 * at p + j). Hard target: cross-entropy with the argmax (the greedy acceptance test itself),
 * averaged over the rows whose target is in the draft vocabulary. Soft target: cross-entropy with
 * the frozen model's distribution restricted to the draft vocabulary and renormalised. `mix`:
 * half each.
 *
 * When the data holds the teacher's top K (`topK`, precomputed per position), HASS's ranking term
 * is added: the cross-entropy with the frozen model's distribution kept on its K most likely
 * tokens of the draft vocabulary and zero elsewhere, not renormalised — it rewards ranking the
 * tokens a tree's top-k drafting will offer in the model's order. `fed` trains sequential modules on the tokens a decode feeds them (their own
 * drafts, EAGLE-3's training-time test) instead of the text's.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3.2 (self-distillation; hard vs soft targets); Zhang
 * et al., "Learning Harmonized Representations for Speculative Sampling" (HASS, 2025), §3.1 (Top-K
 * distillation loss); Li et al., "EAGLE-3" (2025), §3 (training-time test).
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

/**
 * The draft logits `[m, k − 1, Vd]` at `rows` and the positions they predict `[m, k − 1]`: teacher
 * forced (sequential module j fed the true token at p + j), or fed `fed` `[m, k − 1]` (from
 * {@link decodeFedTokens}).
 */
export function draftLogitsAt(head: DraftHeadLayer, data: HeadData, rows: tf.Tensor1D, fed: tf.Tensor2D | null = null): { logits: tf.Tensor3D; at: tf.Tensor2D } {
  const at = offsetPositions(rows, head.numHeads); // [m, k−1]
  const states = tf.gather(data.hidden, rows) as tf.Tensor2D; // [m, D]
  const next = fed ?? (tf.gather(data.tokens, at) as tf.Tensor as tf.Tensor2D); // [m, k−1] the tokens at p+1…p+k−1
  return { logits: head.trainingLogits(states, next), at }; // [m, k−1, Vd]
}

/**
 * What a decode feeds the heads at `rows` `[m, k − 1]` (`DraftHeadLayer.decodeFeed` on the true
 * tokens): integer-valued, computed before the gradient tape of a step.
 */
export function decodeFedTokens(head: DraftHeadLayer, data: HeadData, rows: tf.Tensor1D): tf.Tensor2D {
  return tf.tidy(() => head.decodeFeed(tf.gather(data.hidden, rows) as tf.Tensor2D, tf.gather(data.tokens, offsetPositions(rows, head.numHeads)) as tf.Tensor as tf.Tensor2D));
}

/**
 * HASS's top-K target as dense rows `[n, Vd]`: each row's probabilities `probs` `[n, K]` at its
 * draft columns `columns` int32 `[n, K]` (distinct per row), zero elsewhere, not renormalised.
 */
export function topKDense(columns: tf.Tensor2D, probs: tf.Tensor2D, vd: number): tf.Tensor2D {
  return tf.tidy(() => {
    const [n, k] = columns.shape;
    const rows = tf.reshape(tf.tile(tf.expandDims(tf.range(0, n, 1, 'int32'), 1), [1, k]), [n * k, 1]); // [n·K, 1] each pair's row
    const at = tf.concat([rows, tf.reshape(columns, [n * k, 1])], 1); // [n·K, 2] (row, column)
    return tf.scatterND(at, tf.reshape(probs, [n * k]), [n, vd]) as tf.Tensor2D; // [n, Vd]
  });
}

/**
 * Cross-entropy of logits `z` `[..., Vd]` with a target distribution `q` `[..., Vd]` (each row
 * summing to 1, or to 0: then 0), per row: `logsumexp(z)·Σq − Σ q·z`. Its gradient is written
 * out, `softmax(z)·Σq − q`, one exponential in all (tfjs' logSoftmax gradient takes a second).
 */
export const crossEntropy = tf.customGrad(((z: tf.Tensor, q: tf.Tensor, save: tf.GradSaveFunc) => {
  const max = tf.max(z, -1, true); // [..., 1]
  const e = tf.exp(tf.sub(z, max)); // [..., Vd]
  const total = tf.sum(e, -1, true); // [..., 1]
  const mass = tf.sum(q, -1, true); // [..., 1]: 1, or 0 for no target
  const value = tf.squeeze(tf.sub(tf.mul(tf.add(tf.log(total), max), mass), tf.sum(tf.mul(q, z), -1, true)), [-1]); // [...]
  save([e, total, q, mass]);
  return {
    value,
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [e, total, q, mass] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
      const dz = tf.mul(tf.sub(tf.mul(tf.div(e, total), mass), q), tf.expandDims(dy, -1)); // [..., Vd]
      return [dz, tf.zerosLike(q)];
    },
  };
}) as unknown as Parameters<typeof tf.customGrad>[0]) as (z: tf.Tensor, q: tf.Tensor) => tf.Tensor;

/**
 * Per row and offset, the cross-entropy of the draft logits with the hard target `[m, k − 1]`
 * (0 where the target is outside the draft vocabulary) and whether it is inside (float 0/1). The
 * target is a one-hot row (a target of −1 a zero row): a gather's gradient would be a segment
 * sum, slow on cpu and missing on wasm.
 */
export function hardCrossEntropy(logits: tf.Tensor3D, target: tf.Tensor2D): { nll: tf.Tensor2D; valid: tf.Tensor2D } {
  const valid = tf.cast(tf.greaterEqual(target, tf.scalar(0, 'int32')), 'float32') as tf.Tensor2D; // [m, k−1]
  const hot = tf.cast(tf.oneHot(target, logits.shape[2]), 'float32'); // [m, k−1, Vd] (wasm's OneHot writes int32 whatever dtype is asked)
  return { nll: crossEntropy(logits, hot) as tf.Tensor2D, valid }; // [m, k−1]
}

/** What a training step's loss is made of. */
export interface LossTerms {
  /** Weight of the hard target (the soft one gets the rest): {@link HARD_WEIGHT}. */
  hardWeight: number;
  /** Tokens fed the heads `[m, k − 1]` ({@link decodeFedTokens}); null or absent: the true ones. */
  fed?: tf.Tensor2D | null;
}

/** Mean loss over offsets of the rows `rows`, and the per-offset losses `[k − 1]`. */
export function batchLoss(head: DraftHeadLayer, data: HeadData, rows: tf.Tensor1D, { hardWeight, fed = null }: LossTerms): { loss: tf.Scalar; perOffset: tf.Tensor1D } {
  const { logits, at } = draftLogitsAt(head, data, rows, fed); // [m, k−1, Vd], [m, k−1]
  const [m, k1, vd] = logits.shape;
  const parts: tf.Tensor1D[] = [];
  if (hardWeight > 0) {
    const { nll, valid } = hardCrossEntropy(logits, tf.gather(data.target, at) as tf.Tensor as tf.Tensor2D); // [m, k−1] each
    const mean = tf.div(tf.sum(nll, 0), tf.maximum(tf.sum(valid, 0), 1)); // [k−1] over rows with a target in the draft vocabulary
    parts.push(tf.mul(mean, hardWeight) as tf.Tensor1D);
  }
  if (hardWeight < 1) {
    const flat = tf.reshape(at, [m * k1]); // [m·(k−1)]
    const teacher = tf.reshape(head.logits(tf.gather(data.hidden, flat) as tf.Tensor2D, [0]), [m * k1, head.vocabSize]); // [m·(k−1), V] offset 0 at p + j
    const restricted = data.draftIds === null ? teacher : tf.gather(teacher, data.draftIds, 1); // [m·(k−1), Vd]
    const p = tf.reshape(tf.softmax(restricted), [m, k1, vd]); // the teacher's distribution over the draft vocabulary
    parts.push(tf.mul(tf.mean(crossEntropy(logits, p), 0), 1 - hardWeight) as tf.Tensor1D); // [k−1]
  }
  if (data.topK !== null) {
    const flat = tf.reshape(at, [m * k1]); // [m·(k−1)]
    const q = topKDense(tf.gather(data.topK.columns, flat) as tf.Tensor2D, tf.gather(data.topK.probs, flat) as tf.Tensor2D, vd); // [m·(k−1), Vd], precomputed by prepareData
    parts.push(tf.mean(crossEntropy(logits, tf.reshape(q, [m, k1, vd])), 0) as tf.Tensor1D); // [k−1]
  }
  const perOffset = parts.reduce((a, b) => tf.add(a, b) as tf.Tensor1D); // [k−1]
  return { loss: tf.mean(perOffset) as tf.Scalar, perOffset };
}
