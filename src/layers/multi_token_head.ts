/**
 * `MultiTokenHead`: k offset heads over one shared unembedding. From the trunk state at
 * position t, offset j predicts token t+1+j:
 *
 *     logits_j = SharedUnembedding( LightweightOffsetHead_j( h ) ),   j = 0 … k-1
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2; Cai et al., "Medusa" (2024), §2.1.1; Stern et al., "Blockwise
 * Parallel Decoding" (2018) for using the extra offsets as drafts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TopKCandidates } from '../decoding/model.js';
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { checkDraftVocab } from '../internal/draft_vocab.js';
import { checkInteger, checkPositiveInteger, fail, SIZE_LIMITS } from '../internal/errors.js';
import { deriveSeed } from '../internal/seed.js';
import { registerOnce } from '../internal/registration.js';
import { lastDim, one, oneShape, type Shape } from '../internal/shape.js';
import {
  type ActivationIdentifier,
  type HeadSizes,
  type Initializer,
  type InitializerIdentifier,
  type Layer,
  type LayerArgs,
  LayerBase,
  makeActivation,
  type OffsetHeadKind,
  resolveHeadSizes,
  resolveInitializer,
  resolveUseBias,
  serializeInitializer,
} from './args.js';
import { breakRows, checkDraftCall, checkTopK, checkTrainingCall, UnembeddingProjection } from './draft_projection.js';
import { checkedArgmax, FusedHeads, topKOfLogits } from './inference_fused.js';
import { fusedCheckedArgmax } from '../kernels/ops.js';
import { fusedKernelsAvailable } from '../kernels/registry.js';
import type { DraftHeadSpec, DraftHeadWeight } from './draft_head.js';
import { setWeightNamePrefix } from './nesting.js';
import { headSizes, LightweightOffsetHead } from './offset_head.js';
import { checkOffsetHead, makeReport, offsetHeadParams, offsetHeadWeights, type ParameterReport, resolveHeadKinds } from './parameter_report.js';
import { resolveTie, SharedUnembedding } from './shared_unembedding.js';
import { isSymbolic } from './tying.js';

const WHERE = 'MultiTokenHead';

/** Arguments of {@link MultiTokenHead}; the defaults of the optional ones are {@link LAYER_DEFAULTS}'. */
export interface MultiTokenHeadArgs extends LayerArgs {
  /** Integer in `[1, 64]`. Number of offsets k; offset j predicts token t+1+j from the state at t. */
  numHeads: number;
  /** Integer in `[1, 2²⁰]`. Size of the vocabulary. */
  vocabSize: number;
  /** Kind of offsets 1…k-1: one kind for all, or an array of length k-1. */
  headKind?: OffsetHeadKind | OffsetHeadKind[];
  /** Kind of offset 0 (the default keeps next-token predictions exact; see {@link LAYER_DEFAULTS}). */
  offset0Kind?: OffsetHeadKind;
  /** Integer in `[1, hidden]`. Rank of `lowRank` heads: required when any head is `lowRank`; otherwise checked, then dropped. */
  rank?: number;
  /** Integer in `[1, 65536]`. Width of `mlp` heads: required when any head is `mlp`; otherwise checked, then dropped. */
  headHiddenSize?: number;
  /**
   * The old name of `headHiddenSize`. Given with it, the two must be equal.
   * @deprecated Use `headHiddenSize`; `mlpHiddenSize` is accepted until the next minor release.
   */
  mlpHiddenSize?: number;
  /** Activation of `residual`, `lowRank` and `mlp` heads. */
  activation?: ActivationIdentifier;
  /** Whether the shared unembedding adds a `[vocabSize]` bias. */
  useBias?: boolean;
  /** Initializer of the unembedding matrix when not tied. */
  unembeddingInitializer?: InitializerIdentifier | Initializer;
  /** Tie the unembedding to an input Embedding (the layer or its name), as {@link SharedUnembeddingArgs.tiedTo}. */
  tiedTo?: Layer | string;
  /**
   * Distinct token ids in `[0, vocabSize)`, 1…vocabSize of them, any order (stored increasing).
   * The draft vocabulary: at inference offsets 1…k−1 propose only these tokens (their logits are
   * the gathered rows of the shared unembedding; no parameter is added). Offset 0 and the layer's
   * `call` (training, `predict`) always use the whole vocabulary. Default: none (the whole vocabulary).
   */
  draftVocab?: readonly number[] | null;
  /** Integer. Seed of the offset heads' random initial values (each offset and weight its own stream): the same seed gives the same weights. Default: unseeded. */
  seed?: number;
}

/**
 * k lightweight offset heads and one shared vocabulary projection, as one layer with one output.
 *
 * **Input shape** `[batch, seq, hidden]`.
 * **Output shape** `[batch, seq, numHeads, vocabSize]`: `[b, t, j, :]` are the logits of token
 * t+1+j.
 *
 * A decoder that needs only some offsets at some rows calls {@link MultiTokenHead.computeLogits}.
 * `CachedTransformer` drives it through its internal inference members (`prepare`, `release`,
 * `logits`, `headArgmax`, `headTopK` and the tip passes `draftArgmax`, `draftTopK`,
 * `draftLogits`: the fused pass). With a draft vocabulary (`draftVocab`) those inference members
 * restrict offsets 1…k−1 to it; `call` and `computeLogits` (training, `predict`) never do.
 *
 * @example
 * const ids = tf.input({ shape: [null], dtype: 'int32' });
 * const emb = tf.layers.embedding({ inputDim: 256, outputDim: 32, name: 'tok_emb' });
 * const h = emb.apply(ids) as tf.SymbolicTensor;                                // [batch, seq, 32]
 * const logits = multiTokenHead({ numHeads: 4, vocabSize: 256, tiedTo: emb }).apply(h); // [batch, seq, 4, 256]
 */
export class MultiTokenHead extends LayerBase {
  /** Name under which the class is registered for serialization (a getter, for the reason given at `LayerBase`). */
  static get className(): string {
    return 'MultiTokenHead';
  }
  /** Number of offsets k. */
  readonly numHeads: number;
  /** Size of the vocabulary. */
  readonly vocabSize: number;
  /** The kinds of offsets 0…k-1. */
  readonly headKinds: readonly OffsetHeadKind[];
  /** The offset heads, offset 0 first. */
  readonly offsetHeads: LightweightOffsetHead[];
  /** The one vocabulary projection shared by every offset. */
  readonly unembedding: SharedUnembedding;
  private readonly sizes: HeadSizes;
  private readonly activation: ActivationIdentifier | undefined;
  private readonly unembeddingInitializer: Initializer | undefined;
  private readonly fused: FusedHeads;
  private readonly projection: UnembeddingProjection;
  private readonly seed: number | null;

  constructor(args: MultiTokenHeadArgs) {
    super(args);
    registerOnce(MultiTokenHead); // lazily, so that loading this module has no side effect
    // Every argument is checked (sizes against SIZE_LIMITS) before any sub-layer exists.
    this.numHeads = checkPositiveInteger(WHERE, 'numHeads', args.numHeads, SIZE_LIMITS.numHeads);
    this.vocabSize = checkPositiveInteger(WHERE, 'vocabSize', args.vocabSize, SIZE_LIMITS.vocabSize);
    this.headKinds = resolveHeadKinds(WHERE, this.numHeads, args.headKind, args.offset0Kind);
    this.sizes = resolveHeadSizes(WHERE, this.headKinds, args);
    this.activation = args.activation;
    if (this.activation !== undefined) makeActivation(WHERE, this.activation);
    this.seed = args.seed === undefined || args.seed === null ? null : checkInteger(WHERE, 'seed', args.seed, -(2 ** 31), 2 ** 31 - 1);
    const useBias = resolveUseBias(WHERE, args.useBias);
    this.unembeddingInitializer = args.unembeddingInitializer === undefined ? undefined : resolveInitializer(WHERE, 'unembeddingInitializer', args.unembeddingInitializer);
    this.offsetHeads = this.headKinds.map((kind, j) => {
      const head = new LightweightOffsetHead({
        kind,
        ...(kind === 'lowRank' ? { rank: this.sizes.rank! } : {}),
        ...(kind === 'mlp' ? { headHiddenSize: this.sizes.headHiddenSize! } : {}),
        ...(this.activation !== undefined ? { activation: this.activation } : {}),
        ...(this.seed !== null ? { seed: deriveSeed(this.seed, j) } : {}),
        name: `${this.name}_offset${j}`,
      });
      setWeightNamePrefix(head, `offset${j}/`);
      return head;
    });
    this.unembedding = new SharedUnembedding({
      vocabSize: this.vocabSize,
      useBias,
      ...(this.unembeddingInitializer !== undefined ? { kernelInitializer: this.unembeddingInitializer } : {}),
      ...(args.tiedTo !== undefined ? { tiedTo: args.tiedTo } : {}),
      name: `${this.name}_unembedding`,
    });
    setWeightNamePrefix(this.unembedding, 'unembedding/');
    this.projection = new UnembeddingProjection(this.unembedding, this.vocabSize);
    if (args.draftVocab !== undefined && args.draftVocab !== null) this.projection.setDraftVocab(checkDraftVocab(WHERE, 'draftVocab', args.draftVocab, this.vocabSize));
    this.fused = new FusedHeads(this.offsetHeads, this.projection);
  }

  /**
   * The draft vocabulary (increasing token ids) offsets 1…k−1 propose from at inference, or `null`
   * for the whole vocabulary. Change it with {@link MultiTokenHead.setDraftVocab}.
   */
  get draftVocab(): readonly number[] | null {
    return this.projection.draftVocab;
  }

  /**
   * Replaces the draft vocabulary (`ids` as {@link MultiTokenHeadArgs.draftVocab}, or `null` for the
   * whole vocabulary). Not while the head is prepared for a decode; a decode started later uses it.
   */
  setDraftVocab(ids: readonly number[] | null): void {
    const where = `${WHERE}.setDraftVocab`;
    const checked = ids === null ? null : checkDraftVocab(where, 'ids', ids, this.vocabSize);
    if (this.fused.prepared) throw new Error(`${where}: the draft vocabulary must not change while the head is prepared for a decode, but it is prepared; call it before prepare or after the last release.`);
    this.projection.setDraftVocab(checked);
  }

  override apply(inputs: Parameters<Layer['apply']>[0], kwargs?: Parameters<Layer['apply']>[1]): ReturnType<Layer['apply']> {
    if (isSymbolic(inputs)) resolveTie(this.unembedding, inputs);
    return super.apply(inputs, kwargs);
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = oneShape(inputShape);
    const hidden = lastDim(WHERE, shape, [3]);
    // Every check before any weight is created, so a throw leaves no variable behind.
    for (const kind of this.headKinds) checkOffsetHead(WHERE, kind, hidden, this.sizes);
    this.unembedding.build(shape); // checks its own (or the tied) matrix before creating any weight
    for (const head of this.offsetHeads) head.build(shape);
    this.built = true;
  }

  /**
   * Passes tfjs-layers' fast weight initialization (set when a saved model is loaded with its
   * weights) on to the sub-layers, so their initializers are not run on values about to be
   * overwritten.
   */
  override setFastWeightInitDuringBuild(value: boolean): void {
    super.setFastWeightInitDuringBuild(value);
    for (const l of this.subLayers()) l.setFastWeightInitDuringBuild(value);
  }

  // The sub-layers own the weights: expose them as this layer's (as tfjs-layers' RNN does with its cell).
  /** The sub-layers' trainable weights (offset heads, then the unembedding); empty when `trainable` is false. */
  override get trainableWeights(): LayerVariable[] {
    if (!this.trainable) return [];
    return this.subLayers().flatMap((l) => l.trainableWeights);
  }

  /** Sets this layer's own list, as tfjs-layers' `Layer` does (the getter reads the sub-layers'). */
  override set trainableWeights(weights: LayerVariable[]) {
    super.trainableWeights = weights;
  }

  /**
   * The sub-layers' non-trainable weights (offset heads, then the unembedding); all their weights
   * when `trainable` is false.
   */
  override get nonTrainableWeights(): LayerVariable[] {
    if (!this.trainable) return this.subLayers().flatMap((l) => l.weights);
    return this.subLayers().flatMap((l) => l.nonTrainableWeights);
  }

  /** Sets this layer's own list, as tfjs-layers' `Layer` does (the getter reads the sub-layers'). */
  override set nonTrainableWeights(weights: LayerVariable[]) {
    super.nonTrainableWeights = weights;
  }

  /** Whether the head's weights are updated in training. */
  override get trainable(): boolean {
    return super.trainable;
  }

  /** Sets `trainable` on this layer and on every sub-layer (offset heads and unembedding). */
  override set trainable(value: boolean) {
    super.trainable = value;
    // The constructor of Layer sets `trainable` before the sub-layers exist.
    for (const l of this.subLayers()) l.trainable = value;
  }

  private subLayers(): Layer[] {
    return this.offsetHeads === undefined ? [] : [...this.offsetHeads, this.unembedding];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs); // [b, s, D]
      lastDim(WHERE, x.shape, [3]);
      const states = this.offsetHeads.map((h) => h.call(x)); // k × [b, s, D]
      return this.unembedding.call(tf.stack(states, 2)); // [b, s, k, V]
    });
  }

  /**
   * Eager: the logits of chosen offsets at chosen rows, computing only those offsets'
   * transforms and then one matMul with the shared unembedding. Always the whole vocabulary, as
   * `call` (a draft vocabulary restricts the inference members only).
   *
   * @param hidden Trunk states `[m, D]` (or `[b, s, D]`).
   * @param offsets Offsets in `[0, numHeads)`, in the order wanted (repeats allowed).
   * @returns Logits `[m, offsets.length, V]` (or `[b, s, offsets.length, V]`).
   */
  computeLogits(hidden: tf.Tensor, offsets: readonly number[]): tf.Tensor {
    if (!this.built) {
      throw new Error(`${WHERE}.computeLogits: the layer must be built (applied once) first, but it is not built.`);
    }
    this.checkOffsets('computeLogits', offsets);
    lastDim(`${WHERE}.computeLogits`, hidden.shape, [2, 3]);
    if (this.fused.prepared && hidden.rank === 2) {
      const [m, d] = hidden.shape as [number, number];
      return tf.tidy(() => {
        const x = tf.reshape(this.fused.offsetStates(hidden as tf.Tensor2D, offsets), [m * offsets.length, d]) as tf.Tensor2D; // [m·n, D]
        return tf.reshape(this.projection.full(x), [m, offsets.length, this.vocabSize]); // [m, n, V]
      });
    }
    return tf.tidy(() => {
      const states = offsets.map((j) => this.offsetHeads[j]!.call(hidden)); // n × [..., D]
      return this.unembedding.call(tf.stack(states, hidden.rank - 1)); // [..., n, V]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...oneShape(inputShape).slice(0, -1), this.numHeads, this.vocabSize];
  }

  /**
   * Prepares the fused inference pass (a decode calls it once at its start): the unembedding and
   * the draft vocabulary's rows are pre-transposed now, the offset kernels are stacked on first
   * use. Counted; pair each call with {@link MultiTokenHead.release}. The prepared tensors are
   * copies of the weights at this call.
   * @internal
   */
  prepare(): void {
    if (!this.built) throw new Error(`${WHERE}.prepare: the layer must be built (applied once) first, but it is not built.`);
    this.fused.prepare();
  }

  /** Undoes one {@link MultiTokenHead.prepare}; the last one frees the prepared tensors. @internal */
  release(): void {
    this.fused.release();
  }

  /** Throws unless `offsets` is a non-empty array of offsets in `[0, numHeads)`. */
  private checkOffsets(method: string, offsets: readonly number[]): void {
    if (!Array.isArray(offsets) || offsets.length === 0) {
      throw new RangeError(`${WHERE}.${method}: offsets must be a non-empty array, but got ${JSON.stringify(offsets)}.`);
    }
    for (const j of offsets) {
      if (!Number.isInteger(j) || j < 0 || j >= this.numHeads) {
        throw new RangeError(`${WHERE}.${method}: every offset must be an integer in [0, ${this.numHeads}), but got ${j}.`);
      }
    }
  }

  /** States `[m, n, D]` of `offsets` at the rows of `states` `[m, D]`: the fused pass when prepared, else each offset head's `call`. */
  private offsetStates(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    if (this.fused.prepared) return this.fused.offsetStates(states, offsets);
    if (!this.built) throw new Error(`${WHERE}: the layer must be built (applied once) first, but it is not built.`);
    return tf.stack(offsets.map((j) => this.offsetHeads[j]!.call(states)), 1) as tf.Tensor3D; // [m, n, D]
  }

  /**
   * Logits of `offsets` at the rows of `states` `[m, D]` → `[m, offsets.length, V]` (offsets in any
   * order, repeats allowed): the fused pass when prepared. Offset 0 over the whole vocabulary;
   * with a draft vocabulary, offsets ≥ 1 hold `MASKED_LOGIT` outside it.
   * @internal
   */
  logits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    this.checkOffsets('logits', offsets);
    return tf.tidy(() => this.projection.offsetLogits(this.offsetStates(states, offsets), offsets));
  }

  /** Throws unless `n` is a number of leading offsets, 1…k. */
  private checkOffsetCount(method: string, n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.numHeads) {
      throw new RangeError(`${WHERE}.${method}: n must be an integer in [1, ${this.numHeads}], but got ${n}.`);
    }
  }

  /**
   * Offsets 0…n−1 at every row, projected: offset 0's whole-vocabulary logits `[m, V]` and, for
   * n ≥ 2, the draft offsets' draft-vocabulary logits, row-major `[m·(n−1), Vd]`.
   */
  private leadingLogits(states: tf.Tensor2D, n: number): { first: tf.Tensor2D; drafts: tf.Tensor2D | null } {
    const m = states.shape[0];
    const x = this.offsetStates(states, Array.from({ length: n }, (_, j) => j)); // [m, n, D]
    const d = x.shape[2];
    const first = this.projection.full(tf.reshape(tf.slice(x, [0, 0, 0], [-1, 1, -1]), [m, d]) as tf.Tensor2D); // [m, V]
    if (n === 1) return { first, drafts: null };
    return { first, drafts: this.projection.draft(tf.reshape(tf.slice(x, [0, 1, 0], [-1, n - 1, -1]), [m * (n - 1), d]) as tf.Tensor2D) }; // [m·(n−1), Vd]
  }

  /**
   * The argmax token of offsets 0…n−1 at every row of `states` `[m, D]`, int32 `[m, n]` (−1
   * where that offset's logits hold NaN or ±Infinity); offsets ≥ 1 within the draft vocabulary.
   * Prepared: one fused pass (offsets stacked, one unembedding matMul per vocabulary, one argmax
   * each), no readback.
   * @internal
   */
  headArgmax(states: tf.Tensor2D, n: number): tf.Tensor2D {
    this.checkOffsetCount('headArgmax', n);
    return tf.tidy(() => {
      const m = states.shape[0];
      if (n === 1) {
        const fused = this.fused.argmax(states, [0], 'full'); // offset 0 (the verifier) in one kernel, where it applies
        if (fused !== null) return tf.reshape(fused, [m, 1]) as tf.Tensor2D;
      }
      if (this.projection.draftVocab === null || n === 1) {
        // one vocabulary: every offset through one unembedding matMul
        const x = this.offsetStates(states, Array.from({ length: n }, (_, j) => j)); // [m, n, D]
        const flat = this.projection.full(tf.reshape(x, [m * n, x.shape[2]]) as tf.Tensor2D); // [m·n, V]
        return tf.reshape(checkedArgmax(flat), [m, n]) as tf.Tensor2D; // [m, n]
      }
      const { first, drafts } = this.leadingLogits(states, n);
      const { ids, finite } = this.projection.pick(drafts!); // [m·(n−1)] each
      const rest = tf.where(finite, ids, tf.fill(ids.shape, -1, 'int32')); // [m·(n−1)]
      return tf.concat([tf.expandDims(checkedArgmax(first), 1), tf.reshape(rest, [m, n - 1])], 1) as tf.Tensor2D; // [m, n]
    });
  }

  /**
   * The `k` most likely tokens of offsets 0…n−1 at every row of `states` `[m, D]`, with their
   * log-probabilities (`[m, n, k]` each; rank 0 is exactly {@link MultiTokenHead.headArgmax}'s
   * column, −1 ids where the logits hold NaN or ±Infinity). Offsets ≥ 1 are ranked within the
   * draft vocabulary, their log-probabilities renormalised over it (k at most its size). Prepared:
   * the same fused pass as `headArgmax`, then `topk`. Tree drafting's one pass per step.
   * @internal
   */
  headTopK(states: tf.Tensor2D, n: number, k: number): TopKCandidates {
    const where = `${WHERE}.headTopK`;
    this.checkOffsetCount('headTopK', n);
    if (!Number.isInteger(k) || k < 1 || k > this.vocabSize) {
      throw new RangeError(`${where}: k must be an integer in [1, ${this.vocabSize}], but got ${k}.`);
    }
    if (n > 1) checkTopK(where, k, this.projection.draftSize);
    return tf.tidy(() => {
      const m = states.shape[0];
      if (this.projection.draftVocab === null) {
        const x = this.offsetStates(states, Array.from({ length: n }, (_, j) => j)); // [m, n, D]
        const { ids, logProbs } = topKOfLogits(this.projection.full(tf.reshape(x, [m * n, x.shape[2]]) as tf.Tensor2D), k); // [m·n, k] each
        return { ids: tf.reshape(ids, [m, n, k]) as tf.Tensor3D, logProbs: tf.reshape(logProbs, [m, n, k]) as tf.Tensor3D };
      }
      const { first, drafts } = this.leadingLogits(states, n);
      const top = topKOfLogits(first, k); // [m, k] each
      if (drafts === null) return { ids: tf.reshape(top.ids, [m, 1, k]) as tf.Tensor3D, logProbs: tf.reshape(top.logProbs, [m, 1, k]) as tf.Tensor3D };
      const r = this.projection.rank(drafts, k); // [m·(n−1), k]
      const ids = tf.where(tf.expandDims(r.finite, 1), r.ids, tf.fill(r.ids.shape, -1, 'int32')); // [m·(n−1), k]
      return {
        ids: tf.concat([tf.reshape(top.ids, [m, 1, k]), tf.reshape(ids, [m, n - 1, k])], 1) as tf.Tensor3D, // [m, n, k]
        logProbs: tf.concat([tf.reshape(top.logProbs, [m, 1, k]), tf.reshape(r.logProbs, [m, n - 1, k])], 1) as tf.Tensor3D, // [m, n, k]
      };
    });
  }

  /** Draft-vocabulary logits of offsets 1…n at every row of `states` `[m, D]`, row-major `[m·n, Vd]` (checked by the caller). */
  private draftSubset(states: tf.Tensor2D, n: number): tf.Tensor2D {
    const x = this.offsetStates(states, Array.from({ length: n }, (_, j) => j + 1)); // [m, n, D]
    return this.projection.draft(tf.reshape(x, [states.shape[0] * n, x.shape[2]]) as tf.Tensor2D); // [m·n, Vd]
  }

  /**
   * Drafting at the tip: the argmax token of offsets 1…n at every row of `states` `[m, D]`,
   * within the draft vocabulary, int32 `[m, n]` (token ids; −1 throughout a row whose draft logits
   * hold NaN or ±Infinity). `roots` int32 `[m]` is checked and otherwise ignored: parallel heads
   * do not depend on the tokens before them. Computes offsets 1…n only, at these rows only:
   * one fused pass, one matMul with the draft matrix, one argmax, one gather.
   * @internal
   */
  draftArgmax(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): tf.Tensor2D {
    checkDraftCall(`${WHERE}.draftArgmax`, this.numHeads, states, roots, n);
    return tf.tidy(() => {
      const m = states.shape[0];
      const fused = this.fused.argmax(states, Array.from({ length: n }, (_, j) => j + 1), 'draft'); // one kernel, where it applies
      if (fused !== null) return tf.reshape(fused, [m, n]) as tf.Tensor2D;
      const sub = this.draftSubset(states, n); // [m·n, Vd]
      if (fusedKernelsAvailable()) return tf.reshape(fusedCheckedArgmax(sub, this.projection.idTable() ?? undefined, n), [m, n]) as tf.Tensor2D; // one kernel for what follows
      const { ids, finite } = this.projection.pick(sub); // [m·n] each
      return breakRows(tf.reshape(ids, [m, n]) as tf.Tensor2D, tf.reshape(finite, [m, n])); // [m, n]
    });
  }

  /**
   * The `k` most likely draft tokens of offsets 1…n at every row of `states` `[m, D]`, ranked
   * within the draft vocabulary, and their log-probabilities renormalised over it, `[m, n, k]`
   * each: rank 0 is exactly {@link MultiTokenHead.draftArgmax}'s column; −1 ids throughout a
   * broken row. `k` is at most the draft vocabulary's size. `roots` is checked and ignored.
   * @internal
   */
  draftTopK(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, k: number): TopKCandidates {
    const where = `${WHERE}.draftTopK`;
    checkDraftCall(where, this.numHeads, states, roots, n);
    checkTopK(where, k, this.projection.draftSize);
    return tf.tidy(() => {
      const m = states.shape[0];
      const fused = this.fused.topK(states, Array.from({ length: n }, (_, j) => j + 1), k); // one kernel, where it applies
      if (fused !== null) return { ids: tf.reshape(fused.ids, [m, n, k]) as tf.Tensor3D, logProbs: tf.reshape(fused.logProbs, [m, n, k]) as tf.Tensor3D };
      const r = this.projection.rank(this.draftSubset(states, n), k); // [m·n, k]
      return {
        ids: breakRows(tf.reshape(r.ids, [m, n, k]) as tf.Tensor3D, tf.reshape(r.finite, [m, n])), // [m, n, k]
        logProbs: tf.reshape(r.logProbs, [m, n, k]) as tf.Tensor3D, // [m, n, k]
      };
    });
  }

  /**
   * Logits of offsets 1…n at every row of `states` `[m, D]`, `[m, n, V]` over the whole vocabulary
   * with `MASKED_LOGIT` at every id outside the draft vocabulary (the draft-vocabulary logits
   * expanded by one gather). `roots` is checked and ignored, and `choose` is never called:
   * parallel offsets do not depend on the tokens drafted before them.
   * @internal
   */
  draftLogits(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D {
    const where = `${WHERE}.draftLogits`;
    checkDraftCall(where, this.numHeads, states, roots, n);
    if (choose !== undefined && typeof choose !== 'function') fail(TypeError, where, 'choose', 'must be a function or undefined', choose);
    return tf.tidy(() => tf.reshape(this.projection.expand(this.draftSubset(states, n)), [states.shape[0], n, this.vocabSize]) as tf.Tensor3D); // [m, n, V]
  }

  /** Kind, sizes and activation of offsets 1…k−1 (throws naming the kinds unless they share one). @internal */
  draftSpec(): DraftHeadSpec {
    const kinds = new Set(this.headKinds.slice(1));
    if (kinds.size !== 1) fail(RangeError, `${WHERE}.draftSpec`, 'headKind', 'must be one kind for offsets 1…k−1', [...kinds]);
    const first = this.offsetHeads[1]!;
    return {
      kind: first.kind,
      ...(first.headHiddenSize !== null ? { headHiddenSize: first.headHiddenSize } : {}),
      ...(first.rank !== null ? { rank: first.rank } : {}),
      activation: String(first.activation),
    };
  }

  /** The weights of offsets 1…k−1 in heads-file order (`offset<j>/<name>`; empty until built). @internal */
  draftWeights(): DraftHeadWeight[] {
    if (!this.built) return [];
    const d = this.unembedding.matrix().shape[1]!;
    return this.offsetHeads.slice(1).flatMap((h, i) =>
      offsetHeadWeights(h.kind, d, headSizes(h)).map((spec, n) => ({ name: `offset${i + 1}/${spec.name}`, shape: spec.shape, variable: h.weights[n]! })),
    );
  }

  /**
   * Teacher-forced training logits of offsets 1…k−1 (see `DraftHeadLayer.trainingLogits`):
   * `states` `[m, D]` → `[m, k−1, Vd]`, each offset head's own `call` on the live weights (never
   * the fused inference copies) projected onto the draft vocabulary. `nextTokens` int32
   * `[m, k−1]` is checked and otherwise unused: parallel offsets read only the state.
   */
  trainingLogits(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor3D {
    const where = `${WHERE}.trainingLogits`;
    checkTrainingCall(where, this.numHeads, this.built, states, nextTokens);
    return tf.tidy(() => {
      const [m, d] = states.shape;
      const x = tf.stack(this.offsetHeads.slice(1).map((h) => h.call(states) as tf.Tensor2D), 1); // [m, k−1, D]
      const logits = this.projection.draft(tf.reshape(x, [m * (this.numHeads - 1), d]) as tf.Tensor2D); // [m·(k−1), Vd]
      return tf.reshape(logits, [m, this.numHeads - 1, this.projection.draftSize]) as tf.Tensor3D; // [m, k−1, Vd]
    });
  }

  /** Parallel offsets are fed no tokens: a copy of `nextTokens` (see `DraftHeadLayer.decodeFeed`). */
  decodeFeed(states: tf.Tensor2D, nextTokens: tf.Tensor2D): tf.Tensor2D {
    checkTrainingCall(`${WHERE}.decodeFeed`, this.numHeads, this.built, states, nextTokens);
    return tf.clone(nextTokens);
  }

  /**
   * Counts this built layer's actual weights (the tied matrix, owned by the embedding, is
   * counted once as the unembedding's).
   */
  parameterReport(): ParameterReport {
    if (!this.built) {
      throw new Error(`${WHERE}.parameterReport: the layer must be built (applied once) first, but it is not built.`);
    }
    const [v, d] = this.unembedding.matrix().shape;
    const unembedding = this.unembedding.isTied ? v * d + this.unembedding.countParams() : this.unembedding.countParams();
    const heads = this.offsetHeads.map((h) => h.countParams());
    // Cross-check the closed form for the same configuration.
    heads.forEach((p, j) => {
      const expected = offsetHeadParams(this.headKinds[j]!, d, this.sizes);
      if (p !== expected) throw new Error(`${WHERE}.parameterReport: offset ${j} has ${p} parameters, but the formula gives ${expected}.`);
    });
    return makeReport(v, d, unembedding, heads, this.unembedding.useBias);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      numHeads: this.numHeads,
      vocabSize: this.vocabSize,
      headKind: this.headKinds.slice(1),
      offset0Kind: this.headKinds[0]!,
      useBias: this.unembedding.useBias,
    };
    if (this.sizes.rank !== undefined) config['rank'] = this.sizes.rank;
    if (this.sizes.headHiddenSize !== undefined) config['headHiddenSize'] = this.sizes.headHiddenSize;
    if (this.activation !== undefined) config['activation'] = this.activation;
    if (this.unembeddingInitializer !== undefined) config['unembeddingInitializer'] = serializeInitializer(this.unembeddingInitializer);
    if (this.unembedding.isTied) config['tiedTo'] = this.unembedding.tiedLayerObject?.name ?? this.unembedding.tiedName!;
    if (this.draftVocab !== null) config['draftVocab'] = [...this.draftVocab];
    if (this.seed !== null) config['seed'] = this.seed;
    return { ...config, ...super.getConfig() };
  }
}

/**
 * Creates a {@link MultiTokenHead} layer.
 *
 * @example
 * const head = multiTokenHead({ numHeads: 3, vocabSize: 256, headKind: 'lowRank', rank: 8 });
 */
export function multiTokenHead(args: MultiTokenHeadArgs): MultiTokenHead {
  return new MultiTokenHead(args);
}
