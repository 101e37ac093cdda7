/**
 * The cached training data of `trainDraftHeads`: the corpus' hidden states on the device, the
 * frozen model's own choice (offset 0's argmax) at every position, the training and held-out rows,
 * and the draft vocabulary by frequency.
 *
 * A row is a position p of a sequence with p + k − 1 inside it: offset j at p learns the frozen
 * model's choice at p + j (the argmax of offset 0 on the state at p + j). With a draft vocabulary
 * the drafts' logits are over its ids only, so a hard target is the column of the teacher's
 * argmax in it (−1 outside it: no draft from the subset can be right there).
 *
 * Reference: Zhao et al., "FR-Spec" (2025), §3 (the frequency-ranked draft vocabulary).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DraftHeadLayer } from '../../layers/draft_head.js';
import type { CorpusSequence } from './corpus.js';
import { topk2d } from '../../internal/topk.js';

/** The cached training data (the tensors are owned: {@link disposeData}). */
export interface HeadData {
  /** Final hidden states `[N, D]` of every corpus position. */
  hidden: tf.Tensor2D;
  /** Token id at every position, int32 `[N]`. */
  tokens: tf.Tensor1D;
  /** The frozen model's argmax at every position as a column of the draft logits, int32 `[N]` (−1 outside the draft vocabulary). */
  target: tf.Tensor1D;
  /** The draft vocabulary's ids, int32 `[Vd]`, or null for the whole vocabulary. */
  draftIds: tf.Tensor1D | null;
  /**
   * With a `topK` loss term: at every position the frozen model's K most likely tokens of the draft
   * vocabulary, as draft columns (int32 `[N, K]`, descending, ties by the lower column), and their
   * probabilities under its whole-vocabulary distribution (float32 `[N, K]`); else null.
   */
  topK: { columns: tf.Tensor2D; probs: tf.Tensor2D } | null;
  /** Positions usable with k offsets, of training sequences. */
  trainRows: Int32Array;
  /**
   * Held-out sequences: the rows of each, whether it is greedy text, and where the decoder's walk
   * starts in it (the index of the row before its first greedy token; 0 for other text).
   */
  heldOut: Array<{ rows: Int32Array; greedy: boolean; walkFrom: number }>;
}

/** How often each token id in [0, vocabSize) occurs in the sequences. */
export function tokenCounts(sequences: readonly CorpusSequence[], vocabSize: number): Float64Array {
  const counts = new Float64Array(vocabSize);
  for (const q of sequences) for (const t of q.ids) counts[t]! += 1;
  return counts;
}

/**
 * The `n` most frequent token ids of the sequences (ties, unseen tokens included, by the lower
 * id), increasing, and the share of the sequences' tokens they cover.
 */
export function frequentTokens(sequences: readonly CorpusSequence[], n: number, vocabSize: number): { ids: number[]; coverage: number } {
  const counts = tokenCounts(sequences, vocabSize);
  const ranked = Array.from({ length: vocabSize }, (_, t) => t).sort((a, b) => counts[b]! - counts[a]! || a - b);
  const ids = ranked.slice(0, n).sort((a, b) => a - b);
  const total = counts.reduce((a, b) => a + b, 0);
  return { ids, coverage: total === 0 ? 0 : ids.reduce((a, t) => a + counts[t]!, 0) / total };
}

/**
 * Whether each sequence is held out: with given openings, those of every round(1/share)-th
 * opening (held-out text never continues an opening the heads were trained on); otherwise every
 * round(1/share)-th sequence. When that selects nothing (a corpus smaller than one period), the
 * last sequence's opening (or the last sequence) is held out.
 */
export function heldOutMask(sequences: readonly CorpusSequence[], share: number): boolean[] {
  if (share <= 0) return sequences.map(() => false);
  const period = Math.max(2, Math.round(1 / share));
  const byOpening = sequences.every((q) => q.opening !== undefined);
  const key = (q: CorpusSequence, i: number) => (byOpening ? q.opening! : i);
  const mask = sequences.map((q, i) => key(q, i) % period === period - 1);
  if (mask.some(Boolean) || sequences.length < 2) return mask;
  // a small corpus (fewer sequences, or openings, than one period): hold out the last sequence's
  // opening (or the last sequence), so there is always held-out text to measure on
  const last = key(sequences.at(-1)!, sequences.length - 1);
  const held = sequences.map((q, i) => key(q, i) === last);
  return held.every(Boolean) ? mask : held; // one opening only: nothing can be held out without holding out all
}

/**
 * Uploads the hidden states `[N, D]` and computes the teacher (offset 0's argmax, chunk by chunk,
 * one readback each, and with `topK` > 0 its K most likely draft tokens and their probabilities,
 * once here rather than at every training step); splits the rows by {@link heldOutMask}.
 * `draftVocab`: increasing ids of the draft vocabulary, or null.
 */
export async function prepareData(head: DraftHeadLayer, sequences: readonly CorpusSequence[], hiddenFlat: Float32Array, numHeads: number, heldOutShare: number, draftVocab: readonly number[] | null, topK = 0): Promise<HeadData> {
  const n = sequences.reduce((a, q) => a + q.ids.length, 0);
  const d = hiddenFlat.length / n;
  const hidden = tf.tensor2d(hiddenFlat, [n, d]);
  try {
    const teacher = new Int32Array(n);
    const K = Math.min(topK, draftVocab?.length ?? head.vocabSize);
    const topColumns = new Int32Array(n * K);
    const topProbs = new Float32Array(n * K);
    const draftIds = draftVocab === null || K === 0 ? null : tf.tensor1d(Int32Array.from(draftVocab), 'int32');
    try {
      for (let at = 0; at < n; at += 4096) {
        const m = Math.min(4096, n - at);
        // each chunk from the host copy: a slice of the device tensor reads all of it back on wasm (quadratic in the corpus)
        const [ids, columns, probs] = tf.tidy(() => {
          const logits = tf.reshape(head.logits(tf.tensor2d(hiddenFlat.subarray(at * d, (at + m) * d), [m, d]), [0]), [m, head.vocabSize]) as tf.Tensor2D; // [m, V]
          if (K === 0) return [tf.argMax(logits, -1)]; // [m]
          const p = tf.softmax(logits); // [m, V] the teacher's distribution
          const top = topk2d((draftIds === null ? p : tf.gather(p, draftIds, 1)) as tf.Tensor2D, K); // [m, K] each, over the draft columns
          return [tf.argMax(logits, -1), top.indices, top.values];
        });
        try {
          teacher.set((await ids!.data()) as Int32Array, at);
          if (K > 0) {
            topColumns.set((await columns!.data()) as Int32Array, at * K);
            topProbs.set((await probs!.data()) as Float32Array, at * K);
          }
        } finally {
          tf.dispose([ids!, ...(columns ? [columns] : []), ...(probs ? [probs] : [])]);
        }
      }
    } finally {
      draftIds?.dispose();
    }
    const column = new Int32Array(head.vocabSize).fill(-1); // token id → draft column
    if (draftVocab === null) column.forEach((_, t) => (column[t] = t));
    else draftVocab.forEach((t, i) => (column[t] = i));
    const held = heldOutMask(sequences, heldOutShare);
    const trainRows: number[] = [];
    const heldOut: HeadData['heldOut'] = [];
    let start = 0;
    sequences.forEach((q, s) => {
      const rows: number[] = [];
      for (let p = start; p + numHeads - 1 < start + q.ids.length; p++) rows.push(p);
      if (!held[s]) trainRows.push(...rows);
      else if (rows.length > 0) heldOut.push({ rows: Int32Array.from(rows), greedy: q.greedyFrom !== undefined, walkFrom: Math.min(rows.length - 1, Math.max(0, (q.greedyFrom ?? 1) - 1)) });
      start += q.ids.length;
    });
    return {
      hidden,
      tokens: tf.tensor1d(Int32Array.from(sequences.flatMap((q) => q.ids)), 'int32'),
      target: tf.tensor1d(teacher.map((t) => column[t]!), 'int32'),
      draftIds: draftVocab === null ? null : tf.tensor1d(Int32Array.from(draftVocab), 'int32'),
      topK: K === 0 ? null : { columns: tf.tensor2d(topColumns, [n, K], 'int32'), probs: tf.tensor2d(topProbs, [n, K]) },
      trainRows: Int32Array.from(trainRows),
      heldOut,
    };
  } catch (error) {
    hidden.dispose();
    throw error;
  }
}

/** Frees the data's tensors. */
export function disposeData(data: HeadData): void {
  tf.dispose([data.hidden, data.tokens, data.target, ...(data.draftIds ? [data.draftIds] : []), ...(data.topK ? [data.topK.columns, data.topK.probs] : [])]);
}
