/**
 * Held-out metrics of draft heads during `trainDraftHeads`, teacher forced on held-out text: per
 * offset the loss and the agreement with the frozen model's own choice, and the τ estimate of
 * greedy chain acceptance along the decoder's steps.
 *
 * Along the steps: starting where decoding would start (the row before a sequence's first greedy
 * token), a step at row i accepts the leading agreeing drafts m and the next step is at i + m + 1,
 * exactly as `speculativeDecode` with greedy acceptance walks the model's greedy text. An average
 * over all positions would overstate τ: the decoder skips the inside of accepted runs and visits
 * the hard positions after a rejection one by one.
 *
 * Reference: Stern et al., "Blockwise Parallel Decoding" (2018), §3 (accepted prefix per step).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DraftHeadLayer } from '../../layers/draft_head.js';
import { maybeYield } from './corpus.js';
import type { HeadData } from './data.js';
import { draftLogitsAt, hardCrossEntropy } from './loss.js';

/** Held-out rows evaluated at most (whole sequences, greedy ones first): a τ estimate within a few hundredths, in a fraction of a second. */
export const MAX_EVAL_ROWS = 8192;
/** Rows per evaluation pass. */
const EVAL_BATCH = 1024;

/** Held-out metrics (written into the heads file's `training.heldOut`). */
export interface HeldOutMetrics {
  /** Held-out sequences and rows evaluated. */
  sequences: number;
  rows: number;
  /** Per offset 1…k−1: cross-entropy with the frozen model's argmax (rows whose target is in the draft vocabulary). */
  loss: number[];
  /** Per offset: share of rows whose draft equals the frozen model's choice (a target outside the draft vocabulary is a miss). */
  agreement: number[];
  /** Per offset, along the decoder's steps: share of steps that accept offsets 1…j. */
  acceptancePerOffset: number[];
  /** 1 + Σ acceptance: the estimate of greedy speculative decoding's tokens per forward on this text. */
  tau: number;
}

/**
 * Walks one sequence as the decoder does: `leading[i]` drafts agree at the i-th row from the
 * start, `newTokens` tokens are decoded. A step at i accepts min(leading[i], tokens left − 1)
 * drafts. Returns each step's accepted count.
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

/** Per offset 1…k1: the share of `steps` accepting at least j drafts, and τ = 1 + their sum. */
export function stepAcceptance(steps: readonly number[], k1: number): { acceptancePerOffset: number[]; tau: number } {
  const acceptancePerOffset = Array.from({ length: k1 }, (_, j) => steps.filter((m) => m > j).length / Math.max(1, steps.length));
  return { acceptancePerOffset, tau: 1 + acceptancePerOffset.reduce((a, b) => a + b, 0) };
}

/** The held-out sequences evaluated: the greedy ones when there are any (what greedy acceptance sees), whole, up to {@link MAX_EVAL_ROWS} rows. */
function evaluatedSequences(data: HeadData): HeadData['heldOut'] {
  const greedy = data.heldOut.filter((q) => q.greedy);
  const pool = greedy.length > 0 ? greedy : data.heldOut;
  const out: HeadData['heldOut'] = [];
  let rows = 0;
  for (const q of pool) {
    if (out.length > 0 && rows + q.rows.length > MAX_EVAL_ROWS) break;
    out.push(q);
    rows += q.rows.length;
  }
  return out;
}

/** Evaluates the head's current draft weights on the held-out data (one readback per pass), or null without held-out rows. */
export async function evaluate(head: DraftHeadLayer, data: HeadData, clock: { last: number }): Promise<HeldOutMetrics | null> {
  const sequences = evaluatedSequences(data);
  if (sequences.length === 0) return null;
  const k1 = head.numHeads - 1;
  const rows = Int32Array.from(sequences.flatMap((q) => Array.from(q.rows)));
  const leading = new Uint8Array(rows.length);
  const lossSum = new Float64Array(k1);
  const validSum = new Float64Array(k1);
  const agreeSum = new Float64Array(k1);
  for (let at = 0; at < rows.length; at += EVAL_BATCH) {
    const chunk = rows.subarray(at, Math.min(rows.length, at + EVAL_BATCH));
    const m = chunk.length;
    const packed = tf.tidy(() => {
      const { logits, at: positions } = draftLogitsAt(head, data, tf.tensor1d(chunk, 'int32')); // [m, k−1, Vd]
      const target = tf.gather(data.target, positions) as tf.Tensor as tf.Tensor2D; // [m, k−1]
      const { nll, valid } = hardCrossEntropy(logits, target); // [m, k−1] each
      const hit = tf.cast(tf.equal(tf.cast(tf.argMax(logits, -1), 'int32'), target), 'float32'); // [m, k−1] (−1 never equals)
      return tf.concat([tf.reshape(hit, [m * k1]), tf.sum(nll, 0), tf.sum(valid, 0)]); // [m·(k−1) + 2(k−1)]
    });
    const v = await packed.data();
    packed.dispose();
    for (let j = 0; j < k1; j++) {
      lossSum[j]! += v[m * k1 + j]!;
      validSum[j]! += v[m * k1 + k1 + j]!;
    }
    for (let r = 0; r < m; r++) {
      let lead = 0;
      while (lead < k1 && v[r * k1 + lead]! > 0.5) lead++;
      leading[at + r] = lead;
      for (let j = 0; j < k1; j++) agreeSum[j]! += v[r * k1 + j]!;
    }
    await maybeYield(clock);
  }
  const steps: number[] = [];
  let start = 0;
  for (const q of sequences) {
    const counts = leading.subarray(start + q.walkFrom, start + q.rows.length);
    steps.push(...walkSteps(counts, counts.length));
    start += q.rows.length;
  }
  return {
    sequences: sequences.length,
    rows: rows.length,
    loss: Array.from(lossSum, (x, j) => x / Math.max(1, validSum[j]!)),
    agreement: Array.from(agreeSum, (x) => x / rows.length),
    ...stepAcceptance(steps, k1),
  };
}
