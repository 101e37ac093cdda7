/**
 * Teacher-forced acceptance of draft heads on given text, two ways:
 *
 *   - per position: at every position p, how many leading drafts (offsets 1, 2, …) equal the
 *     frozen model's own next tokens (the "chain" of tools/heads/train.ts `evaluate`);
 *   - along the decoder's steps: starting where decoding starts (the prompt's last token), a step
 *     at p accepts the leading agreeing drafts m and moves to p + m + 1, exactly as greedy
 *     speculative decoding with chain acceptance does on the model's greedy text.
 *
 * The two differ even with no train/decode mismatch: the decoder visits positions after a
 * rejection one by one and skips the inside of accepted runs, so it samples hard text more often
 * than an average over all positions does. On greedy text the step walk reproduces
 * `speculativeDecode`'s τ and acceptance per offset; the per-position average overstates them.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DraftParams, HeadData } from './train.js';

/** For each row p: how many leading offsets 1…k−1 agree with the frozen model's argmax at p + j. */
export async function leadingAgreement(params: DraftParams, data: HeadData, rows: Int32Array, batch = 2048): Promise<Uint8Array> {
  const out = new Uint8Array(rows.length);
  for (let at = 0; at < rows.length; at += batch) {
    const chunk = rows.subarray(at, Math.min(rows.length, at + batch));
    const hits = tf.tidy(() => {
      const r = tf.tensor1d(chunk, 'int32');
      const logits = params.logits(data, r); // (k−1) × [m, V] (or [m, Vd]: then the targets are draft columns)
      return tf.stack(logits.map((z, i) => tf.equal(tf.cast(tf.argMax(z, -1), 'int32'), tf.gather(data.target, tf.add(r, tf.scalar(i + 1, 'int32'))))), 1); // [m, k−1] bool
    });
    const v = await hits.data();
    hits.dispose();
    const k1 = hits.shape[1]!;
    for (let r = 0; r < chunk.length; r++) {
      let m = 0;
      while (m < k1 && v[r * k1 + m]) m++;
      out[at + r] = m;
    }
  }
  return out;
}

/** Acceptance summary of one walk or average. */
export interface AcceptanceSummary {
  /** Per offset 1…k−1: share of steps (or positions) whose offsets 1…j all agreed. */
  acceptancePerOffset: number[];
  /** 1 + Σ acceptance: tokens per forward. */
  tau: number;
  /** Steps (or positions) counted. */
  count: number;
}

function summarize(counts: number[], k1: number): AcceptanceSummary {
  const acc = Array.from({ length: k1 }, (_, j) => counts.filter((m) => m > j).length / Math.max(1, counts.length));
  return { acceptancePerOffset: acc, tau: 1 + acc.reduce((a, b) => a + b, 0), count: counts.length };
}

/** Average over all positions of {@link leadingAgreement}'s counts. */
export function perPositionAcceptance(leading: ArrayLike<number>, k1: number): AcceptanceSummary {
  return summarize(Array.from(leading), k1);
}

/**
 * Walks one sequence as the decoder does: `leading[i]` is the count at the i-th position from
 * the start (the prompt's last token), `newTokens` how many tokens the decode produced. A step
 * at i accepts min(leading[i], tokens left − 1) drafts.
 */
export function walkSteps(leading: ArrayLike<number>, newTokens: number): number[] {
  const steps: number[] = [];
  let made = 0;
  let i = 0;
  while (made < newTokens) {
    const m = Math.min(leading[i] ?? 0, newTokens - made - 1);
    steps.push(m);
    made += m + 1;
    i += m + 1;
  }
  return steps;
}

/** Summary of step walks (counts of many sequences' steps, concatenated). */
export function stepAcceptance(steps: number[], k1: number): AcceptanceSummary {
  return summarize(steps, k1);
}
