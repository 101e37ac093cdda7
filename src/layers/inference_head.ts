/**
 * The head interface a KV-cached model drives at inference (the fused head pass). A decode brackets its
 * steps with `prepare` / `release`; in between, `headArgmax` returns the greedy token of the first
 * n offsets at every row in one device pass (no readback), and `logits` the chosen offsets'
 * logits. `MultiTokenHead` implements it with a fused pass (see inference_fused.ts); a head of
 * sequential modules implements the same members with chained columns.
 *
 * Reference: Gloeckle et al. (2024) §2 (parallel heads over a shared unembedding); Stern et al.
 * (2018) §3–4 (one forward verifies and proposes).
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { TopKCandidates, TreeCandidates } from '../decoding/model.js';

/**
 * What `CachedTransformer` calls on its head layer. Implementations must not read data back.
 */
export interface InferenceHead {
  /** Number of offsets k. */
  readonly numHeads: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /**
   * For every row of `states` `[m, D]`, the argmax token of offsets 0…n−1, int32 `[m, n]`.
   * Parallel heads: column j equals argmax of `logits(states, [j])` exactly. Sequential modules:
   * column j is conditioned on the same row's column j−1 token. A row whose logits (of any of its
   * columns) hold NaN or ±Infinity has −1 in every column (the decoders turn that into their
   * non-finite error). The caller owns the result.
   */
  headArgmax(states: tf.Tensor2D, n: number): tf.Tensor2D;
  /**
   * Optional (tree drafting): the `k` most likely tokens of offsets 0…n−1 at every row and their
   * log-probabilities, see {@link TopKCandidates}. Without it, `CachedTransformer` computes the same
   * from `logits`.
   */
  headTopK?(states: tf.Tensor2D, n: number, k: number): TopKCandidates;
  /**
   * Optional (sequential modules only: their children depend on the parent's token): EAGLE-2 tree
   * growth from each row of `states` `[m, D]` under its root token `roots` int32 `[m]`, `depth`
   * levels, `k` children per expanded node and `k` nodes expanded per level (see {@link TreeCandidates}).
   */
  headTree?(states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): TreeCandidates;
  /**
   * The draft vocabulary offsets 1…k−1 propose from (increasing distinct ids), or `null` for the
   * whole vocabulary. Offset 0 always uses the whole vocabulary.
   */
  readonly draftVocab: readonly number[] | null;
  /**
   * Drafting at the tip: the argmax of offsets 1…n at every row of `states` `[m, D]`, int32
   * `[m, n]`, within the draft vocabulary (ids are full-vocabulary ids). `roots` int32 `[m]` is the
   * token committed after each row: sequential modules chain from it (module 1 fed its embedding,
   * module j fed column j − 1's token); parallel heads ignore it. A row whose draft logits hold NaN
   * or ±Infinity has −1 throughout. Computes offsets 1…n only (never offset 0) at the given rows only.
   */
  draftArgmax(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): tf.Tensor2D;
  /**
   * The `k` most likely draft tokens of offsets 1…n at every row (sequential modules: along the
   * argmax chain from `roots`, as {@link InferenceHead.draftArgmax}), ranked within the draft
   * vocabulary, with their log-probabilities renormalised over it: `[m, n, k]` each (rank 0 equals
   * `draftArgmax`'s column; −1 ids in a broken row). `k` is at most the draft vocabulary's size.
   */
  draftTopK(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, k: number): TopKCandidates;
  /**
   * Logits of offsets 1…n at every row, `[m, n, V]` over the whole vocabulary with `MASKED_LOGIT`
   * outside the draft vocabulary. Sequential modules feed module j the token `choose(j − 1, logits
   * of column j − 1)` picks (int32 `[m]`, default: argmax within the draft vocabulary), module 1 the
   * root; parallel heads call `choose` for nothing.
   */
  draftLogits(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D;
  /** Logits of `offsets` at the rows of `states` `[m, D]` → `[m, offsets.length, V]`; the caller owns the result. */
  logits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D;
  /**
   * Makes the inference-only tensors from the current weights (for example a pre-transposed
   * unembedding, stacked offset kernels). Counted: each call needs one `release`.
   */
  prepare(): void;
  /** Undoes one `prepare`; the last one frees what it made. */
  release(): void;
}

/** Whether `layer` implements {@link InferenceHead} (duck-typed, so a head from another module qualifies). @internal */
export function isInferenceHead(layer: unknown): layer is InferenceHead {
  const h = layer as Partial<Record<keyof InferenceHead, unknown>> | null;
  return (
    h !== null &&
    typeof h === 'object' &&
    typeof h.headArgmax === 'function' &&
    typeof h.logits === 'function' &&
    typeof h.prepare === 'function' &&
    typeof h.release === 'function'
  );
}
