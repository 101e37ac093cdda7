/**
 * Training draft heads on a frozen model's cached hidden states (`npm run train:heads`). The
 * trunk ran once over the corpus (tools/heads/corpus.ts); here only the draft offsets' weights
 * change, so offset 0 — and every greedy output — stays the base model's exactly.
 *
 * Rows: a position p of a sequence with p + k − 1 inside it. Offset j at p is trained to
 * predict the frozen model's own next token at p + j: its argmax g[p + j] (hard target) and/or
 * its distribution softmax(E·h[p + j]) (soft target), with the shared unembedding E frozen.
 * Greedy acceptance keeps draft j iff it equals g[p + j] (given the earlier drafts were kept),
 * so the hard target is the acceptance test itself (Medusa-2 §2.3.2 self-distillation).
 *
 * Kinds: `mlp` (parallel heads `h + W2·act(W1·h + b1) + b2` on h[p], the library's `mlp`
 * offset head) and `sequential` (DeepSeek-V3 / Qwen3-Next MTP modules: module j reads module
 * j−1's state and the embedding of the token at p + j; see src/layers/sequential_mtp.ts).
 *
 * With a draft vocabulary (`--draftVocab`, FR-Spec's frequency-ranked subset) the drafts' logits
 * are over its ids only (the gathered columns of the frozen unembedding), as the heads decode:
 * the hard target is the teacher's argmax as a column of those logits, and a row whose target is
 * outside the subset is left out of the hard loss (no draft from the subset can be right there;
 * it still counts as a miss in the held-out agreement); the soft target is the teacher's
 * distribution restricted to the subset and renormalised.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { CorpusSequence } from './corpus.js';
import { type AcceptanceSummary, stepAcceptance, walkSteps } from './simulate.js';

/** The cached training data: hidden states, tokens, teacher argmax, and row sets. */
export interface HeadData {
  /** Final hidden states `[N, D]` of every corpus position (constant). */
  hidden: tf.Tensor2D;
  /** Token id at every position `[N]` (int32, constant). */
  tokens: tf.Tensor1D;
  /** The frozen model's argmax at every position `[N]` (int32, constant). */
  teacher: tf.Tensor1D;
  /**
   * The same as a column of the draft logits `[N]` (int32, constant): its index in the draft
   * vocabulary, −1 outside it; `teacher` itself without a draft vocabulary.
   */
  target: tf.Tensor1D;
  /** The draft vocabulary's ids, int32 `[Vd]` (the draft logits' columns), or null for the whole vocabulary. */
  draftIds: tf.Tensor1D | null;
  /** Same, on the host. */
  teacherIds: Int32Array;
  /** Positions usable with k offsets, of training sequences. */
  trainRows: Int32Array;
  /** Same, of held-out sequences, and which of those rows are in greedy sequences. */
  heldRows: Int32Array;
  heldGreedy: Uint8Array;
}

/**
 * Whether each sequence is held out. Sequences that record their opening are split by opening
 * (every round(1/share)-th opening is held out), so held-out text never continues an opening the
 * heads were trained on (greedy text from one opening is nearly the same text); otherwise the
 * last `share` of the sequences.
 */
export function heldOutMask(sequences: readonly CorpusSequence[], share: number): boolean[] {
  if (share <= 0) return sequences.map(() => false);
  if (sequences.every((q) => q.opening !== undefined)) {
    const period = Math.max(1, Math.round(1 / share));
    return sequences.map((q) => q.opening! % period === period - 1 || period === 1);
  }
  const firstHeld = Math.floor(sequences.length * (1 - share));
  return sequences.map((_, i) => i >= firstHeld);
}

/**
 * Uploads the corpus' hidden states and computes the teacher argmax with the frozen unembedding
 * `unembeddingT` `[D, V]`; the held-out sequences are {@link heldOutMask}'s. `draftVocab`
 * (increasing ids): the drafts' logits are over these columns (see {@link HeadData.target}).
 */
export function prepareData(sequences: readonly CorpusSequence[], hiddenFlat: Float32Array, d: number, unembeddingT: tf.Tensor2D, numHeads: number, heldOutShare: number, draftVocab?: readonly number[]): HeadData {
  const n = hiddenFlat.length / d;
  const hidden = tf.tensor2d(hiddenFlat, [n, d]);
  const teacherIds = new Int32Array(n);
  for (let at = 0; at < n; at += 4096) {
    const m = Math.min(4096, n - at);
    const ids = tf.tidy(() => tf.argMax(tf.matMul(tf.slice(hidden, [at, 0], [m, d]), unembeddingT), -1)); // [m]
    teacherIds.set(ids.dataSync() as Int32Array, at); // setup, not a decode loop
    ids.dispose();
  }
  const tokenIds = Int32Array.from(sequences.flatMap((q) => q.ids));
  const held = heldOutMask(sequences, heldOutShare);
  const train: number[] = [];
  const heldRows: number[] = [];
  const heldGreedy: number[] = [];
  let start = 0;
  sequences.forEach((q, s) => {
    for (let p = start; p + numHeads - 1 < start + q.ids.length; p++) {
      if (!held[s]) train.push(p);
      else {
        heldRows.push(p);
        heldGreedy.push(q.mode === 'greedy' ? 1 : 0);
      }
    }
    start += q.ids.length;
  });
  const teacher = tf.tensor1d(teacherIds, 'int32');
  let target = teacher;
  let draftIds: tf.Tensor1D | null = null;
  if (draftVocab !== undefined) {
    const column = new Int32Array(unembeddingT.shape[1]).fill(-1); // token id → draft column
    draftVocab.forEach((t, i) => (column[t] = i));
    target = tf.tensor1d(teacherIds.map((t) => column[t]!), 'int32');
    draftIds = tf.tensor1d(Int32Array.from(draftVocab), 'int32');
  }
  return {
    hidden,
    tokens: tf.tensor1d(tokenIds, 'int32'),
    teacher,
    target,
    draftIds,
    teacherIds,
    trainRows: Int32Array.from(train),
    heldRows: Int32Array.from(heldRows),
    heldGreedy: Uint8Array.from(heldGreedy),
  };
}

/** A draft-head parameter set: its variables by name and the logits of offsets 1…k−1 at rows. */
export interface DraftParams {
  /** Trainable variables by name (`offset<j>/<weight>` or `module<j>/<weight>`). */
  variables: Map<string, tf.Variable>;
  /**
   * Logits `[k − 1]` × `[m, V]` of offsets 1…k−1 at `rows` (teacher-forced: sequential modules
   * read the true tokens at rows + j).
   */
  logits(data: HeadData, rows: tf.Tensor1D): tf.Tensor2D[];
}

/** Loss settings. */
export interface LossSettings {
  /** Weight of the hard (argmax) target; 1 − this is the weight of the soft (distribution) target. */
  hardWeight: number;
}

/**
 * Per-offset teacher targets at rows + j, in the draft logits' columns: the hard target's column
 * `[m]` (−1 outside the draft vocabulary) and the teacher's distribution `[m, Vd]` (restricted to
 * the draft vocabulary and renormalised).
 */
function targets(data: HeadData, rows: tf.Tensor1D, j: number, unembeddingT: tf.Tensor2D): { hard: tf.Tensor1D; soft: () => tf.Tensor2D } {
  const at = tf.add(rows, tf.scalar(j, 'int32')) as tf.Tensor1D; // [m]
  return {
    hard: tf.gather(data.target, at) as tf.Tensor1D, // [m]
    soft: () => {
      const p = tf.softmax(tf.matMul(tf.gather(data.hidden, at) as tf.Tensor2D, unembeddingT)) as tf.Tensor2D; // [m, V]
      if (data.draftIds === null) return p;
      const kept = tf.gather(p, data.draftIds, 1); // [m, Vd]
      return tf.div(kept, tf.sum(kept, -1, true)) as tf.Tensor2D; // [m, Vd]
    },
  };
}

/** Mean over rows of `perRow` `[m]`: all rows, or (draft vocabulary) the rows whose hard target `hard` `[m]` is in it. */
function meanOverTargets(perRow: tf.Tensor1D, hard: tf.Tensor1D, restricted: boolean): tf.Scalar {
  if (!restricted) return tf.mean(perRow) as tf.Scalar;
  const valid = tf.cast(tf.greaterEqual(hard, tf.scalar(0, 'int32')), 'float32'); // [m]
  return tf.div(tf.sum(tf.mul(perRow, valid)), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
}

/** Mean loss over offsets of one batch, and (kept) the per-offset losses `[k − 1]`. */
export function batchLoss(params: DraftParams, data: HeadData, rows: tf.Tensor1D, unembeddingT: tf.Tensor2D, s: LossSettings): { loss: tf.Scalar; perOffset: tf.Tensor1D } {
  const logits = params.logits(data, rows);
  const losses = logits.map((z, i) => {
    const t = targets(data, rows, i + 1, unembeddingT);
    const logp = tf.logSoftmax(z); // [m, V]
    const parts: tf.Scalar[] = [];
    if (s.hardWeight > 0) {
      const hot = tf.oneHot(t.hard, z.shape[1]!); // [m, Vd] (a gather's gradient would need a segment sum; −1: a zero row)
      parts.push(tf.mul(tf.neg(meanOverTargets(tf.sum(tf.mul(hot, logp), -1) as tf.Tensor1D, t.hard, data.draftIds !== null)), s.hardWeight) as tf.Scalar);
    }
    if (s.hardWeight < 1) parts.push(tf.mul(tf.neg(tf.mean(tf.sum(tf.mul(t.soft(), logp), -1))), 1 - s.hardWeight) as tf.Scalar);
    return parts.length === 1 ? parts[0]! : (tf.add(parts[0]!, parts[1]!) as tf.Scalar);
  });
  const perOffset = tf.stack(losses) as tf.Tensor1D;
  return { loss: tf.mean(perOffset) as tf.Scalar, perOffset };
}

/** Held-out metrics of one evaluation. */
export interface HeldOutMetrics {
  /** Per offset 1…k−1: cross-entropy against the hard target (with a draft vocabulary: over the rows whose target is in it). */
  hardLoss: number[];
  /** Per offset: cross-entropy against the soft target minus the teacher's entropy (KL). */
  softKl: number[];
  /** Per offset: share of rows whose argmax equals the frozen model's argmax at p + j (a target outside the draft vocabulary: a miss). */
  agreement: number[];
  /** Per offset, greedy held-out rows only: share where offsets 1…j all agree (teacher-forced chain acceptance). */
  chain: number[];
  /** 1 + Σ chain: the teacher-forced per-position estimate of τ for greedy chain acceptance (an overestimate: see tools/heads/simulate.ts). */
  tauEstimate: number;
  /**
   * Greedy held-out sequences walked as the decoder steps (tools/heads/simulate.ts): per offset,
   * the share of steps accepting it, and τ. This is what speculativeDecode measures on greedy text.
   */
  steps: AcceptanceSummary;
  /** Rows evaluated. */
  rows: number;
  /** With a draft vocabulary: share of the rows' hard targets (over all offsets) inside it. */
  targetCoverage?: number;
}

/** Evaluates on (at most `maxRows` of) the held-out rows, in batches. */
export async function evaluate(params: DraftParams, data: HeadData, unembeddingT: tf.Tensor2D, maxRows: number, batch = 2048): Promise<HeldOutMetrics> {
  const rowsAll = data.heldRows.subarray(0, Math.min(maxRows, data.heldRows.length));
  let offsets = 0;
  const sums = { hard: [] as number[], kl: [] as number[], agree: [] as number[], chain: [] as number[], covered: [] as number[] };
  let greedyRows = 0;
  const leading: Array<{ row: number; m: number }> = []; // greedy rows: leading agreeing offsets
  for (let at = 0; at < rowsAll.length; at += batch) {
    const chunk = rowsAll.subarray(at, Math.min(rowsAll.length, at + batch));
    const greedyMask = data.heldGreedy.subarray(at, at + chunk.length);
    const stats = tf.tidy(() => {
      const rows = tf.tensor1d(chunk, 'int32');
      const logits = params.logits(data, rows);
      return logits.map((z, i) => {
        const t = targets(data, rows, i + 1, unembeddingT);
        const logp = tf.logSoftmax(z); // [m, V]
        const p = t.soft(); // [m, V]
        const hard = tf.neg(tf.sum(tf.mul(tf.oneHot(t.hard, z.shape[1]!), logp))); // Σ rows (wasm's batched gather is unsafe; −1: a zero row)
        const kl = tf.sum(tf.mul(p, tf.sub(tf.log(tf.add(p, 1e-20)), logp))); // Σ rows KL(p‖q)
        const covered = tf.sum(tf.cast(tf.greaterEqual(t.hard, tf.scalar(0, 'int32')), 'float32')); // rows whose target is a draft column
        const hit = tf.cast(tf.equal(tf.cast(tf.argMax(z, -1), 'int32'), t.hard), 'float32'); // [m]
        return tf.concat([tf.stack([hard, kl, covered]), hit]); // [3 + m]
      });
    });
    const values = await Promise.all(stats.map((s) => s.data()));
    stats.forEach((s) => s.dispose());
    offsets = values.length;
    const alive = new Uint8Array(chunk.length).fill(1);
    values.forEach((v, j) => {
      sums.hard[j] = (sums.hard[j] ?? 0) + v[0]!;
      sums.kl[j] = (sums.kl[j] ?? 0) + v[1]!;
      sums.covered[j] = (sums.covered[j] ?? 0) + v[2]!;
      let agree = 0;
      let chain = 0;
      for (let r = 0; r < chunk.length; r++) {
        const hit = v[3 + r]! > 0.5;
        agree += hit ? 1 : 0;
        alive[r] = alive[r]! & (hit ? 1 : 0);
        if (greedyMask[r]) chain += alive[r]!;
      }
      sums.agree[j] = (sums.agree[j] ?? 0) + agree;
      sums.chain[j] = (sums.chain[j] ?? 0) + chain;
    });
    for (let r = 0; r < chunk.length; r++) {
      greedyRows += greedyMask[r]!;
      if (greedyMask[r]) {
        let m = 0;
        while (m < values.length && values[m]![3 + r]! > 0.5) m++;
        leading.push({ row: chunk[r]!, m });
      }
    }
  }
  const steps: number[] = [];
  for (let i = 0; i < leading.length; ) {
    let end = i + 1;
    while (end < leading.length && leading[end]!.row === leading[end - 1]!.row + 1) end++; // one sequence's consecutive rows
    steps.push(...walkSteps(leading.slice(i, end).map((x) => x.m), end - i));
    i = end;
  }
  const n = rowsAll.length;
  const chain = Array.from({ length: offsets }, (_, j) => sums.chain[j]! / Math.max(1, greedyRows));
  const restricted = data.draftIds !== null;
  return {
    hardLoss: sums.hard.map((x, j) => x / Math.max(1, restricted ? sums.covered[j]! : n)),
    softKl: sums.kl.map((x) => x / n),
    agreement: sums.agree.map((x) => x / n),
    chain,
    tauEstimate: 1 + chain.reduce((a, b) => a + b, 0),
    steps: stepAcceptance(steps, offsets),
    rows: n,
    ...(restricted ? { targetCoverage: sums.covered.reduce((a, b) => a + b, 0) / Math.max(1, n * offsets) } : {}),
  };
}

/** The `mlp` kind's forward: `h + W2·swish(W1·h + b1) + b2` (the library's `mlp` offset head with its default activation). */
export function mlpState(v: Map<string, tf.Variable>, j: number, h: tf.Tensor2D): tf.Tensor2D {
  const w = (name: string) => v.get(`offset${j}/${name}`)!;
  const hidden = tf.add(tf.matMul(h, w('w1')), w('b1')); // [m, H]
  return tf.add(h, tf.add(tf.matMul(tf.mul(hidden, tf.sigmoid(hidden)), w('w2')), w('b2'))) as tf.Tensor2D; // [m, D]
}

/**
 * Parallel `mlp` draft heads, starting from `initial` (the model's offset-head weights by
 * `offset<j>/<name>`, so training starts where the layer's initializers put them), projected with
 * `unembeddingT` `[D, V]` — or, with a draft vocabulary, its columns at the draft ids `[D, Vd]`.
 */
export function mlpParams(initial: Map<string, Float32Array>, shapes: Map<string, number[]>, numHeads: number, unembeddingT: tf.Tensor2D): DraftParams {
  const variables = new Map<string, tf.Variable>();
  for (const [name, data] of initial) variables.set(name, tf.tidy(() => tf.variable(tf.tensor(data, shapes.get(name)!), true, `heads/${name}`))); // tidy frees the initial value
  return {
    variables,
    logits: (data, rows) => {
      const h = tf.gather(data.hidden, rows) as tf.Tensor2D; // [m, D]
      return Array.from({ length: numHeads - 1 }, (_, i) => tf.matMul(mlpState(variables, i + 1, h), unembeddingT) as tf.Tensor2D); // (k−1) × [m, V] (or [m, Vd])
    },
  };
}
