/**
 * The reference transformer's custom tfjs-layers layers: a learned position embedding, a
 * pre-norm transformer block and a final layer norm. Each `call` runs the functions of
 * `ops.ts` — the same ones the KV-cached decoder runs — so a saved `LayersModel` and a
 * `CachedTransformer` built from it compute the same numbers.
 *
 * Conventions follow tfjs-layers' `layers/embeddings.ts`: an args interface, `static className`,
 * weights created in `build()`, `call()` inside `tidy`, `getConfig()`, `registerClass`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers } from '@tensorflow/tfjs-layers';
import { registerOnce } from '../internal/registration.js';
import { checkPositiveInteger } from '../internal/errors.js';
import type { LayerArgs } from '../layers/args.js';
import type { Shape } from '../internal/shape.js';
import { type BlockWeights, type KeyValue, type LayerNormWeights, layerNorm, transformerBlock } from './ops.js';

function readVariable(v: { read(): tf.Tensor }): tf.Tensor {
  return v.read();
}

function lastDim(where: string, inputShape: Shape | Shape[]): number {
  const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as Shape;
  const d = shape[shape.length - 1];
  if (shape.length !== 3 || d == null) {
    throw new TypeError(`${where}: the input shape must be [batch, seq, hidden] with a known hidden size, but got [${shape.join(', ')}].`);
  }
  return d;
}

function one(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
  return Array.isArray(inputs) ? inputs[0]! : inputs;
}

// ---------------------------------------------------------------------------------------------

/** Arguments of {@link MtpPositionEmbedding}. */
export interface MtpPositionEmbeddingArgs extends LayerArgs {
  /** Integer > 0. Most positions the layer can embed (the context limit). */
  maxLength: number;
  /** Seed of the normal(0, 0.02) initializer. */
  seed?: number;
}

/**
 * Adds a learned position embedding to a sequence of token embeddings.
 *
 * **Input shape** `[batch, seq, hidden]`, `seq ≤ maxLength`. **Output shape** the same.
 */
export class MtpPositionEmbedding extends layers.Layer {
  /** The class name tfjs serialization registers this layer under. */
  static className = 'MtpPositionEmbedding';
  /** Most positions the layer can embed (the context limit). */
  readonly maxLength: number;
  private readonly seed: number | undefined;
  private table: { read(): tf.Tensor } | null = null;

  /** Checks `args` (throws a `RangeError` naming a bad field). */
  constructor(args: MtpPositionEmbeddingArgs) {
    super(args);
    this.maxLength = checkPositiveInteger('MtpPositionEmbedding', 'args.maxLength', args.maxLength);
    this.seed = args.seed ?? undefined;
  }

  override build(inputShape: Shape | Shape[]): void {
    const d = lastDim('MtpPositionEmbedding', inputShape);
    const init = initializers.randomNormal({ mean: 0, stddev: 0.02, seed: this.seed });
    this.table = this.addWeight('embeddings', [this.maxLength, d], 'float32', init);
    this.built = true;
  }

  /** The `[maxLength, D]` table (no copy). */
  matrix(): tf.Tensor2D {
    return readVariable(this.table!) as tf.Tensor2D;
  }

  /** Embeddings of positions `start … start + length - 1`: `[length, D]`. */
  positions(start: number, length: number): tf.Tensor2D {
    if (start + length > this.maxLength) {
      throw new RangeError(
        `MtpPositionEmbedding: the sequence must fit maxLength = ${this.maxLength} positions, but got positions ${start}…${start + length - 1}.`,
      );
    }
    const table = this.matrix();
    return tf.slice(table, [start, 0], [length, table.shape[1]]);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = one(inputs) as tf.Tensor3D; // [B, T, D]
      return tf.add(x, this.positions(0, x.shape[1])); // [B, T, D]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), maxLength: this.maxLength, seed: this.seed ?? null };
  }
}
registerOnce(MtpPositionEmbedding);

/** Factory of {@link MtpPositionEmbedding}. */
export function mtpPositionEmbedding(args: MtpPositionEmbeddingArgs): MtpPositionEmbedding {
  return new MtpPositionEmbedding(args);
}

// ---------------------------------------------------------------------------------------------

/** Arguments of {@link MtpLayerNorm}. */
export type MtpLayerNormArgs = LayerArgs;

/**
 * Layer normalization over the last axis with a learned scale and shift (GPT-2's `ln_f`).
 *
 * **Input shape** `[batch, seq, hidden]`. **Output shape** the same.
 */
export class MtpLayerNorm extends layers.Layer {
  /** The class name tfjs serialization registers this layer under. */
  static className = 'MtpLayerNorm';
  private gamma: { read(): tf.Tensor } | null = null;
  private beta: { read(): tf.Tensor } | null = null;

  override build(inputShape: Shape | Shape[]): void {
    const d = lastDim('MtpLayerNorm', inputShape);
    this.gamma = this.addWeight('gamma', [d], 'float32', initializers.ones());
    this.beta = this.addWeight('beta', [d], 'float32', initializers.zeros());
    this.built = true;
  }

  /**
   * The scale and shift (no copies), for the KV-cached decoder.
   *
   * @internal
   */
  normWeights(): LayerNormWeights {
    return { gamma: readVariable(this.gamma!) as tf.Tensor1D, beta: readVariable(this.beta!) as tf.Tensor1D };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => layerNorm(one(inputs), this.normWeights()));
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }
}
registerOnce(MtpLayerNorm);

/** Factory of {@link MtpLayerNorm}. */
export function mtpLayerNorm(args: MtpLayerNormArgs = {}): MtpLayerNorm {
  return new MtpLayerNorm(args);
}

// ---------------------------------------------------------------------------------------------

/** Arguments of {@link MtpTransformerBlock}. */
export interface MtpTransformerBlockArgs extends LayerArgs {
  /** Integer > 0 dividing the hidden size. Number of attention heads. */
  numHeads: number;
  /** Integer > 0. MLP width as a multiple of the hidden size. */
  mlpRatio: number;
  /**
   * Standard deviation of the output projections' initializer (GPT-2 scales it by
   * 1/√(2·numLayers) so the residual stream does not grow with depth).
   */
  residualStddev: number;
  /** Seed of the initializers (each weight gets `seed + i`). */
  seed?: number;
}

const BLOCK_WEIGHTS = [
  'ln1_gamma', 'ln1_beta', 'qkv_kernel', 'qkv_bias', 'proj_kernel', 'proj_bias',
  'ln2_gamma', 'ln2_beta', 'fc_kernel', 'fc_bias', 'fc2_kernel', 'fc2_bias',
] as const;

/**
 * One pre-norm transformer block: `x + attn(ln1(x))`, then `+ mlp(ln2(·))`, with causal
 * multi-head self-attention and a relu MLP.
 *
 * **Input shape** `[batch, seq, hidden]`. **Output shape** the same.
 */
export class MtpTransformerBlock extends layers.Layer {
  /** The class name tfjs serialization registers this layer under. */
  static className = 'MtpTransformerBlock';
  /** Number of attention heads. */
  readonly numHeads: number;
  /** MLP width as a multiple of the hidden size. */
  readonly mlpRatio: number;
  /** Standard deviation of the output projections' initializer. */
  readonly residualStddev: number;
  private readonly seed: number | undefined;
  private vars: Record<(typeof BLOCK_WEIGHTS)[number], { read(): tf.Tensor }> | null = null;

  /** Checks `args` (throws a `RangeError` naming a bad field). */
  constructor(args: MtpTransformerBlockArgs) {
    super(args);
    this.numHeads = checkPositiveInteger('MtpTransformerBlock', 'args.numHeads', args.numHeads);
    this.mlpRatio = checkPositiveInteger('MtpTransformerBlock', 'args.mlpRatio', args.mlpRatio);
    if (!(args.residualStddev > 0)) {
      throw new RangeError(`MtpTransformerBlock: args.residualStddev must be > 0, but got ${String(args.residualStddev)}.`);
    }
    this.residualStddev = args.residualStddev;
    this.seed = args.seed ?? undefined;
  }

  override build(inputShape: Shape | Shape[]): void {
    const d = lastDim('MtpTransformerBlock', inputShape);
    if (d % this.numHeads !== 0) {
      throw new RangeError(`MtpTransformerBlock: the hidden size must be divisible by args.numHeads = ${this.numHeads}, but got ${d}.`);
    }
    const r = this.mlpRatio * d;
    const seed = (i: number) => (this.seed === undefined ? undefined : this.seed + i);
    const normal = (stddev: number, i: number) => initializers.randomNormal({ mean: 0, stddev, seed: seed(i) });
    const shapes: Record<(typeof BLOCK_WEIGHTS)[number], [number[], ReturnType<typeof initializers.zeros>]> = {
      ln1_gamma: [[d], initializers.ones()],
      ln1_beta: [[d], initializers.zeros()],
      qkv_kernel: [[d, 3 * d], normal(0.02, 0)],
      qkv_bias: [[3 * d], initializers.zeros()],
      proj_kernel: [[d, d], normal(this.residualStddev, 1)],
      proj_bias: [[d], initializers.zeros()],
      ln2_gamma: [[d], initializers.ones()],
      ln2_beta: [[d], initializers.zeros()],
      fc_kernel: [[d, r], normal(0.02, 2)],
      fc_bias: [[r], initializers.zeros()],
      fc2_kernel: [[r, d], normal(this.residualStddev, 3)],
      fc2_bias: [[d], initializers.zeros()],
    };
    const vars = {} as Record<(typeof BLOCK_WEIGHTS)[number], { read(): tf.Tensor }>;
    for (const name of BLOCK_WEIGHTS) vars[name] = this.addWeight(name, shapes[name][0], 'float32', shapes[name][1]);
    this.vars = vars;
    this.built = true;
  }

  /**
   * The block's weights as tensors (no copies), for the KV-cached decoder.
   *
   * @internal
   */
  blockWeights(): BlockWeights {
    const v = (name: (typeof BLOCK_WEIGHTS)[number]) => readVariable(this.vars![name]);
    return {
      ln1: { gamma: v('ln1_gamma') as tf.Tensor1D, beta: v('ln1_beta') as tf.Tensor1D },
      qkvKernel: v('qkv_kernel') as tf.Tensor2D,
      qkvBias: v('qkv_bias') as tf.Tensor1D,
      projKernel: v('proj_kernel') as tf.Tensor2D,
      projBias: v('proj_bias') as tf.Tensor1D,
      ln2: { gamma: v('ln2_gamma') as tf.Tensor1D, beta: v('ln2_beta') as tf.Tensor1D },
      fcKernel: v('fc_kernel') as tf.Tensor2D,
      fcBias: v('fc_bias') as tf.Tensor1D,
      fc2Kernel: v('fc2_kernel') as tf.Tensor2D,
      fc2Bias: v('fc2_bias') as tf.Tensor1D,
    };
  }

  /**
   * Runs the block on new positions after a cached prefix (see `ops.transformerBlock`); the
   * KV-cached decoder's entry point.
   *
   * @internal
   */
  step(
    x: tf.Tensor3D,
    past: KeyValue | null,
  ): {
    /** The block's output for the new positions, `[B, T, D]`. */
    y: tf.Tensor3D;
    /** Keys and values of the cached prefix plus the new positions, for the cache to keep. */
    kv: KeyValue;
  } {
    return transformerBlock(x, this.blockWeights(), this.numHeads, past);
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => this.step(one(inputs) as tf.Tensor3D, null).y);
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[] {
    return inputShape;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return {
      ...super.getConfig(),
      numHeads: this.numHeads,
      mlpRatio: this.mlpRatio,
      residualStddev: this.residualStddev,
      seed: this.seed ?? null,
    };
  }
}
registerOnce(MtpTransformerBlock);

/** Factory of {@link MtpTransformerBlock}. */
export function mtpTransformerBlock(args: MtpTransformerBlockArgs): MtpTransformerBlock {
  return new MtpTransformerBlock(args);
}

/**
 * Registers the model's layer classes for `tf.loadLayersModel` (idempotent: safe to call any
 * number of times; importing this module already registers them).
 */
export function registerModelLayers(): void {
  for (const cls of [MtpPositionEmbedding, MtpLayerNorm, MtpTransformerBlock]) registerOnce(cls);
}
