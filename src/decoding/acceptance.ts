/**
 * The acceptance rules, written once. Each takes the verifier's (offset 0's) view of a block of
 * m drafts — m + 1 rows, row i predicting the token after the i-th fed token — and returns how
 * many leading drafts to keep and the token that follows them (the verifier's correction, or
 * its bonus token when every draft was kept). All on the device: no readback here.
 *
 * - greedy: keep while draft == argmax p (Stern et al. 2018, §3; Medusa's
 *   `cumprod(candidates == argmax).sum()`). Output identical to greedy decoding.
 * - sampling: keep draft x with probability min(1, p(x)/q(x)); at the first rejection sample
 *   from norm(max(0, p − q)) (Leviathan et al. 2023, Algorithm 1; Chen et al. 2023). The output
 *   is distributed exactly as sampling from p.
 * - typical: keep while p(x) > min(ε, δ·exp(−H(p))) (Cai et al. 2024, Medusa §2.3.1). Lossy.
 */
import * as tf from '@tensorflow/tfjs-core';
import { argmaxRows, sampleRows, toProbabilities, type SamplingSettings } from './distributions.js';

/** A rule's decision, as int32 scalars on the device. */
export interface Verdict {
  /** Number of leading drafts kept, in [0, m]. */
  accepted: tf.Scalar;
  /** The token after the kept drafts. */
  next: tf.Scalar;
}

/** Number of leading `true`s in a boolean vector `[m]` (m ≥ 1) → int32 scalar. */
export function leadingTrue(mask: tf.Tensor1D): tf.Scalar {
  const misses = tf.cumsum(tf.cast(tf.logicalNot(mask), 'int32')); // [m] misses so far
  return tf.sum(tf.cast(tf.equal(misses, 0), 'int32'));
}

/** Probability each row of `probs` `[m, V]` gives to its token in `ids` `[m]` → `[m]`. */
function probOf(probs: tf.Tensor2D, ids: tf.Tensor1D): tf.Tensor1D {
  return tf.sum(tf.mul(probs, tf.oneHot(ids, probs.shape[1])), 1) as tf.Tensor1D;
}

/** Row `index` (an int32 scalar) of `[n, V]` → `[1, V]`. */
function row(x: tf.Tensor2D, index: tf.Scalar): tf.Tensor2D {
  return tf.gather(x, tf.reshape(index, [1]));
}

/** Splits `[m + 1, V]` into the m rows that verify drafts and the last (bonus) row. */
function verifyRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.slice(x, [0, 0], [x.shape[0] - 1, -1]);
}

/**
 * Greedy acceptance: `targetLogits` `[m + 1, V]`, `drafts` `[m]` int32.
 * Keeps drafts while each equals the argmax; `next` is the argmax after the kept prefix.
 */
export function greedyAccept(targetLogits: tf.Tensor2D, drafts: tf.Tensor1D): Verdict {
  const best = argmaxRows(targetLogits); // [m + 1] verifier's own choice after each fed token
  const m = drafts.shape[0];
  const accepted = m === 0 ? tf.scalar(0, 'int32') : leadingTrue(tf.equal(tf.slice(best, 0, m), drafts) as tf.Tensor1D);
  const next = tf.reshape(tf.gather(best, tf.reshape(accepted, [1])), []) as tf.Scalar;
  return { accepted, next };
}

/**
 * Speculative sampling: `targetProbs` p `[m + 1, V]`, `drafts` `[m]` sampled from `draftProbs`
 * q `[m, V]`, uniforms `u` `[m + 1]` (m for the accept tests, one for the final sample).
 */
export function samplingAccept(
  targetProbs: tf.Tensor2D,
  drafts: tf.Tensor1D,
  draftProbs: tf.Tensor2D,
  u: tf.Tensor1D,
): Verdict {
  const m = drafts.shape[0];
  if (m === 0) return { accepted: tf.scalar(0, 'int32'), next: tf.reshape(sampleRows(targetProbs, u), []) as tf.Scalar };
  const p = verifyRows(targetProbs); // [m, V]
  const keep = tf.less(tf.mul(tf.slice(u, 0, m), probOf(draftProbs, drafts)), probOf(p, drafts)) as tf.Tensor1D; // u < p(x)/q(x)
  const accepted = leadingTrue(keep);
  // Residual rows norm(max(0, p − q)) for a rejection at i < m; plain p after all m were kept.
  const residual = tf.concat([tf.relu(tf.sub(p, draftProbs)), tf.slice(targetProbs, [m, 0], [1, -1])]) as tf.Tensor2D; // [m + 1, V]
  const r = row(residual, accepted); // [1, V]
  // p == q makes the residual all zero, but then rejection had probability 0: fall back to p.
  const safe = tf.where(tf.greater(tf.sum(r), 0), r, row(targetProbs, accepted)) as tf.Tensor2D;
  const next = tf.reshape(sampleRows(safe, tf.slice(u, m, 1)), []) as tf.Scalar;
  return { accepted, next };
}

/** Entropy in nats of each row of `probs` `[n, V]` → `[n]`. */
function entropy(probs: tf.Tensor2D): tf.Tensor1D {
  const logp = tf.log(tf.maximum(probs, tf.scalar(1e-30))); // [n, V]
  return tf.neg(tf.sum(tf.mul(probs, logp), 1)) as tf.Tensor1D;
}

/**
 * Typical acceptance (lossy): keeps draft x while p(x) > min(ε, δ·exp(−H(p))), with p at the
 * sampling temperature; `next` is sampled from the row after the kept prefix with uniform `u` `[1]`.
 */
export function typicalAccept(
  targetLogits: tf.Tensor2D,
  drafts: tf.Tensor1D,
  s: SamplingSettings,
  threshold: number,
  alpha: number,
  u: tf.Tensor1D,
): Verdict {
  const m = drafts.shape[0];
  const probs = toProbabilities(targetLogits, s); // [m + 1, V]
  let accepted: tf.Scalar = tf.scalar(0, 'int32');
  if (m > 0) {
    const p = verifyRows(probs); // [m, V]
    const bar = tf.minimum(tf.scalar(threshold), tf.mul(tf.scalar(alpha), tf.exp(tf.neg(entropy(p))))) as tf.Tensor1D; // [m]
    accepted = leadingTrue(tf.greater(probOf(p, drafts), bar) as tf.Tensor1D);
  }
  const next = tf.reshape(sampleRows(row(probs, accepted), u), []) as tf.Scalar;
  return { accepted, next };
}
