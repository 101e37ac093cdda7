/**
 * Shifted targets for multi-token prediction: offset j at position t is trained on token
 * t+1+j; positions whose target runs past the sequence are masked with -1.
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2 (the n-token loss).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkPositiveInteger, fail, SIZE_LIMITS } from '../internal/errors.js';

/** The target id of masked positions. */
export const MASKED_TARGET = -1;

/**
 * Builds the targets of a k-offset head from token ids.
 *
 * @param tokens Token ids `[batch, seq]` (int32 or integral float32).
 * @param k Number of offsets, an integer in `[1, 64]`.
 * @returns int32 `[batch, seq, k]`: `targets[b, t, j] = tokens[b, t+1+j]`, or -1 (masked)
 *   where `t+1+j ≥ seq`.
 *
 * @example
 * multiTokenTargets(tf.tensor2d([[5, 6, 7]], [1, 3], 'int32'), 2).arraySync();
 * // [[[6, 7], [7, -1], [-1, -1]]]
 */
export function multiTokenTargets(tokens: tf.Tensor, k: number): tf.Tensor3D {
  checkPositiveInteger('multiTokenTargets', 'k', k, SIZE_LIMITS.numHeads);
  if (!(tokens instanceof tf.Tensor)) fail(TypeError, 'multiTokenTargets', 'tokens', 'must be a tf.Tensor', tokens);
  if (tokens.rank !== 2) {
    throw new RangeError(`multiTokenTargets: tokens must have rank 2 ([batch, seq]), but got rank ${tokens.rank} (shape [${tokens.shape.join(', ')}]).`);
  }
  const [batch, seq] = tokens.shape as [number, number];
  return tf.tidy(() => {
    const ids = tf.cast(tokens, 'int32'); // [b, s]
    const shifted = Array.from({ length: k }, (_, j) => {
      const kept = seq - 1 - j; // positions t with t+1+j < seq
      if (kept <= 0) return tf.fill([batch, seq], MASKED_TARGET, 'int32'); // [b, s]
      const next = tf.slice(ids, [0, 1 + j], [batch, kept]); // [b, s-1-j]
      return tf.pad(next, [[0, 0], [0, seq - kept]], MASKED_TARGET); // [b, s]
    });
    return tf.stack(shifted, 2) as tf.Tensor3D; // [b, s, k]
  });
}

/**
 * One-hot form of {@link multiTokenTargets}' output, for `model.fit`: tfjs-layers checks that
 * a target has the rank and static dimensions of the model output (`[batch, seq, k, vocab]`),
 * so id targets `[batch, seq, k]` are rejected there. Masked positions (-1) become all-zero rows,
 * which the loss treats as masked.
 *
 * @param targets int `[batch, seq, k]`, -1 where masked.
 * @param vocabSize Integer in `[1, 2²⁰]`, the number of logits per position.
 * @returns float32 `[batch, seq, k, vocabSize]`.
 */
export function oneHotMultiTokenTargets(targets: tf.Tensor, vocabSize: number): tf.Tensor4D {
  checkPositiveInteger('oneHotMultiTokenTargets', 'vocabSize', vocabSize, SIZE_LIMITS.vocabSize);
  if (targets.rank !== 3) {
    throw new RangeError(`oneHotMultiTokenTargets: targets must have rank 3 ([batch, seq, k]), but got rank ${targets.rank} (shape [${targets.shape.join(', ')}]).`);
  }
  return tf.tidy(() => {
    const ids = tf.cast(targets, 'int32'); // [b, s, k]
    const valid = tf.cast(tf.greaterEqual(ids, 0), 'float32'); // [b, s, k]
    const hot = tf.cast(tf.oneHot(tf.maximum(ids, tf.scalar(0, 'int32')), vocabSize), 'float32'); // [b, s, k, V]
    return tf.mul(hot, tf.expandDims(valid, 3)) as tf.Tensor4D; // [b, s, k, V], zero rows where masked
  });
}
