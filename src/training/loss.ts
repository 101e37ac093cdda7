/**
 * The multi-token loss: cross-entropy of each offset over its unmasked positions, then a
 * weighted mean over offsets, `Σ_j w_j L_j / Σ_j w_j`. Log-softmax is computed stably
 * (`tf.logSoftmax`); masked targets contribute nothing and never reach `oneHot` as -1.
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2; Cai et al., "Medusa" (2024), §2.1.1 (weighted head losses).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkGatherGradient } from './backend_check.js';
import { type OffsetWeights, resolveOffsetWeights } from './weights.js';

/** Options of {@link multiTokenLoss}. */
export interface MultiTokenLossOptions {
  /** Per-offset weights: an array of length k, or `{ decay: r }` for `r^j` (Medusa uses 0.8). Default uniform 1. */
  offsetWeights?: OffsetWeights;
  /** Optional extra mask `[batch, seq]` (1 keep, 0 drop), e.g. padding; applied to every offset. */
  mask?: tf.Tensor;
}

/** The result of {@link multiTokenLoss}. @inline */
export interface MultiTokenLossResult {
  /** The weighted mean of the per-offset losses. */
  loss: tf.Scalar;
  /** The (unweighted) mean cross-entropy of each offset, `[k]`; 0 for an offset with no unmasked position. */
  perOffset: tf.Tensor1D;
}

const WHERE = 'multiTokenLoss';

function shapeText(t: tf.Tensor): string {
  return `[${t.shape.join(', ')}]`;
}

/** Checks ranks and shapes; returns k. */
function checkShapes(targets: tf.Tensor, logits: tf.Tensor, mask: tf.Tensor | undefined): number {
  if (logits.rank !== 4) {
    throw new RangeError(`${WHERE}: logits must have rank 4 ([batch, seq, k, vocab]), but got shape ${shapeText(logits)}.`);
  }
  const lead = logits.shape.slice(0, 3).join(',');
  const ok = (targets.rank === 3 && targets.shape.join(',') === lead) || (targets.rank === 4 && targets.shape.join(',') === logits.shape.join(','));
  if (!ok) {
    throw new RangeError(
      `${WHERE}: targets must be ids [${logits.shape.slice(0, 3).join(', ')}] or one-hot ${shapeText(logits)} to match logits ${shapeText(logits)}, but got shape ${shapeText(targets)}.`,
    );
  }
  if (mask !== undefined && mask.shape.join(',') !== logits.shape.slice(0, 2).join(',')) {
    throw new RangeError(`${WHERE}: mask must have shape [${logits.shape.slice(0, 2).join(', ')}] ([batch, seq]), but got shape ${shapeText(mask)}.`);
  }
  return logits.shape[2]!;
}

/** One-hot targets `[b, s, k, V]` and the validity mask `[b, s, k]` from id or one-hot targets. */
function hotAndValid(targets: tf.Tensor, vocab: number): [tf.Tensor, tf.Tensor] {
  if (targets.rank === 4) {
    const hot = tf.cast(targets, 'float32'); // [b, s, k, V]
    return [hot, tf.cast(tf.greater(tf.sum(hot, -1), 0), 'float32')]; // [b, s, k]
  }
  const ids = tf.cast(targets, 'int32'); // [b, s, k]
  const valid = tf.cast(tf.greaterEqual(ids, 0), 'float32'); // [b, s, k]
  return [tf.cast(tf.oneHot(tf.maximum(ids, tf.scalar(0, 'int32')), vocab), 'float32'), valid]; // [b, s, k, V], [b, s, k]
}

/**
 * Mean cross-entropy over unmasked positions for each offset, then the weighted mean over
 * offsets (`Σ w_j L_j / Σ w_j`).
 *
 * @param targets int ids `[batch, seq, k]` from {@link multiTokenTargets} (-1 masked), or their
 *   one-hot form `[batch, seq, k, vocab]` from {@link oneHotMultiTokenTargets}.
 * @param logits `[batch, seq, k, vocab]`, the output of a `MultiTokenHead`.
 * @returns The total loss and the per-offset (unweighted) losses; the caller disposes both.
 *
 * @example
 * const { loss, perOffset } = multiTokenLoss(multiTokenTargets(tokens, 3), model.apply(tokens) as tf.Tensor);
 */
export function multiTokenLoss(targets: tf.Tensor, logits: tf.Tensor, options: MultiTokenLossOptions = {}): MultiTokenLossResult {
  const k = checkShapes(targets, logits, options.mask);
  const weights = resolveOffsetWeights(WHERE, options.offsetWeights, k);
  checkGatherGradient(WHERE); // inside model.fit / optimizer.minimize: fail with the fix, not deep in backprop
  return tf.tidy(() => {
    const [hot, validIds] = hotAndValid(targets, logits.shape[3]!); // [b, s, k, V], [b, s, k]
    const valid = options.mask === undefined ? validIds : tf.mul(validIds, tf.expandDims(tf.cast(options.mask, 'float32'), 2)); // [b, s, k]
    const nll = tf.neg(tf.sum(tf.mul(hot, tf.logSoftmax(logits)), -1)); // [b, s, k]
    const count = tf.maximum(tf.sum(valid, [0, 1]), 1); // [k]
    const perOffset = tf.div(tf.sum(tf.mul(nll, valid), [0, 1]), count) as tf.Tensor1D; // [k]
    const w = tf.tensor1d(weights); // [k]
    const loss = tf.div(tf.sum(tf.mul(perOffset, w)), tf.sum(w)) as tf.Scalar; // []
    return { loss, perOffset };
  });
}
