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
import type { LayerVariable } from '@tensorflow/tfjs-layers';
import { checkPositiveInteger, SIZE_LIMITS } from '../internal/errors.js';
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
import { checkedArgmax, FusedHeads, topKOfLogits } from './inference_fused.js';
import type { HeadTopK } from './inference_head.js';
import { setWeightNamePrefix } from './nesting.js';
import { LightweightOffsetHead } from './offset_head.js';
import { checkOffsetHead, makeReport, offsetHeadParams, type ParameterReport, resolveHeadKinds } from './parameter_report.js';
import { resolveTie, SharedUnembedding } from './shared_unembedding.js';
import { isSymbolic } from './tying.js';

const WHERE = 'MultiTokenHead';

/** Arguments of {@link MultiTokenHead}; the defaults of the optional ones are {@link LAYER_DEFAULTS}'. */
export interface MultiTokenHeadArgs extends LayerArgs {
  /** Integer in `[1, SIZE_LIMITS.numHeads]`. Number of offsets k; offset j predicts token t+1+j from the state at t. */
  numHeads: number;
  /** Integer in `[1, SIZE_LIMITS.vocabSize]`. Size of the vocabulary. */
  vocabSize: number;
  /** Kind of offsets 1…k-1: one kind for all, or an array of length k-1. */
  headKind?: OffsetHeadKind | OffsetHeadKind[];
  /** Kind of offset 0 (the default keeps next-token predictions exact; see {@link LAYER_DEFAULTS}). */
  offset0Kind?: OffsetHeadKind;
  /** Integer in `[1, hidden]`. Rank of `lowRank` heads: required when any head is `lowRank`; otherwise checked, then dropped. */
  rank?: number;
  /** Integer in `[1, SIZE_LIMITS.hiddenSize]`. Width of `mlp` heads: required when any head is `mlp`; otherwise checked, then dropped. */
  mlpHiddenSize?: number;
  /** Activation of `residual`, `lowRank` and `mlp` heads. */
  activation?: ActivationIdentifier;
  /** Whether the shared unembedding adds a `[vocabSize]` bias. */
  useBias?: boolean;
  /** Initializer of the unembedding matrix when not tied. */
  unembeddingInitializer?: InitializerIdentifier | Initializer;
  /** Tie the unembedding to an input Embedding (the layer or its name), as {@link SharedUnembeddingArgs.tiedTo}. */
  tiedTo?: Layer | string;
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
 * `logits`, `headArgmax`: the fused pass of issue #10).
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
    const useBias = resolveUseBias(WHERE, args.useBias);
    this.unembeddingInitializer = args.unembeddingInitializer === undefined ? undefined : resolveInitializer(WHERE, 'unembeddingInitializer', args.unembeddingInitializer);
    this.offsetHeads = this.headKinds.map((kind, j) => {
      const head = new LightweightOffsetHead({
        kind,
        ...(kind === 'lowRank' ? { rank: this.sizes.rank! } : {}),
        ...(kind === 'mlp' ? { mlpHiddenSize: this.sizes.mlpHiddenSize! } : {}),
        ...(this.activation !== undefined ? { activation: this.activation } : {}),
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
    this.fused = new FusedHeads(this.offsetHeads, this.unembedding);
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
   * transforms and then one matMul with the shared unembedding.
   *
   * @param hidden Trunk states `[m, D]` (or `[b, s, D]`).
   * @param offsets Offsets in `[0, numHeads)`, in the order wanted (repeats allowed).
   * @returns Logits `[m, offsets.length, V]` (or `[b, s, offsets.length, V]`).
   */
  computeLogits(hidden: tf.Tensor, offsets: readonly number[]): tf.Tensor {
    if (!this.built) {
      throw new Error(`${WHERE}.computeLogits: the layer must be built (applied once) first, but it is not built.`);
    }
    if (!Array.isArray(offsets) || offsets.length === 0) {
      throw new RangeError(`${WHERE}.computeLogits: offsets must be a non-empty array, but got ${JSON.stringify(offsets)}.`);
    }
    for (const j of offsets) {
      if (!Number.isInteger(j) || j < 0 || j >= this.numHeads) {
        throw new RangeError(`${WHERE}.computeLogits: every offset must be an integer in [0, ${this.numHeads}), but got ${j}.`);
      }
    }
    lastDim(`${WHERE}.computeLogits`, hidden.shape, [2, 3]);
    if (this.fused.prepared && hidden.rank === 2) return this.logits(hidden as tf.Tensor2D, offsets);
    return tf.tidy(() => {
      const states = offsets.map((j) => this.offsetHeads[j]!.call(hidden)); // n × [..., D]
      return this.unembedding.call(tf.stack(states, hidden.rank - 1)); // [..., n, V]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...oneShape(inputShape).slice(0, -1), this.numHeads, this.vocabSize];
  }

  /**
   * Prepares the fused inference pass (a decode calls it once at its start): the unembedding is
   * pre-transposed now, the offset kernels are stacked on first use. Counted; pair each call with
   * {@link MultiTokenHead.release}. The prepared tensors are copies of the weights at this call.
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

  /**
   * Logits of `offsets` at the rows of `states` `[m, D]` → `[m, offsets.length, V]`: the fused
   * pass when prepared, else {@link MultiTokenHead.computeLogits}. Offsets as in `computeLogits`
   * (checked there when unprepared; the decoders pass valid ones).
   * @internal
   */
  logits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    if (!this.fused.prepared) return this.computeLogits(states, offsets) as tf.Tensor3D;
    return tf.tidy(() => tf.reshape(this.fused.flatLogits(states, offsets), [states.shape[0], offsets.length, this.vocabSize]) as tf.Tensor3D);
  }

  /** Throws unless `n` is a number of leading offsets, 1…k. */
  private checkOffsetCount(method: string, n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > this.numHeads) {
      throw new RangeError(`${WHERE}.${method}: n must be an integer in [1, ${this.numHeads}], but got ${n}.`);
    }
  }

  /** Logits of offsets 0…n−1 at every row, row-major `[m·n, V]`: the fused pass when prepared. */
  private leadingOffsetLogits(states: tf.Tensor2D, n: number): tf.Tensor2D {
    const offsets = Array.from({ length: n }, (_, j) => j);
    if (this.fused.prepared) return this.fused.flatLogits(states, offsets); // [m·n, V]
    return tf.reshape(this.computeLogits(states, offsets), [states.shape[0] * n, this.vocabSize]) as tf.Tensor2D;
  }

  /**
   * The argmax token of offsets 0…n−1 at every row of `states` `[m, D]`, int32 `[m, n]` (−1
   * where that offset's logits hold NaN or ±Infinity). Prepared: one fused pass (offsets stacked,
   * one unembedding matMul, one argmax), no readback.
   * @internal
   */
  headArgmax(states: tf.Tensor2D, n: number): tf.Tensor2D {
    this.checkOffsetCount('headArgmax', n);
    return tf.tidy(() => {
      const flat = this.leadingOffsetLogits(states, n); // [m·n, V]
      return tf.reshape(checkedArgmax(flat), [states.shape[0], n]) as tf.Tensor2D; // [m, n]
    });
  }

  /**
   * The `k` most likely tokens of offsets 0…n−1 at every row of `states` `[m, D]`, with their
   * log-probabilities (`[m, n, k]` each; rank 0 is exactly {@link MultiTokenHead.headArgmax}'s
   * column, −1 ids where the logits hold NaN or ±Infinity). Prepared: the same fused pass as
   * `headArgmax`, then one `topk`. Tree drafting's one pass per step.
   * @internal
   */
  headTopK(states: tf.Tensor2D, n: number, k: number): HeadTopK {
    this.checkOffsetCount('headTopK', n);
    if (!Number.isInteger(k) || k < 1 || k > this.vocabSize) {
      throw new RangeError(`${WHERE}.headTopK: k must be an integer in [1, ${this.vocabSize}], but got ${k}.`);
    }
    return tf.tidy(() => {
      const m = states.shape[0];
      const { ids, logProbs } = topKOfLogits(this.leadingOffsetLogits(states, n), k); // [m·n, k] each
      return { ids: tf.reshape(ids, [m, n, k]) as tf.Tensor3D, logProbs: tf.reshape(logProbs, [m, n, k]) as tf.Tensor3D };
    });
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
    if (this.sizes.mlpHiddenSize !== undefined) config['mlpHiddenSize'] = this.sizes.mlpHiddenSize;
    if (this.activation !== undefined) config['activation'] = this.activation;
    if (this.unembeddingInitializer !== undefined) config['unembeddingInitializer'] = serializeInitializer(this.unembeddingInitializer);
    if (this.unembedding.isTied) config['tiedTo'] = this.unembedding.tiedLayerObject?.name ?? this.unembedding.tiedName!;
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
