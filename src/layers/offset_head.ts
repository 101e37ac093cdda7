/**
 * `LightweightOffsetHead`: the small hidden → hidden transform that turns the trunk state at
 * position t into the state from which offset j predicts token t+1+j. It is the only part of a
 * multi-token head that each offset owns; the vocabulary projection is shared.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.1.1 (ResBlock heads `x + SiLU(W·x + b)`,
 * zero-initialised); Hu et al., "LoRA" (2021) for the low-rank form; Vaswani et al., "Attention
 * Is All You Need" (2017), §3.3 for the two-layer MLP block of the `mlp` kind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, type LayerVariable } from '@tensorflow/tfjs-layers';
import { checkInteger } from '../internal/errors.js';
import { registerOnce } from '../internal/registration.js';
import { deriveSeed } from '../internal/seed.js';
import { lastDim, one, oneShape, type Shape } from '../internal/shape.js';
import { type ActivationIdentifier, checkKind, type HeadSizes, type Layer, type LayerArgs, LayerBase, LAYER_DEFAULTS, makeActivation, type OffsetHeadKind, resolveHeadSizes } from './args.js';
import { weightName } from './nesting.js';
import { checkOffsetHead, offsetHeadWeights, type OffsetHeadWeight } from './parameter_report.js';

const WHERE = 'LightweightOffsetHead';

/** Arguments of {@link LightweightOffsetHead}; the defaults are {@link LAYER_DEFAULTS}'. */
export interface LightweightOffsetHeadArgs extends LayerArgs {
  /** Which transform (see the class comment). */
  kind: OffsetHeadKind;
  /** Integer in `[1, hidden]`. Rank `r` of the `lowRank` kind: required for it; for other kinds checked, then dropped. */
  rank?: number;
  /** Integer in `[1, 65536]`. Width `H` of the `mlp` kind: required for it; for other kinds checked, then dropped. */
  headHiddenSize?: number;
  /**
   * The old name of `headHiddenSize`. Given with it, the two must be equal.
   * @deprecated Use `headHiddenSize`; `mlpHiddenSize` is accepted until the next minor release.
   */
  mlpHiddenSize?: number;
  /** Activation of the `residual`, `lowRank` and `mlp` kinds. */
  activation?: ActivationIdentifier;
  /** Integer. Seed of the random initial values (`lowRank`'s `A`, `mlp`'s `W1`): the same seed gives the same weights. Default: unseeded. */
  seed?: number;
}

/**
 * One offset's hidden → hidden transform. Every kind starts as the identity function (the
 * `linear` kernel is initialised to the identity matrix; the other kinds add a zero-initialised
 * term to their input), so a freshly attached head predicts what offset 0 predicts until it is
 * trained.
 *
 * | kind | output | parameters |
 * | --- | --- | --- |
 * | `identity` | `x` | 0 |
 * | `linear` | `x·W + b`, `W = I, b = 0` initially | `D·D + D` |
 * | `residual` | `x + act(x·W + b)`, `W = 0, b = 0` initially | `D·D + D` |
 * | `lowRank` | `x + act(x·A)·B`, `A` random, `B = 0` initially | `2·D·r` |
 * | `mlp` | `x + act(x·W1 + b1)·W2 + b2`, `W1` random, `W2 = 0, b1 = b2 = 0` initially | `2·D·H + H + D` |
 *
 * **Input shape** `[..., hidden]` (any rank ≥ 2).
 * **Output shape** the same.
 *
 * @example
 * const head = lightweightOffsetHead({ kind: 'mlp', headHiddenSize: 64 });
 * const y = head.apply(tf.ones([2, 5, 16])) as tf.Tensor; // [2, 5, 16], equal to the input until trained
 */
export class LightweightOffsetHead extends LayerBase {
  /** Name under which the class is registered for serialization (a getter, for the reason given at `LayerBase`). */
  static get className(): string {
    return 'LightweightOffsetHead';
  }
  /** The transform's kind. */
  readonly kind: OffsetHeadKind;
  /** Rank of the `lowRank` kind (`null` for the other kinds). */
  readonly rank: number | null;
  /** Width of the `mlp` kind (`null` for the other kinds). */
  readonly headHiddenSize: number | null;
  /** @deprecated Use `headHiddenSize` (the same value); `mlpHiddenSize` remains until the next minor release. */
  get mlpHiddenSize(): number | null {
    return this.headHiddenSize;
  }
  /** Activation name of the `residual`, `lowRank` and `mlp` kinds. */
  readonly activation: ActivationIdentifier;
  /** Seed of the random initial values, or `null` (unseeded). */
  readonly seed: number | null;
  private readonly act: Layer;
  private readonly w: Record<string, LayerVariable> = {}; // the weights of offsetHeadWeights(kind, D, …), by name

  constructor(args: LightweightOffsetHeadArgs) {
    super(args);
    registerOnce(LightweightOffsetHead); // lazily, so that loading this module has no side effect
    this.kind = checkKind(WHERE, 'kind', args.kind);
    const sizes = resolveHeadSizes(WHERE, [this.kind], args);
    this.rank = sizes.rank ?? null;
    this.headHiddenSize = sizes.headHiddenSize ?? null;
    this.activation = args.activation ?? LAYER_DEFAULTS.activation;
    this.act = makeActivation(WHERE, this.activation);
    this.seed = args.seed === undefined || args.seed === null ? null : checkInteger(WHERE, 'seed', args.seed, -(2 ** 31), 2 ** 31 - 1);
  }

  override build(inputShape: Shape | Shape[]): void {
    const d = lastDim(WHERE, inputShape, [2, 3, 4, 5]);
    const sizes = headSizes(this);
    checkOffsetHead(WHERE, this.kind, d, sizes); // before any weight is created
    offsetHeadWeights(this.kind, d, sizes).forEach((spec, n) => {
      this.w[spec.name] = this.addWeight(weightName(this, spec.name), spec.shape, 'float32', initializer(spec.init, this.seed === null ? null : deriveSeed(this.seed, n)));
    });
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs); // [..., D]
      if (this.kind === 'identity') return tf.clone(x); // [..., D]
      const d = x.shape[x.shape.length - 1]!;
      const flat = tf.reshape(x, [-1, d]); // [m, D]
      const w = (name: string): tf.Tensor => this.w[name]!.read();
      let y: tf.Tensor;
      if (this.kind === 'linear') {
        y = tf.add(tf.matMul(flat, w('kernel')), w('bias')); // [m, D]
      } else if (this.kind === 'residual') {
        y = tf.add(flat, this.activate(tf.add(tf.matMul(flat, w('kernel')), w('bias')))); // [m, D]
      } else if (this.kind === 'lowRank') {
        y = tf.add(flat, tf.matMul(this.activate(tf.matMul(flat, w('down'))), w('up'))); // [m, r] → [m, D]
      } else {
        const hidden = this.activate(tf.add(tf.matMul(flat, w('w1')), w('b1'))); // [m, H]
        y = tf.add(flat, tf.add(tf.matMul(hidden, w('w2')), w('b2'))); // [m, D]
      }
      return tf.reshape(y, x.shape); // [..., D]
    });
  }

  /** The transform's activation applied to `x` (the same function `call` uses; for the fused inference path). @internal */
  activate(x: tf.Tensor): tf.Tensor {
    return this.act.apply(x) as tf.Tensor;
  }

  /** The variable `name` of {@link offsetHeadWeights}' list, read (not a copy: do not dispose). For the fused inference path. @internal */
  weightValue(name: string): tf.Tensor {
    const v = this.w[name];
    if (v === undefined) throw new Error(`${WHERE}: the layer must be built before its weights are read, but it has no weight '${name}'.`);
    return v.read();
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    return oneShape(inputShape);
  }

  override getConfig(): tf.serialization.ConfigDict {
    const config: tf.serialization.ConfigDict = { kind: this.kind, activation: this.activation };
    if (this.rank !== null) config['rank'] = this.rank;
    if (this.headHiddenSize !== null) config['headHiddenSize'] = this.headHiddenSize;
    if (this.seed !== null) config['seed'] = this.seed;
    return { ...config, ...super.getConfig() };
  }
}

/** The kind-dependent sizes of `head`, as {@link offsetHeadWeights} takes them. */
export function headSizes(head: LightweightOffsetHead): HeadSizes {
  return { rank: head.rank ?? undefined, headHiddenSize: head.headHiddenSize ?? undefined };
}

/** The tfjs-layers initializer of a weight's initial value. */
function initializer(init: OffsetHeadWeight['init'], seed: number | null): ReturnType<typeof initializers.zeros> {
  if (init === 'identity') return initializers.identity({ gain: 1 });
  if (init === 'zeros') return initializers.zeros();
  return seed === null ? initializers.glorotUniform({}) : initializers.glorotUniform({ seed });
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
