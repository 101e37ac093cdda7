/**
 * Logits → token choices, on the device. `temperature`, `topK` and `topP` turn logits into a
 * distribution (the same transform for the verifier p and the drafts q, as speculative
 * sampling requires); `pick` takes the argmax or samples by inverse CDF from JS-side uniforms.
 * Everything here is synchronous tensor code meant to run inside the caller's `tf.tidy`.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Sampling settings after resolution (see `DecodeOptions`); `temperature === 0` means argmax. */
export interface SamplingSettings {
  /** 0 (argmax), or a temperature ≥ `DECODE_DEFAULTS.greedyBelowTemperature`. */
  temperature: number;
  /** Tokens kept by top-k, in [1, V]. */
  topK: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
}

/** A logit low enough that exp() underflows to exactly 0 in float32 (finite, unlike -Infinity, on every backend). */
const MASKED = -1e30;

/**
 * The smallest nucleus mass used on the device: any `topP` at or below the top token's
 * probability keeps that token alone, and this one stays a normal float32 (unlike
 * `Number.MIN_VALUE`, which rounds to 0 and would keep nothing).
 */
const MIN_TOP_P = 1e-30;

/** Rows of logits `[n, V]` → rows of probabilities `[n, V]` under temperature, top-k and top-p. */
export function toProbabilities(logits: tf.Tensor2D, s: SamplingSettings): tf.Tensor2D {
  const vocab = logits.shape[1];
  let scaled: tf.Tensor2D = tf.div(logits, tf.scalar(s.temperature > 0 ? s.temperature : 1)); // [n, V]
  if (s.topK < vocab) {
    const kth = tf.slice(tf.topk(scaled, s.topK).values, [0, s.topK - 1], [-1, 1]); // [n, 1]
    scaled = tf.where(tf.less(scaled, kth), tf.fill(scaled.shape, MASKED), scaled);
  }
  let probs: tf.Tensor2D = tf.softmax(scaled); // [n, V]
  if (s.topP < 1) {
    const sorted = tf.topk(probs, vocab).values; // [n, V], descending
    const before = tf.sub(tf.cumsum(sorted, 1), sorted); // mass strictly before each token
    const kept = tf.where(tf.less(before, tf.scalar(Math.max(s.topP, MIN_TOP_P))), sorted, tf.onesLike(sorted)); // 1 never lowers the min
    const floor = tf.min(kept, 1, true); // [n, 1] smallest kept probability
    probs = tf.where(tf.greaterEqual(probs, floor), probs, tf.zerosLike(probs));
    probs = tf.div(probs, tf.sum(probs, 1, true));
  }
  return probs;
}

/**
 * Samples one token per row of `probs` `[n, V]` (rows need not be normalised) with the
 * uniforms `u` `[n]` in [0, 1): the first index whose cumulative mass exceeds u·total. Returns
 * `[n]` int32, always a token of positive probability — also when u·total rounds up to the
 * total in float32 (or u itself is 1), where counting alone would land on a zero-mass tail.
 */
export function sampleRows(probs: tf.Tensor2D, u: tf.Tensor1D): tf.Tensor1D {
  const cdf = tf.cumsum(probs, 1); // [n, V]
  const vocab = probs.shape[1];
  const total = tf.slice(cdf, [0, vocab - 1], [-1, 1]); // [n, 1]
  const target = tf.mul(tf.expandDims(u, 1), total); // [n, 1]
  const below = tf.sum(tf.cast(tf.lessEqual(cdf, target), 'int32'), 1); // [n] tokens skipped
  const lastPositive = tf.sum(tf.cast(tf.less(cdf, total), 'int32'), 1); // [n] index of the last token with mass
  return tf.minimum(below, lastPositive) as tf.Tensor1D;
}

/** Argmax per row of `[n, V]` → `[n]` int32. */
export function argmaxRows(logits: tf.Tensor2D): tf.Tensor1D {
  return tf.cast(tf.argMax(logits, 1), 'int32') as tf.Tensor1D;
}

/**
 * One token per row: argmax when `temperature === 0`, otherwise a sample from
 * {@link toProbabilities} with uniforms `u` (one per row).
 */
export function pickTokens(logits: tf.Tensor2D, s: SamplingSettings, u: tf.Tensor1D | null): tf.Tensor1D {
  if (s.temperature === 0 || u === null) return argmaxRows(logits);
  return sampleRows(toProbabilities(logits, s), u);
}

/**
 * 1 if every logit in `parts` is finite, else 0, as int32 `[1]` — cheap enough to ride along in
 * a step's one readback: a NaN or ±Infinity anywhere makes the sum non-finite (finite logits
 * large enough to overflow the sum, |x| ≳ 10³⁸ / V, count as broken too).
 */
export function allFinite(parts: tf.Tensor[]): tf.Tensor1D {
  const total = tf.addN(parts.map((p) => tf.sum(p))); // []
  return tf.reshape(tf.cast(tf.isFinite(total), 'int32'), [1]);
}

/**
 * Whether every id read back from a model's `headArgmax` is a token id in [0, `vocab`): the fast
 * path marks an offset whose logits hold NaN or ±Infinity with −1 (plain JS, after the readback).
 */
export function allTokens(ids: ArrayLike<number>, vocab: number): boolean {
  for (let i = 0; i < ids.length; i++) if (!(ids[i]! >= 0 && ids[i]! < vocab)) return false;
  return true;
}
