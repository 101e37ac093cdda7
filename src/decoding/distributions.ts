/**
 * Logits → token choices, on the device. `temperature`, `topK` and `topP` turn logits into a
 * distribution (the same transform for the verifier p and the drafts q, as speculative
 * sampling requires); `pick` takes the argmax or samples by inverse CDF from JS-side uniforms.
 * Everything here is synchronous tensor code meant to run inside the caller's `tf.tidy`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { topk2d, topkHandsOffToCpu } from '../internal/topk.js';

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

/** Halvings of the nucleus bisection: the floor is then found to within max(p)·2⁻³², below float32's resolution of any probability near it. */
const NUCLEUS_STEPS = 32;

/**
 * The nucleus floor of each row of `probs` `[n, V]` without sorting, `[n, 1]`: the smallest
 * probability v whose strictly larger probabilities hold less than `topP` — every token of at
 * least v is kept (the same tokens as sorting, then keeping each token whose mass before it is
 * below `topP`). Found by bisection on the threshold, all on the device: used where the backend's
 * `TopK` would read back synchronously (WebGL, under 100,000 columns). @internal
 */
export function nucleusFloor(probs: tf.Tensor2D, topP: number): tf.Tensor2D {
  const p = tf.scalar(Math.max(topP, MIN_TOP_P));
  let lo: tf.Tensor = tf.zeros([probs.shape[0], 1]); // mass strictly above lo reaches topP (or lo = 0)
  let hi: tf.Tensor = tf.max(probs, 1, true); // mass strictly above hi is below topP (nothing is above the top)
  for (let i = 0; i < NUCLEUS_STEPS; i++) {
    const mid = tf.mul(tf.add(lo, hi), 0.5); // [n, 1]
    const above = tf.cast(tf.less(tf.sum(tf.mul(probs, tf.cast(tf.greater(probs, mid), 'float32')), 1, true), p), 'float32'); // [n, 1] 1: mass above mid < topP
    hi = tf.add(tf.mul(above, mid), tf.mul(tf.sub(1, above), hi));
    lo = tf.add(tf.mul(above, lo), tf.mul(tf.sub(1, above), mid));
  }
  return tf.min(tf.add(probs, tf.mul(tf.cast(tf.lessEqual(probs, lo), 'float32'), 2)), 1, true) as tf.Tensor2D; // [n, 1] the smallest probability above lo
}

/** Rows of logits `[n, V]` → rows of probabilities `[n, V]` under temperature, top-k and top-p. */
export function toProbabilities(logits: tf.Tensor2D, s: SamplingSettings): tf.Tensor2D {
  const vocab = logits.shape[1];
  let scaled: tf.Tensor2D = tf.div(logits, tf.scalar(s.temperature > 0 ? s.temperature : 1)); // [n, V]
  if (s.topK < vocab) {
    const kth = tf.slice(topk2d(scaled, s.topK).values, [0, s.topK - 1], [-1, 1]); // [n, 1] (argMax passes where WebGL's TopK would read back)
    scaled = tf.where(tf.less(scaled, kth), tf.fill(scaled.shape, MASKED), scaled);
  }
  let probs: tf.Tensor2D = tf.softmax(scaled); // [n, V]
  if (s.topP < 1) {
    let floor: tf.Tensor; // [n, 1] smallest kept probability
    if (topkHandsOffToCpu(vocab, vocab)) {
      floor = nucleusFloor(probs, s.topP);
    } else {
      const sorted = tf.topk(probs, vocab).values; // [n, V], descending
      const before = tf.sub(tf.cumsum(sorted, 1), sorted); // mass strictly before each token
      const kept = tf.where(tf.less(before, tf.scalar(Math.max(s.topP, MIN_TOP_P))), sorted, tf.onesLike(sorted)); // 1 never lowers the min
      floor = tf.min(kept, 1, true);
    }
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
 * Whether every id read back from a model's argmax pass (`headArgmax`, `draftArgmax`) is a token
 * id in [0, `vocab`): such a pass marks a row whose logits hold NaN or ±Infinity with −1 (plain
 * JS, after the readback). Any other value is the model breaking its contract: thrown, naming
 * `fn` and `method`.
 */
export function allTokens(ids: ArrayLike<number>, vocab: number, fn: string, method: string): boolean {
  let finite = true;
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (t >= 0 && t < vocab) continue;
    if (t !== -1) throw new RangeError(`${fn}: model.${method} must return token ids in [0, ${vocab}) or −1 (non-finite logits), but returned ${t}.`);
    finite = false;
  }
  return finite;
}
