/**
 * The shared unembedding at inference, whole and restricted to a draft vocabulary. Offset 0
 * (verification) projects onto the whole vocabulary `[D, V]`; draft offsets project onto the
 * rows of the same matrix gathered at the draft vocabulary's ids, `[D, Vd]` (no parameter of its
 * own), then map a subset index i back to its token id `draftVocab[i]`, or expand `[R, Vd]`
 * subset logits to `[R, V]` with `MASKED_LOGIT` outside the subset.
 *
 * Prepared (inside a decode), the matrices are persistent pre-transposed 2-D `[in, out]` copies
 * made from the weights of that moment — wasm's XNNPACK matMul takes that layout, not
 * `matMul(x, E, false, true)` — and the index maps are int32 tensors; without a draft vocabulary
 * the draft matrix IS the whole one (one tensor). Unprepared, the same ops run on the live
 * weights (gathered on the fly), so the values are the same up to the matMul's summation order.
 * Draft vocabulary ids are increasing, so the subset's index order is the id order: an argmax
 * within the subset breaks ties by the lowest id, as the whole vocabulary's does.
 *
 * Reference: Zhao et al., "FR-Spec" (2025), §3 (the draft LM head restricted to a frequency-ranked
 * subset); Li et al., "EAGLE-3" (2025), §3 (d2t / t2d maps).
 */
import * as tf from '@tensorflow/tfjs-core';
import { MASKED_LOGIT } from '../internal/draft_vocab.js';
import { checkInteger, fail } from '../internal/errors.js';
import { topk2d } from '../internal/topk.js';
import type { SharedUnembedding } from './shared_unembedding.js';

/**
 * Checks the arguments of a tip pass (`draftArgmax`, `draftTopK`, `draftLogits`) of a head of
 * `numHeads` offsets: `states` a 2-D tensor `[m, D]`, `roots` an int32 tensor `[m]`, `n` in
 * `[1, numHeads − 1]`. Errors name `where` and the argument.
 */
export function checkDraftCall(where: string, numHeads: number, states: tf.Tensor2D, roots: tf.Tensor1D, n: number): void {
  if (numHeads < 2) throw new RangeError(`${where}: the head must have draft offsets (numHeads at least 2), but numHeads is ${numHeads}.`);
  if (!(states instanceof tf.Tensor) || states.rank !== 2) fail(TypeError, where, 'states', 'must be a 2-D tensor [m, D]', states instanceof tf.Tensor ? states.shape : states);
  checkInteger(where, 'n', n, 1, numHeads - 1);
  const m = states.shape[0];
  if (!(roots instanceof tf.Tensor) || roots.rank !== 1 || roots.shape[0] !== m || roots.dtype !== 'int32') {
    fail(TypeError, where, 'roots', `must be an int32 tensor [${m}] (one token per row of states)`, roots instanceof tf.Tensor ? `${roots.dtype} [${roots.shape.join(', ')}]` : roots);
  }
}

/**
 * Checks the arguments of `trainingLogits` of a built head of `numHeads` offsets: `states` a 2-D
 * tensor `[m, D]`, `nextTokens` an int32 tensor `[m, numHeads − 1]`.
 */
export function checkTrainingCall(where: string, numHeads: number, built: boolean, states: tf.Tensor2D, nextTokens: tf.Tensor2D): void {
  if (!built) throw new Error(`${where}: the layer must be built (applied once) first, but it is not built.`);
  if (numHeads < 2) throw new RangeError(`${where}: the head must have draft offsets (numHeads at least 2), but numHeads is ${numHeads}.`);
  if (!(states instanceof tf.Tensor) || states.rank !== 2) fail(TypeError, where, 'states', 'must be a 2-D tensor [m, D]', states instanceof tf.Tensor ? states.shape : states);
  const m = states.shape[0];
  if (!(nextTokens instanceof tf.Tensor) || nextTokens.rank !== 2 || nextTokens.shape[0] !== m || nextTokens.shape[1] !== numHeads - 1 || nextTokens.dtype !== 'int32') {
    fail(TypeError, where, 'nextTokens', `must be an int32 tensor [${m}, ${numHeads - 1}] (the tokens at t+1…t+k−1 of each row)`, nextTokens instanceof tf.Tensor ? `${nextTokens.dtype} [${nextTokens.shape.join(', ')}]` : nextTokens);
  }
}

/** Checks `k` of a ranking within a draft vocabulary of `size` tokens. */
export function checkTopK(where: string, k: number, size: number): void {
  if (typeof k !== 'number' || !Number.isInteger(k)) fail(TypeError, where, 'k', `must be an integer in [1, ${size}] (at most the draft vocabulary's size)`, k);
  if (k < 1 || k > size) fail(RangeError, where, 'k', `must be an integer in [1, ${size}] (at most the draft vocabulary's size)`, k);
}

/** The tensors one prepare makes (kept; freed by `free`). */
interface Prepared {
  /** The whole unembedding, pre-transposed `[D, V]`. */
  full: tf.Tensor2D;
  /** Its bias `[V]`, or null. */
  fullBias: tf.Tensor1D | null;
  /** The draft vocabulary's rows, pre-transposed `[D, Vd]` (`full` itself without a draft vocabulary). */
  draft: tf.Tensor2D;
  /** Their bias `[Vd]` (`fullBias` itself without a draft vocabulary), or null. */
  draftBias: tf.Tensor1D | null;
  /** int32 `[Vd]`: subset index → token id (null without a draft vocabulary). */
  ids: tf.Tensor1D | null;
  /** int32 `[V]`: token id → subset index, `Vd` (the masked column) outside (null without a draft vocabulary). */
  expand: tf.Tensor1D | null;
}

/** A ranking within the columns of some logits: `[N, k]` column indices (rank 0 is the argmax), their log-probabilities, and whether each row is finite. */
export interface Ranked {
  /** int32 `[N, k]`, always valid indices (a broken row is reported by `finite`, not by −1). */
  ids: tf.Tensor2D;
  /** float32 `[N, k]`: log-softmax over the row at each id. */
  logProbs: tf.Tensor2D;
  /** bool `[N]`: the row's sum is finite (no NaN or ±Infinity among its logits). */
  finite: tf.Tensor1D;
}

/**
 * The `k` largest columns of each row of `logits` `[N, C]` (rank 0 exactly `argMax`'s, the decoders'
 * tie rule; ranks 1…k−1 from {@link topk2d}), their log-probabilities over the row, and the rows'
 * finiteness. Call inside `tf.tidy`.
 */
export function rankColumns(logits: tf.Tensor2D, k: number): Ranked {
  const best = tf.expandDims(tf.argMax(logits, 1), 1); // [N, 1] int32
  let ids = best as tf.Tensor2D;
  let values = tf.max(logits, 1, true) as tf.Tensor2D; // [N, 1]
  if (k > 1) {
    const top = topk2d(logits, k); // [N, k] each
    ids = tf.concat([best, tf.slice(top.indices, [0, 1], [-1, k - 1])], 1) as tf.Tensor2D; // [N, k]
    values = top.values;
  }
  const logProbs = tf.sub(values, tf.logSumExp(logits, 1, true)) as tf.Tensor2D; // [N, k]
  return { ids, logProbs, finite: tf.isFinite(tf.sum(logits, 1)) as tf.Tensor1D };
}

/** `table` `[m, …]` with −1 throughout every row whose `finite` `[m, …]` is false anywhere. Call inside `tf.tidy`. */
export function breakRows<T extends tf.Tensor>(table: T, finite: tf.Tensor): T {
  const m = table.shape[0]!;
  const ok = finite.rank === 1 ? finite : tf.all(tf.reshape(finite, [m, -1]), 1); // [m]
  const shape = [m, ...table.shape.slice(1).map(() => 1)];
  return tf.where(tf.reshape(ok, shape), table, tf.fill(table.shape, -1, 'int32')) as T;
}

/** The shared unembedding's whole and draft-vocabulary projections, prepared or live. @internal */
export class UnembeddingProjection {
  private vocab: readonly number[] | null = null;
  private hostIds: Int32Array | null = null; // [Vd]
  private hostExpand: Int32Array | null = null; // [V]
  private made: Prepared | null = null;

  constructor(
    private readonly unembedding: SharedUnembedding,
    private readonly vocabSize: number,
  ) {}

  /** The draft vocabulary (increasing ids, frozen), or null for the whole vocabulary. */
  get draftVocab(): readonly number[] | null {
    return this.vocab;
  }

  /** Vd: the draft vocabulary's size (V without one). */
  get draftSize(): number {
    return this.vocab === null ? this.vocabSize : this.vocab.length;
  }

  /** Whether the tensors of a prepare exist. */
  get isMade(): boolean {
    return this.made !== null;
  }

  /** Sets the draft vocabulary (already checked, increasing) or null; the caller makes sure nothing is prepared. */
  setDraftVocab(ids: readonly number[] | null): void {
    if (ids === null || ids.length === this.vocabSize) {
      // the whole vocabulary in order: the draft projection is the whole one
      this.vocab = ids === null ? null : Object.freeze([...ids]);
      this.hostIds = null;
      this.hostExpand = null;
      return;
    }
    this.vocab = Object.freeze([...ids]);
    this.hostIds = Int32Array.from(ids);
    this.hostExpand = new Int32Array(this.vocabSize).fill(ids.length); // outside: the masked column
    ids.forEach((t, i) => (this.hostExpand![t] = i));
  }

  /** Makes the prepared tensors from the current weights (freeing any earlier ones). */
  make(): void {
    this.free();
    tf.tidy(() => {
      const e = this.unembedding.matrix(); // [V, D]
      const bias = this.unembedding.biasValue(); // [V] or null
      const full = tf.keep(tf.transpose(e) as tf.Tensor2D); // [D, V]
      const fullBias = bias === null ? null : tf.keep(tf.clone(bias)); // [V]
      if (this.hostIds === null) {
        this.made = { full, fullBias, draft: full, draftBias: fullBias, ids: null, expand: null };
        return;
      }
      const ids = tf.keep(tf.tensor1d(this.hostIds, 'int32')); // [Vd]
      const draft = tf.keep(tf.transpose(tf.gather(e, ids)) as tf.Tensor2D); // [D, Vd]
      const draftBias = bias === null ? null : tf.keep(tf.gather(bias, ids) as tf.Tensor1D); // [Vd]
      this.made = { full, fullBias, draft, draftBias, ids, expand: tf.keep(tf.tensor1d(this.hostExpand!, 'int32')) }; // expand: [V]
    });
  }

  /** Frees the prepared tensors (a no-op when there are none). */
  free(): void {
    if (this.made === null) return;
    const m = this.made;
    this.made = null;
    const owned: tf.Tensor[] = [m.full, m.fullBias, m.draft, m.draftBias, m.ids, m.expand].filter((t): t is NonNullable<typeof t> => t !== null);
    tf.dispose([...new Set(owned)]);
  }

  /** Whole-vocabulary logits `[R, V]` of states `x` `[R, D]`. Call inside `tf.tidy`. */
  full(x: tf.Tensor2D): tf.Tensor2D {
    if (this.made !== null) return withBias(tf.matMul(x, this.made.full), this.made.fullBias); // [R, V]
    return withBias(tf.matMul(x, this.unembedding.matrix(), false, true), this.unembedding.biasValue()); // [R, V]
  }

  /** Draft-vocabulary logits `[R, Vd]` of states `x` `[R, D]` (column i is token `draftVocab[i]`). Call inside `tf.tidy`. */
  draft(x: tf.Tensor2D): tf.Tensor2D {
    if (this.made !== null) return withBias(tf.matMul(x, this.made.draft), this.made.draftBias); // [R, Vd]
    if (this.hostIds === null) return this.full(x);
    const ids = tf.tensor1d(this.hostIds, 'int32'); // [Vd]
    const bias = this.unembedding.biasValue();
    return withBias(tf.matMul(x, tf.gather(this.unembedding.matrix(), ids), false, true), bias === null ? null : (tf.gather(bias, ids) as tf.Tensor1D)); // [R, Vd]
  }

  /** The prepared whole-vocabulary matrix `[D, V]` and its bias, or null when not prepared. */
  fullWeights(): { w: tf.Tensor2D; bias: tf.Tensor1D | null } | null {
    return this.made === null ? null : { w: this.made.full, bias: this.made.fullBias };
  }

  /** The prepared draft matrix `[D, Vd]` (the whole vocabulary's without a draft vocabulary) and its bias, or null when not prepared. */
  draftWeights(): { w: tf.Tensor2D; bias: tf.Tensor1D | null } | null {
    return this.made === null ? null : { w: this.made.draft, bias: this.made.draftBias };
  }

  /** The token id of each draft-vocabulary column `[Vd]` int32, or null for the whole vocabulary. Call inside `tf.tidy`. */
  idTable(): tf.Tensor1D | null {
    if (this.hostIds === null) return null;
    return this.made?.ids ?? tf.tensor1d(this.hostIds, 'int32'); // [Vd]
  }

  /** Subset indices (int32, any shape, each in [0, Vd)) → token ids. Call inside `tf.tidy`. */
  toIds<T extends tf.Tensor>(index: T): T {
    if (this.hostIds === null) return index;
    const ids = this.made?.ids ?? tf.tensor1d(this.hostIds, 'int32'); // [Vd]
    return tf.reshape(tf.gather(ids, tf.reshape(index, [-1])), index.shape) as T;
  }

  /** Subset logits `[R, Vd]` → `[R, V]`, `MASKED_LOGIT` at every id outside the draft vocabulary (one gather). Call inside `tf.tidy`. */
  expand(sub: tf.Tensor2D): tf.Tensor2D {
    if (this.hostExpand === null) return sub;
    const map = this.made?.expand ?? tf.tensor1d(this.hostExpand, 'int32'); // [V]
    const padded = tf.concat([sub, tf.fill([sub.shape[0], 1], MASKED_LOGIT)], 1); // [R, Vd + 1]
    return tf.gather(padded, map, 1) as tf.Tensor2D; // [R, V]
  }

  /** The draft argmax of subset logits `[N, Vd]`: token ids `[N]` (always valid) and the rows' finiteness `[N]`. Call inside `tf.tidy`. */
  pick(sub: tf.Tensor2D): { ids: tf.Tensor1D; finite: tf.Tensor1D } {
    return { ids: this.toIds(tf.argMax(sub, 1) as tf.Tensor1D), finite: tf.isFinite(tf.sum(sub, 1)) as tf.Tensor1D };
  }

  /** {@link rankColumns} of subset logits `[N, Vd]`, the ids mapped to token ids. Call inside `tf.tidy`. */
  rank(sub: tf.Tensor2D, k: number): Ranked {
    const r = rankColumns(sub, k);
    return { ...r, ids: this.toIds(r.ids) };
  }

  /**
   * Logits `[m, n, V]` of offset states `x` `[m, n, D]`, where column i belongs to offset
   * `offsets[i]`: offset 0 over the whole vocabulary, every other offset over the draft
   * vocabulary, expanded with `MASKED_LOGIT`. Call inside `tf.tidy`.
   */
  offsetLogits(x: tf.Tensor3D, offsets: readonly number[]): tf.Tensor3D {
    const [m, n, d] = x.shape;
    const V = this.vocabSize;
    const zero = offsets.flatMap((j, i) => (j === 0 ? [i] : []));
    if (this.hostIds === null || zero.length === n) return tf.reshape(this.full(tf.reshape(x, [m * n, d]) as tf.Tensor2D), [m, n, V]) as tf.Tensor3D;
    const rest = offsets.flatMap((j, i) => (j === 0 ? [] : [i]));
    const part = (cols: number[], project: (y: tf.Tensor2D) => tf.Tensor2D) =>
      tf.reshape(project(tf.reshape(columns(x, cols), [m * cols.length, d]) as tf.Tensor2D), [m, cols.length, V]); // [m, c, V]
    const drafts = part(rest, (y) => this.expand(this.draft(y))); // [m, n − n0, V]
    if (zero.length === 0) return drafts as tf.Tensor3D;
    const both = tf.concat([part(zero, (y) => this.full(y)), drafts], 1); // [m, n, V], offset-0 columns first
    const order = [...zero, ...rest];
    const back = offsets.map((_, i) => order.indexOf(i)); // where column i went
    return (back.every((b, i) => b === i) ? both : tf.gather(both, tf.tensor1d(back, 'int32'), 1)) as tf.Tensor3D;
  }
}

/** `y (+ b)`. */
function withBias(y: tf.Tensor, b: tf.Tensor1D | null): tf.Tensor2D {
  return (b === null ? y : tf.add(y, b)) as tf.Tensor2D;
}

/** Columns `cols` (increasing) of `x` `[m, n, D]`: a slice when contiguous, else a gather. */
function columns(x: tf.Tensor3D, cols: number[]): tf.Tensor3D {
  if (cols.length === x.shape[1]) return x;
  const contiguous = cols.every((c, i) => c === cols[0]! + i);
  return (contiguous ? tf.slice(x, [0, cols[0]!, 0], [-1, cols.length, -1]) : tf.gather(x, tf.tensor1d(cols, 'int32'), 1)) as tf.Tensor3D;
}
