/**
 * `SharedUnembedding`: hidden states → vocabulary logits with one `[vocab, hidden]` matrix,
 * optionally tied to an input `Embedding` (one weight, two uses). In a `MultiTokenHead` every
 * offset shares this one projection, so k offsets cost `V·D` instead of `k·V·D` parameters.
 *
 * Reference: Gloeckle et al., "Better & Faster Large Language Models via Multi-token
 * Prediction" (2024), §2 (shared unembedding); Press & Wolf (2017) for weight tying.
 */
import * as tf from '@tensorflow/tfjs-core';
import { layers, type LayerVariable, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { checkPositiveInteger, checkWeightSize, fail, SIZE_LIMITS } from '../internal/errors.js';
import { checkSameTfjs } from '../internal/instance.js';
import { registerOnce } from '../internal/registration.js';
import { lastDim, one, oneShape, type Shape } from '../internal/shape.js';
import { type Initializer, type InitializerIdentifier, type Layer, type LayerArgs, LayerBase, LAYER_DEFAULTS, resolveInitializer, resolveUseBias, serializeInitializer } from './args.js';
import { weightName } from './nesting.js';
import { findUpstreamLayer, isSymbolic, tiedMatrix } from './tying.js';

const WHERE = 'SharedUnembedding';

/** The tied layer of each unembedding tied by name, once resolved (module-private: see {@link resolveTie}). */
const resolvedTies = new WeakMap<SharedUnembedding, Layer>();

/** Arguments of {@link SharedUnembedding}; the defaults are {@link LAYER_DEFAULTS}'. */
export interface SharedUnembeddingArgs extends LayerArgs {
  /** Integer in `[1, 2²⁰]`. Size of the vocabulary: the number of logits per position. */
  vocabSize: number;
  /** Whether to add a `[vocabSize]` bias to the logits. */
  useBias?: boolean;
  /** Initializer of the `[vocabSize, hidden]` kernel when not tied (default: `LAYER_DEFAULTS.unembeddingInitializer`). */
  kernelInitializer?: InitializerIdentifier | Initializer;
  /**
   * Tie to an input Embedding: pass the `tf.layers.embedding` layer (or its name). The
   * unembedding then owns no matrix and reads the embedding's by reference: one weight, two
   * uses, saved once, gradients from both uses. A name is resolved upstream of the input when
   * the layer is applied to a symbolic tensor (this is also how a loaded model re-ties).
   */
  tiedTo?: Layer | string;
}

/**
 * Projects hidden states to vocabulary logits: `logits = x · Wᵀ (+ bias)` with `W` of shape
 * `[vocabSize, hidden]` — the layout of `Embedding.embeddings`, so the matrix can be shared.
 *
 * **Input shape** `[..., hidden]` (any rank ≥ 2).
 * **Output shape** `[..., vocabSize]`.
 *
 * @example
 * const emb = tf.layers.embedding({ inputDim: 256, outputDim: 32, name: 'tok_emb' });
 * const ids = tf.input({ shape: [null], dtype: 'int32' });
 * const h = emb.apply(ids) as tf.SymbolicTensor;                      // [batch, seq, 32]
 * const logits = sharedUnembedding({ vocabSize: 256, tiedTo: emb }).apply(h); // [batch, seq, 256]
 */
export class SharedUnembedding extends LayerBase {
  /** Name under which the class is registered for serialization (a getter, for the reason given at `LayerBase`). */
  static get className(): string {
    return 'SharedUnembedding';
  }
  /** Size of the vocabulary. */
  readonly vocabSize: number;
  /** Whether a bias is added to the logits. */
  readonly useBias: boolean;
  /** Name of the tied layer, or `null` when this layer owns its matrix. */
  readonly tiedName: string | null;
  private readonly kernelInitializer: Initializer;
  private kernel: LayerVariable | null = null;
  private bias: LayerVariable | null = null;

  constructor(args: SharedUnembeddingArgs) {
    super(args);
    registerOnce(SharedUnembedding); // lazily, so that loading this module has no side effect
    this.vocabSize = checkPositiveInteger(WHERE, 'vocabSize', args.vocabSize, SIZE_LIMITS.vocabSize);
    this.useBias = resolveUseBias(WHERE, args.useBias);
    this.kernelInitializer = resolveInitializer(WHERE, 'kernelInitializer', args.kernelInitializer ?? LAYER_DEFAULTS.unembeddingInitializer);
    const tied = args.tiedTo;
    if (tied === undefined || tied === null) {
      this.tiedName = null;
    } else if (typeof tied === 'string' && tied.length > 0) {
      this.tiedName = tied;
    } else if (tied instanceof layers.Layer) {
      this.tiedName = tied.name;
      resolvedTies.set(this, tied);
    } else {
      checkSameTfjs(WHERE, 'tiedTo', tied);
      fail(TypeError, WHERE, 'tiedTo', 'must be an Embedding layer or a non-empty layer name', tied);
    }
  }

  /** Whether the matrix is read from another layer. */
  get isTied(): boolean {
    return this.tiedName !== null;
  }

  /** The tied layer once resolved (`null` when untied or not yet resolved). */
  get tiedLayerObject(): Layer | null {
    return resolvedTies.get(this) ?? null;
  }

  override apply(inputs: Parameters<Layer['apply']>[0], kwargs?: Parameters<Layer['apply']>[1]): ReturnType<Layer['apply']> {
    if (isSymbolic(inputs, WHERE)) resolveTie(this, inputs);
    return super.apply(inputs, kwargs);
  }

  override build(inputShape: Shape | Shape[]): void {
    const hidden = this.checkBuild(WHERE, lastDim(WHERE, inputShape, [2, 3, 4, 5]));
    if (this.tiedName === null) {
      this.kernel = this.addWeight(weightName(this, 'kernel'), [this.vocabSize, hidden], 'float32', this.kernelInitializer);
    }
    if (this.useBias) {
      this.bias = this.addWeight(weightName(this, 'bias'), [this.vocabSize], 'float32', resolveInitializer(WHERE, 'bias initializer', 'zeros'));
    }
    this.built = true;
  }

  /**
   * Checks this layer can be built at hidden size `hidden` (the tied matrix is `[vocabSize,
   * hidden]`, or an own matrix has at most 2³¹ elements), allocating nothing; errors name both numbers.
   */
  private checkBuild(where: string, hidden: number): number {
    checkPositiveInteger(where, 'the input hidden size', hidden, SIZE_LIMITS.hiddenSize);
    if (this.tiedName === null) {
      checkWeightSize(where, 'the unembedding kernel', [this.vocabSize, hidden]);
      return hidden;
    }
    const [v, d] = this.matrix().shape; // throws when the tie is not resolved
    const tiedName = this.tiedLayerObject!.name;
    if (v !== this.vocabSize) {
      throw new RangeError(`${WHERE}: vocabSize must equal the tied layer '${tiedName}' inputDim, but got vocabSize ${this.vocabSize} and inputDim ${v}.`);
    }
    if (d !== hidden) {
      throw new RangeError(`${WHERE}: the input hidden size must equal the tied layer '${tiedName}' outputDim, but got hidden size ${hidden} and outputDim ${d}.`);
    }
    return hidden;
  }

  /** The `[vocabSize, hidden]` matrix in use (own or tied), as a tensor (not a copy: do not dispose). */
  matrix(): tf.Tensor2D {
    if (this.tiedName !== null) {
      const tied = this.tiedLayerObject;
      if (tied === null) {
        throw new Error(`${WHERE}: tiedTo '${this.tiedName}' is not resolved yet; apply the layer to a symbolic tensor downstream of it, or pass the layer object.`);
      }
      return tiedMatrix(WHERE, tied);
    }
    if (this.kernel === null) {
      throw new Error(`${WHERE}: the layer must be built before matrix() is called, but it is not built.`);
    }
    return this.kernel.read() as tf.Tensor2D;
  }

  /** The `[vocabSize]` bias (not a copy: do not dispose), or null without one. For the fused inference path. @internal */
  biasValue(): tf.Tensor1D | null {
    return this.bias === null ? null : (this.bias.read() as tf.Tensor1D);
  }

  /** The logits of hidden states `x` `[..., D]` → `[..., V]`. */
  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs); // [..., D]
      const w = this.matrix(); // [V, D]
      const d = x.shape[x.shape.length - 1]!;
      if (d !== w.shape[1]) {
        throw new RangeError(`${WHERE}: the input hidden size must equal the matrix's ${w.shape[1]}, but got ${d}.`);
      }
      const flat = tf.reshape(x, [-1, d]); // [m, D]
      let logits = tf.matMul(flat, w, false, true); // [m, V]
      if (this.bias !== null) logits = tf.add(logits, this.bias.read()); // [m, V]
      return tf.reshape(logits, [...x.shape.slice(0, -1), this.vocabSize]); // [..., V]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return [...oneShape(inputShape).slice(0, -1), this.vocabSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = {
      vocabSize: this.vocabSize,
      useBias: this.useBias,
      kernelInitializer: serializeInitializer(this.kernelInitializer),
    };
    if (this.tiedName !== null) config['tiedTo'] = this.tiedLayerObject?.name ?? this.tiedName;
    return { ...config, ...super.getConfig() };
  }
}

/**
 * Resolves `unembedding`'s tie by name by walking the graph upstream of symbolic `inputs`
 * (no-op when untied or already resolved). Called on symbolic `apply`, by this layer and by a
 * `MultiTokenHead` that builds it.
 */
export function resolveTie(unembedding: SharedUnembedding, inputs: SymbolicTensor | SymbolicTensor[]): void {
  if (unembedding.tiedName === null || resolvedTies.has(unembedding)) return;
  const found = findUpstreamLayer(inputs, unembedding.tiedName);
  if (found === null) {
    throw new Error(`${WHERE}: tiedTo '${unembedding.tiedName}' must name a layer upstream of the input, but no such layer was found.`);
  }
  resolvedTies.set(unembedding, found);
}

/**
 * Creates a {@link SharedUnembedding} layer.
 *
 * @example
 * const unembed = sharedUnembedding({ vocabSize: 256 }); // [..., D] → [..., 256]
 */
export function sharedUnembedding(args: SharedUnembeddingArgs): SharedUnembedding {
  return new SharedUnembedding(args);
}
