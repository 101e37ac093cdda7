/**
 * The model interface the decoders drive.
 *
 * A decoder never sees layers: it sees a causal model with a position cursor. `forward` appends
 * new tokens at the cursor and returns one *state* row per new position (the trunk's hidden
 * state for a KV-cached transformer, or something opaque for an adapter); `headLogits` turns
 * chosen state rows into the logits of chosen offsets. Splitting the two lets a decoder ask
 * offset 0 at every new position but offsets 1…k-1 only at the single position whose drafts it
 * will use, and pick that position on the device (`tf.gather`) without a readback. The optional
 * `headArgmax` (with `beginDecode`/`endDecode` around a decode) is the greedy fast path: every
 * offset at every row in one device pass, read back as a few token ids.
 *
 * Reference: Stern, Shazeer, Uszkoreit, "Blockwise Parallel Decoding for Deep Autoregressive
 * Models" (NeurIPS 2018), §3–4 (one forward both verifies the last block and proposes the next).
 */
import type * as tf from '@tensorflow/tfjs-core';

/** The `k` most likely tokens of n offsets at m state rows (see `MultiTokenModel.headTopK`). */
export interface TopKCandidates {
  /** int32 `[m, n, k]`: rank 0 is the argmax (as `headArgmax`), then decreasing probability; −1 where the logits hold NaN or ±Infinity. */
  ids: tf.Tensor3D;
  /** float32 `[m, n, k]`: the log-softmax of the offset's logits at each id. */
  logProbs: tf.Tensor3D;
}

/**
 * A candidate tree grown on the device (see `MultiTokenModel.headTree`): per state row, `G = k +
 * (depth − 1)·k²` candidates in generation order — depth 1's `k` (children of the root), then for
 * each deeper depth `k` groups of `k` siblings (the children of that depth's `k` expanded parents).
 */
export interface TreeCandidates {
  /** int32 `[m, G]`: the candidates' tokens; −1 throughout a row whose logits held NaN or ±Infinity. */
  ids: tf.Tensor2D;
  /** int32 `[m, G]`: each candidate's parent, an earlier index into the same row's list, or −1 for a child of the root. */
  parents: tf.Tensor2D;
  /** float32 `[m, G]`: the summed draft log-probabilities along the path from the root to the candidate. */
  scores: tf.Tensor2D;
}

/** A causal language model with k multi-token heads, as the decoders see it (batch size 1). */
export interface MultiTokenModel {
  /** Number of heads k (offset 0 is the ordinary next-token head; offsets 1…k-1 draft). */
  readonly numHeads: number;
  /** Size of the vocabulary V; token ids are integers in [0, V). */
  readonly vocabSize: number;
  /**
   * Most positions the model can hold at once (its context limit), or `Infinity`.
   * A model that slides a window over a longer sequence (see `fromLayersModel`) reports
   * `Infinity` here.
   */
  readonly maxLength: number;
  /** Number of positions processed so far (the cache length). */
  readonly length: number;
  /**
   * Appends `tokenIds` at position `length` (advancing it by `tokenIds.length`) and returns one
   * state row per new position, `[n, stateSize]`. The caller owns (and disposes) the result.
   * Synchronous: it only enqueues device work, it never reads data back. It cleans up its own
   * intermediates, and any state it carries between calls (a KV cache) is `tf.keep`-ed, so
   * calling it inside `tf.tidy` is safe.
   */
  forward(tokenIds: readonly number[]): tf.Tensor2D;
  /**
   * Logits of the given offsets at the given state rows: `states` `[m, stateSize]` →
   * `[m, offsets.length, vocabSize]`, in the order of `offsets`. Does not take ownership of
   * `states`; the caller owns the result.
   */
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D;
  /** Rolls the cursor (and any cache) back to `length` positions, `0 ≤ length ≤ this.length`. */
  truncate(length: number): void;
  /**
   * Optional fast path of greedy choices: for every row of `states` `[m, stateSize]`, the argmax
   * token of offsets 0…numOffsets−1, as int32 `[m, numOffsets]`, computed on the device without
   * a readback. For parallel heads column j equals `argmax(headLogits(states, [j]))`; a model with
   * sequential modules conditions column j on the same row's column j−1 token. An entry that is
   * not a token id (e.g. −1) means its logits held NaN or ±Infinity: the decoders then stop with
   * their non-finite error. Without it, the decoders take `headLogits` and argmax on the device.
   * The caller owns the result.
   */
  headArgmax?(states: tf.Tensor2D, numOffsets: number): tf.Tensor2D;
  /**
   * Optional (tree drafting, `speculativeDecode`'s `tree` option): appends a tree of tokens in one
   * forward. Token i hangs under token `parents[i]` (an earlier index) or, for −1, under the last
   * position already in the model; it sits at position `length` + its depth (0 for a child of the
   * prefix) and attends to the prefix and its own ancestors only. Returns one state row per token,
   * `[n, stateSize]`, like `forward`; the model then holds every token until `keepRows`.
   */
  forwardTree?(tokenIds: readonly number[], parents: readonly number[]): tf.Tensor2D;
  /**
   * Optional (tree drafting): of the tokens the last `forward`/`forwardTree` appended, keeps exactly
   * `rows` (increasing indices into that call's tokens, a root-to-node path of the tree) and drops
   * the others, so that `length` = the length before that call + `rows.length`.
   */
  keepRows?(rows: readonly number[]): void;
  /**
   * Optional fast path of tree drafting: the `k` most likely tokens of offsets 0…numOffsets−1 at
   * every row of `states` and their log-probabilities, `ids` int32 and `logProbs` float32, both
   * `[m, numOffsets, k]`. Rank 0 must equal `headArgmax`'s column (−1 ids where the logits hold
   * NaN or ±Infinity). Without it, tree drafting takes `headLogits` and `topk` on the device.
   * The caller owns both tensors.
   */
  headTopK?(states: tf.Tensor2D, numOffsets: number, k: number): TopKCandidates;
  /**
   * Optional (dynamic trees with draft modules whose output depends on the previous token, such as
   * sequential MTP modules): grows the next step's candidate tree on the device, the EAGLE-2 way
   * (Li et al. 2024, §4). `states` `[m, stateSize]` are the rows the tree may hang under and
   * `roots` int32 `[m]` the token each tree hangs under (the token the verifier commits after
   * that row). Level 1 is offset 1's top-`k` given the root; then, `depth − 1` times, the `k`
   * candidates of the last level with the highest cumulative log-probability are expanded, each
   * conditioned on its own token, into their own top-`k` children. See {@link TreeCandidates}
   * for the layout. Models whose drafts do not depend on earlier drafted tokens (parallel heads)
   * leave it out: the per-depth ranking of `headTopK` already is the whole story there. The
   * caller owns the result; no readback.
   */
  headTree?(states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number): TreeCandidates;
  /**
   * Optional: the draft vocabulary — the token ids offsets 1…k−1 may propose, increasing and
   * distinct — or `null`/absent for the whole vocabulary. Offset 0 (verification) always uses the
   * whole vocabulary, so a draft vocabulary never changes what is decoded, only how often drafts
   * are right and what they cost (FR-Spec, EAGLE-3's draft vocabulary).
   */
  readonly draftVocab?: readonly number[] | null;
  /**
   * Optional fast path of drafting at the accepted tip: the argmax token of offsets 1…n at every
   * row of `states` `[m, stateSize]`, int32 `[m, n]`, within {@link MultiTokenModel.draftVocab}.
   * `roots` int32 `[m]` is the token committed right after each row (the verifier's token at the
   * tip): drafts that depend on the tokens before them (sequential modules) chain from it — column
   * 1 is conditioned on the root, column j on column j − 1 — and parallel heads ignore it. A row
   * whose logits hold NaN or ±Infinity has −1 throughout. No readback; the caller owns the result.
   * Without it the decoders take `draftLogits` (or `headLogits`) and argmax on the device.
   */
  draftArgmax?(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): tf.Tensor2D;
  /**
   * Optional (tree drafting at the tip): the `k` most likely tokens of offsets 1…n at every row of
   * `states` (sequential modules: along the argmax chain from `roots`, as `draftArgmax`) and their
   * log-probabilities renormalised over the draft vocabulary, `[m, n, k]` each; rank 0 equals
   * `draftArgmax`'s column. −1 ids in a row whose logits hold NaN or ±Infinity. The caller owns both.
   */
  draftTopK?(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, k: number): TopKCandidates;
  /**
   * Optional: logits of offsets 1…n at every row of `states`, `[m, n, vocabSize]`, with
   * −1e30 at every id outside the draft vocabulary. Sequential modules condition
   * column 1 on `roots` and column j on the token `choose(j − 1, logits)` picks from column j − 1's
   * logits `[m, vocabSize]` (int32 `[m]`; default: the argmax), so a sampled chain feeds its own
   * samples forward. Without it the decoders take `headLogits(states, [1…n])`. The caller owns the result.
   */
  draftLogits?(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D;
  /**
   * Optional: the token ids that end a text for this model (llama2.c: BOS and EOS, as run.c stops
   * at them; Hugging Face: `eos_token_id`). The decoders stop at them when the caller gives no
   * `stopTokens` (`stopTokens: []` decodes past them).
   */
  readonly stopTokens?: readonly number[];
  /** Optional: called once when a decode starts, to prepare inference-only tensors (e.g. a pre-transposed unembedding). */
  beginDecode?(): void;
  /** Optional: called once when a decode ends (also after a throw or an abort), to free what `beginDecode` made. */
  endDecode?(): void;
}
