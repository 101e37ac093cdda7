/**
 * `LightweightOffsetHead`: the small hidden → hidden transform that turns the trunk state at
 * position t into the state from which offset j predicts token t+1+j. It is the only part of a
 * multi-token head that each offset owns; the vocabulary projection is shared.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.1.1 (ResBlock heads `x + SiLU(W·x + b)`,
 * zero-initialised); Hu et al., "LoRA" (2021) for the low-rank form.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable } from '@tensorflow/tfjs-layers';
import { checkPositiveInteger } from '../internal/errors.js';
import { registerOnce } from '../internal/registration.js';
import { type Shape, lastDim, one } from '../internal/shape.js';
import { type ActivationIdentifier, checkKind, type Layer, type LayerArgs, makeActivation, type OffsetHeadKind, resolveInitializer } from './args.js';

const WHERE = 'LightweightOffsetHead';
/** SiLU, as Medusa's ResBlock. */
export const DEFAULT_OFFSET_ACTIVATION: ActivationIdentifier = 'swish';

/** Arguments of {@link LightweightOffsetHead}. */
export interface LightweightOffsetHeadArgs extends LayerArgs {
  /** Which transform; see {@link OffsetHeadKind}. */
  kind: OffsetHeadKind;
  /** Integer in `[1, hidden]`. Rank `r` of the `lowRank` kind (required for it, ignored otherwise). */
  rank?: number;
  /** Activation of the `residual` and `lowRank` kinds. Default `'swish'` (SiLU, as Medusa). */
  activation?: ActivationIdentifier;
}

/**
 * One offset's hidden → hidden transform. Every kind except `linear`'s identity-initialised
 * kernel starts as the identity function, so a freshly attached head predicts what offset 0
 * predicts until it is trained.
 *
 * | kind | output | parameters |
 * | --- | --- | --- |
 * | `identity` | `x` | 0 |
 * | `linear` | `x·W + b`, `W = I` initially | `D·D + D` |
 * | `residual` | `x + act(x·W + b)`, `W = 0, b = 0` initially | `D·D + D` |
 * | `lowRank` | `x + act(x·A)·B`, `A` random, `B = 0` initially | `2·D·r` |
 *
 * **Input shape** `[..., hidden]` (any rank ≥ 2).
 * **Output shape** the same.
 *
 * @example
 * const head = lightweightOffsetHead({ kind: 'lowRank', rank: 4 });
 * const y = head.apply(tf.ones([2, 5, 16])) as tf.Tensor; // [2, 5, 16], equal to the input until trained
 */
export class LightweightOffsetHead extends layers.Layer {
  /** Name under which the class is registered for serialization. */
  static className = 'LightweightOffsetHead';
  /** The transform's kind. */
  readonly kind: OffsetHeadKind;
  /** Rank of the `lowRank` kind (`null` for the other kinds). */
  readonly rank: number | null;
  /** Activation name of the `residual` and `lowRank` kinds. */
  readonly activation: ActivationIdentifier;
  /** Prefix of this layer's weight names; set by a parent layer that builds it. @internal */
  weightNamePrefix = '';
  private readonly act: Layer;
  private kernel: LayerVariable | null = null; // [D, D] (linear, residual) or A [D, r] (lowRank)
  private bias: LayerVariable | null = null; // [D] (linear, residual)
  private up: LayerVariable | null = null; // B [r, D] (lowRank)

  constructor(args: LightweightOffsetHeadArgs) {
    super(args);
    registerOnce(LightweightOffsetHead); // lazily, so that loading this module has no side effect
    this.kind = checkKind(WHERE, 'kind', args.kind);
    this.rank = this.kind === 'lowRank' ? checkPositiveInteger(WHERE, 'rank', args.rank) : null;
    this.activation = args.activation ?? DEFAULT_OFFSET_ACTIVATION;
    this.act = makeActivation(WHERE, this.activation);
  }

  override build(inputShape: Shape | Shape[]): void {
    const d = lastDim(WHERE, inputShape, [2, 3, 4, 5]);
    const p = this.weightNamePrefix;
    const zeros = resolveInitializer(WHERE, 'zeros');
    if (this.kind === 'linear') {
      this.kernel = this.addWeight(`${p}kernel`, [d, d], 'float32', initializers.identity({ gain: 1 }));
      this.bias = this.addWeight(`${p}bias`, [d], 'float32', zeros);
    } else if (this.kind === 'residual') {
      this.kernel = this.addWeight(`${p}kernel`, [d, d], 'float32', zeros);
      this.bias = this.addWeight(`${p}bias`, [d], 'float32', zeros);
    } else if (this.kind === 'lowRank') {
      if (this.rank! > d) {
        throw new RangeError(`${WHERE}: rank must be at most the hidden size ${d}, but got ${this.rank}.`);
      }
      // A random and B zero (LoRA): the head starts as the identity and both factors get gradients.
      this.kernel = this.addWeight(`${p}down`, [d, this.rank!], 'float32', resolveInitializer(WHERE, 'glorotUniform'));
      this.up = this.addWeight(`${p}up`, [this.rank!, d], 'float32', zeros);
    }
    this.built = true;
  }

  /** The transform of `x` `[..., D]` → `[..., D]`; eager, no shape bookkeeping. @internal */
  transform(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      if (this.kind === 'identity') return tf.clone(x); // [..., D]
      const d = x.shape[x.shape.length - 1]!;
      const flat = tf.reshape(x, [-1, d]); // [m, D]
      let y: tf.Tensor;
      if (this.kind === 'lowRank') {
        const z = this.act.apply(tf.matMul(flat, this.kernel!.read())) as tf.Tensor; // [m, r]
        y = tf.add(flat, tf.matMul(z, this.up!.read())); // [m, D]
      } else {
        const affine = tf.add(tf.matMul(flat, this.kernel!.read()), this.bias!.read()); // [m, D]
        y = this.kind === 'linear' ? affine : tf.add(flat, this.act.apply(affine) as tf.Tensor); // [m, D]
      }
      return tf.reshape(y, x.shape); // [..., D]
    });
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.transform(one(inputs)));
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = { kind: this.kind, activation: this.activation };
    if (this.rank !== null) config['rank'] = this.rank;
    return { ...config, ...super.getConfig() };
  }
}

/**
 * Creates a {@link LightweightOffsetHead} layer.
 *
 * @example
 * const head = lightweightOffsetHead({ kind: 'residual' }); // [..., D] → [..., D]
 */
export function lightweightOffsetHead(args: LightweightOffsetHeadArgs): LightweightOffsetHead {
  return new LightweightOffsetHead(args);
}
