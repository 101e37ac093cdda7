/**
 * The head interface a KV-cached model drives at inference (issue #10 §1). A decode brackets its
 * steps with `prepare` / `release`; in between, `headArgmax` returns the greedy token of the first
 * n offsets at every row in one device pass (no readback), and `logits` the chosen offsets'
 * logits. `MultiTokenHead` implements it with a fused pass (see inference_fused.ts); a head of
 * sequential modules implements the same members with chained columns.
 *
 * Reference: Gloeckle et al. (2024) §2 (parallel heads over a shared unembedding); Stern et al.
 * (2018) §3–4 (one forward verifies and proposes).
 */
import type * as tf from '@tensorflow/tfjs-core';

/**
 * The top-k tokens of n offsets at m rows, as a head's tree-drafting pass returns them (the caller
 * owns both tensors). Rank 0 of offset j is exactly the `headArgmax` column j (the same argmax and
 * tie rule); ranks 1…k−1 follow in decreasing probability. A row whose logits hold NaN or ±Infinity
 * has −1 in every id.
 * @internal
 */
export interface HeadTopK {
  /** int32 `[m, n, k]`. */
  ids: tf.Tensor3D;
  /** float32 `[m, n, k]`: log-softmax of the offset's logits at each id. */
  logProbs: tf.Tensor3D;
}

/**
 * The candidate tree a head of sequential modules grows on the device (see `InferenceHead.headTree`):
 * per row, `G = k + (depth − 1)·k²` candidates in generation order. The caller owns the tensors.
 * @internal
 */
export interface HeadTree {
  /** int32 `[m, G]`: the candidates' tokens; −1 throughout a row whose logits held NaN or ±Infinity. */
  ids: tf.Tensor2D;
  /** int32 `[m, G]`: each candidate's parent, an earlier index into the same row's list, or −1 under the root. */
  parents: tf.Tensor2D;
  /** float32 `[m, G]`: the summed draft log-probabilities of the path from the root to the candidate. */
  scores: tf.Tensor2D;
}

/**
 * What `CachedTransformer` calls on its head layer. Implementations must not read data back.
 * @internal
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
   * log-probabilities, see {@link HeadTopK}. Without it, `CachedTransformer` computes the same
   * from `logits`.
   */
  headTopK?(states: tf.Tensor2D, n: number, k: number): HeadTopK;
  /**
   * Optional (sequential modules only: their children depend on the parent's token): EAGLE-2 tree
   * growth from each row of `states` `[m, D]` under its root token `roots` int32 `[m]`, `depth`
   * levels, `k` children per expanded node and `k` nodes expanded per level (see {@link HeadTree}).
   */
  headTree?(states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): HeadTree;
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
