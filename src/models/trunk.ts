/**
 * `TransformerTrunk`: the whole decoder trunk as one tfjs-layers layer — token embedding
 * (+ learned positions) → numLayers pre-norm blocks → final norm — with its weights built from
 * the table in `weights.ts`. The full-sequence `call` (training, save/load, `predict`) and the
 * KV-cached `step` run the same `forward`, so the cached decoder needs no knowledge of the
 * layers inside.
 *
 * Reference: nanoGPT's `GPT.forward`; llama2.c's `forward()` in run.c.
 *
 *     ids [B, T] → tok_embeddings (+ pos_embeddings) → [B, T, D]
 *               → numLayers × block(norm → attention → residual, norm → MLP → residual)
 *               → norm → [B, T, D]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initializers, layers, type LayerVariable } from '@tensorflow/tfjs-layers';
import { fail } from '../internal/errors.js';
import { registerOnce } from '../internal/registration.js';
import { one, oneShape, type Shape } from '../internal/shape.js';
import type { LayerArgs } from '../layers/args.js';
import type { KVCache } from './cache.js';
import { resolveTransformerConfig } from './config.js';
import { type ArchConfig, archOf, type BlockPart, hasBias, trunkWeightSpecs, type WeightInit, weightName, type WeightPart } from './weights.js';
import { type AttentionContext, type BlockWeights, block, type KeyValue, type Linear, type Norm, norm } from './ops.js';
import { attentionMask, inverseFrequencies, rotaryTablesAt } from './positions.js';
import type { AttentionPlan, RotaryAngles } from '../kernels/math.js';
import { fusedBlock, fusedNorm } from '../kernels/ops.js';
import type { StaticKVCache } from './static_cache.js';

const WHERE = 'TransformerTrunk';

/** Most floats the fused path copies to pack a model's q|k|v and gate|up matrices (32 MB). */
export const PACK_LIMIT = 8 * 2 ** 20;
let packLimit = PACK_LIMIT;

/**
 * Sets the packing limit (floats) and returns the previous one: 0 makes every model run its
 * projections unpacked, as a large model does (for tests of that path).
 *
 * @internal
 */
export function setPackLimit(floats: number): number {
  const previous = packLimit;
  packLimit = floats;
  return previous;
}

/** Arguments of {@link TransformerTrunk}: the architecture fields of a resolved `TransformerConfig`. */
export interface TransformerTrunkArgs extends LayerArgs, ArchConfig {}

/** Initial values by canonical weight name, used instead of the initializers (what `transformerFromWeights` passes). */
export type InitialValues = ReadonlyMap<string, Float32Array>;

function initializer(init: WeightInit, data: Float32Array | undefined): ReturnType<typeof initializers.zeros> {
  if (data !== undefined) {
    // addWeight only calls `apply`; the values become the variable with no extra copy
    return { apply: (shape: number[]) => tf.tensor(data, shape, 'float32') } as unknown as ReturnType<typeof initializers.zeros>;
  }
  if (init.kind === 'ones') return initializers.ones();
  if (init.kind === 'zeros') return initializers.zeros();
  return initializers.randomNormal({ mean: 0, stddev: init.stddev, seed: init.seed });
}

/**
 * The decoder trunk (see the module header). Its first weight is the `[V, D]` token embedding,
 * so a `SharedUnembedding` can tie to this layer.
 *
 * **Input shape** int32 token ids `[batch, seq]` (learned positions: `seq ≤ maxLength`).
 * **Output shape** final hidden states `[batch, seq, hidden]`.
 *
 * @example
 * const model = createTransformer({ norm: 'rmsNorm', positions: 'rotary', numKeyValueHeads: 2 });
 * const trunk = model.getLayer('transformer') as TransformerTrunk;
 * trunk.arch.numKeyValueHeads; // 2
 */
export class TransformerTrunk extends layers.Layer {
  /** The class name tfjs serialization registers this layer under. */
  static className = 'MtpTransformerTrunk';
  /** The architecture. */
  readonly arch: ArchConfig;
  private vars = new Map<string, LayerVariable>();
  private initialValues: InitialValues | undefined;
  private frequencies: number[] | undefined; // rotary inverse frequencies (the fused path's angles)
  private blocks: BlockWeights[] | undefined; // per block, its weights' variables

  /**
   * Checks the architecture like `createTransformer` does (a loaded config too), before any weight exists.
   * @param args The architecture fields and the usual layer arguments.
   * @param initialValues Values by canonical name that replace the initializers (used once, by `build`).
   */
  constructor(args: TransformerTrunkArgs, initialValues?: InitialValues) {
    super(args);
    registerOnce(TransformerTrunk);
    this.arch = archOf(resolveTransformerConfig(archOf(args), WHERE)) as ArchConfig; // checks a loaded config too
    this.initialValues = initialValues;
  }

  /** Query heads per key/value head. */
  private get groups(): number {
    return this.arch.numHeads / this.arch.numKeyValueHeads;
  }

  override build(inputShape: Shape | Shape[]): void {
    const shape = oneShape(inputShape);
    if (shape.length !== 2) fail(RangeError, WHERE, 'the input', 'must be token ids of shape [batch, seq]', shape);
    for (const spec of trunkWeightSpecs(this.arch)) {
      const init = initializer(spec.init, this.initialValues?.get(spec.name));
      this.vars.set(spec.name, this.addWeight(spec.name, spec.shape, 'float32', init));
    }
    this.initialValues = undefined; // used once
    this.built = true;
  }

  private read(name: string): tf.Tensor {
    const v = this.vars.get(name);
    if (v === undefined) throw new Error(`${WHERE}: the layer must be built before it runs, but it has no weight '${name}'.`);
    return v.read();
  }

  /** A projection of block `layer` (its bias only where the config has one: no cost otherwise). */
  private linear(part: BlockPart, layer: number): Linear {
    const bias = hasBias(this.arch, part) ? (this.read(weightName(part, layer, 'bias')) as tf.Tensor1D) : undefined;
    return { weight: this.read(weightName(part, layer)) as tf.Tensor2D, bias };
  }

  private norm(part: WeightPart, layer: number | null): Norm {
    const bias = hasBias(this.arch, part) ? (this.read(weightName(part, layer, 'bias')) as tf.Tensor1D) : undefined;
    return { weight: this.read(weightName(part, layer)) as tf.Tensor1D, bias };
  }

  /** Block `i`'s weights: the layer's variables (the same objects for the layer's life; an assign changes their memory, not them), gathered once. */
  private blockWeights(i: number): BlockWeights {
    this.blocks ??= [];
    this.blocks[i] ??= this.readBlock(i);
    return this.blocks[i]!;
  }

  private readBlock(i: number): BlockWeights {
    return {
      attentionNorm: this.norm('attentionNorm', i),
      wq: this.linear('wq', i),
      wk: this.linear('wk', i),
      wv: this.linear('wv', i),
      wo: this.linear('wo', i),
      ffnNorm: this.norm('ffnNorm', i),
      w1: this.linear('w1', i),
      w2: this.linear('w2', i),
      w3: this.arch.mlp === 'swiglu' ? this.linear('w3', i) : undefined,
    };
  }

  /** Whether the weights were disposed (e.g. by `LayersModel.dispose()`). */
  get isDisposed(): boolean {
    const first = this.weights[0] as unknown as { val?: tf.Tensor } | undefined;
    return first?.val?.isDisposed ?? false;
  }

  /**
   * The trunk over T new positions of B sequences, `ids` `[B·T]` (batch-major), after the
   * cache's positions (none when `cache` is null); commits the new keys/values to `cache`.
   * With `parents` (B = 1), the new positions form a tree: position t sits at the cache length +
   * its depth (`parents[t]` = −1 for a child of the last cached position) and attends to the cache
   * and its own ancestors only. Returns the final hidden states `[B·T, D]`. Call inside `tf.tidy`.
   */
  private forward(ids: tf.Tensor1D, B: number, cache: KVCache | null, parents: readonly number[] | null = null): tf.Tensor2D {
    const { maxLength, positions, hiddenSize: D, numHeads, numKeyValueHeads, numLayers } = this.arch;
    const T = ids.shape[0] / B;
    cache?.compact();
    const start = cache?.length ?? 0;
    const depth: number[] = [];
    for (let t = 0; t < T; t++) depth.push(parents === null ? t : parents[t]! < 0 ? 0 : depth[parents[t]!]! + 1);
    const at = depth.map((d) => start + d); // [T] each new position's index in the sequence
    const last = at.reduce((a, b) => Math.max(a, b), start);
    let x = tf.gather(this.read(weightName('embedding', null)), ids) as tf.Tensor2D; // [B·T, D]
    if (positions === 'learned') {
      if (last >= maxLength) {
        throw new RangeError(`${WHERE}: learned positions must fit maxLength = ${maxLength}, but got positions ${start}…${last}.`);
      }
      const pos = this.read(weightName('positions', null));
      const table = parents === null ? tf.slice(pos, [start, 0], [T, D]) : tf.gather(pos, tf.tensor1d(at, 'int32')); // [T, D]
      x = (B === 1 ? tf.add(x, table) : tf.reshape(tf.add(tf.reshape(x, [B, T, D]), table), [B * T, D])) as tf.Tensor2D; // [B·T, D]
    }
    const { headDim: hs, ropeTheta: theta, ropeLayout: layout, ropeScaling: scaling } = this.arch;
    const ctx: AttentionContext = {
      mask: attentionMask(T, cache?.visible() ?? [], this.groups, parents), // [g·T, L+T] or null
      rope: positions === 'rotary'
        ? { q: rotaryTablesAt(at, numHeads, hs, theta, layout, scaling), k: rotaryTablesAt(at, numKeyValueHeads, hs, theta, layout, scaling) }
        : null,
    };
    const kvs: KeyValue[] = [];
    for (let i = 0; i < numLayers; i++) {
      const out = block(x, B, this.blockWeights(i), this.arch, cache?.past(i) ?? null, ctx); // y [B·T, D]
      x = out.y;
      kvs.push(out.kv);
    }
    cache?.commit(kvs, T);
    return norm(x, this.norm('norm', null), this.arch.norm, this.arch.normEpsilon); // [B·T, D]
  }

  /**
   * Runs `ids` (one sequence) after the positions in `cache` and appends their keys/values to
   * it: the KV-cached decoder's entry point. Returns the final hidden states `[T, D]`.
   *
   * @internal
   */
  step(ids: readonly number[], cache: KVCache): tf.Tensor2D {
    return tf.tidy(() => this.forward(tf.tensor1d([...ids], 'int32'), 1, cache)); // [T, D]
  }

  /**
   * One new position for each of B sequences that advance together (batched generation:
   * `trainDraftHeads`' corpus): `ids` `[B]` after the positions in `cache`, which holds B
   * sequences of one length and is filled by this method only (no rollback). Appends the new
   * keys/values; returns the final hidden states `[B, D]`.
   *
   * @internal
   */
  stepBatch(ids: tf.Tensor1D, cache: KVCache): tf.Tensor2D {
    return tf.tidy(() => this.forward(ids, ids.shape[0], cache)); // [B, D]
  }

  /**
   * {@link TransformerTrunk.step} over a tree of new positions (`parents[t]` ∈ [−1, t), −1 = under
   * the last cached position): positions are the cache length + depth, attention sees the cache
   * and each node's ancestors. Appends every node's keys/values; the caller keeps a path after.
   *
   * @internal
   */
  stepTree(ids: readonly number[], parents: readonly number[], cache: KVCache): tf.Tensor2D {
    return tf.tidy(() => this.forward(tf.tensor1d([...ids], 'int32'), 1, cache, parents)); // [T, D]
  }

  /**
   * {@link TransformerTrunk.step} (`parents` null) or {@link TransformerTrunk.stepTree} through the
   * fused kernels (`../kernels/`) over a static cache, written in place: the embedding lookup and
   * the first norm, then one kernel per block (its projections through the backend's matmul, the
   * cached attention, the activation, the residual adds and norms between them). Same math as
   * `forward`. Only where `fusedKernelsAvailable()` holds (cpu, wasm). Returns `[T, D]`.
   *
   * @internal
   */
  stepFused(ids: readonly number[], parents: readonly number[] | null, cache: StaticKVCache): tf.Tensor2D {
    const { maxLength, positions, numHeads, numKeyValueHeads, headDim: hs } = this.arch;
    const T = ids.length;
    const start = cache.length;
    const depth: number[] = [];
    const sees: number[][] | null = parents === null ? null : [];
    for (let t = 0; t < T; t++) {
      const p = parents === null ? t - 1 : parents[t]!;
      depth.push(p < 0 ? 0 : depth[p]! + 1);
      sees?.push(p < 0 ? [t] : [...sees[p]!, t]); // a tree node sees its ancestors (increasing) and itself
    }
    const at = depth.map((d) => start + d); // [T] each new position's index in the sequence
    const last = at.reduce((a, b) => Math.max(a, b), start);
    if (positions === 'learned' && last >= maxLength) {
      throw new RangeError(`${WHERE}: learned positions must fit maxLength = ${maxLength}, but got positions ${start}…${last}.`);
    }
    cache.reserve(start + T);
    const plan: AttentionPlan = { numHeads, numKeyValueHeads, headDim: hs, cached: start, rows: T, sees, rotary: positions === 'rotary' ? this.rotaryAngles(at) : null };
    const states = this.fusedForward(ids, parents === null ? null : at, plan, cache);
    cache.commit(T);
    return states;
  }

  /**
   * {@link TransformerTrunk.stepBatch} through the fused kernels: one new position for each of
   * B sequences of one length, whose keys and values `cache` holds side by side (built with
   * `width` B·Hkv·hs; see the attention plan's `batch`), written in place. The same kernels as
   * {@link TransformerTrunk.stepFused}, the projections and MLP over all B rows at once, each
   * row's attention over its own sequence. Returns `[B, D]`.
   *
   * @internal
   */
  stepBatchFused(ids: readonly number[], cache: StaticKVCache): tf.Tensor2D {
    const { maxLength, positions, numHeads, numKeyValueHeads, headDim: hs } = this.arch;
    const start = cache.length;
    if (cache.width !== ids.length * numKeyValueHeads * hs) {
      throw new RangeError(`${WHERE}.stepBatchFused: cache width must be ids.length · Hkv · hs = ${ids.length * numKeyValueHeads * hs} (one sequence per id), but got ${cache.width}.`);
    }
    if (positions === 'learned' && start >= maxLength) throw new RangeError(`${WHERE}: learned positions must fit maxLength = ${maxLength}, but got position ${start}.`);
    cache.reserve(start + 1);
    const plan: AttentionPlan = { numHeads, numKeyValueHeads, headDim: hs, cached: start, rows: ids.length, sees: null, rotary: positions === 'rotary' ? this.rotaryAngles([start]) : null, batch: true };
    const states = this.fusedForward(ids, ids.map(() => start), plan, cache);
    cache.commit(1);
    return states;
  }

  /**
   * The fused layers over the new rows `ids` at `at` (null: contiguous from the cache length):
   * the embedding lookup and the first norm, then one kernel per block. `[T, D]`; the caller
   * reserves and commits the cache.
   */
  private fusedForward(ids: readonly number[], at: readonly number[] | null, plan: AttentionPlan, cache: StaticKVCache): tf.Tensor2D {
    const { positions, hiddenSize: D, numLayers, norm: kind, normEpsilon: eps, mlp } = this.arch;
    const T = ids.length;
    const pack = this.packFused;
    return tf.tidy(() => {
      let x = tf.gather(this.read(weightName('embedding', null)), tf.tensor2d([...ids], [1, T], 'int32')) as tf.Tensor3D; // [1, T, D]
      if (positions === 'learned') {
        const pos = this.read(weightName('positions', null));
        x = tf.add(x, at === null ? tf.slice(pos, [plan.cached, 0], [T, D]) : tf.gather(pos, tf.tensor1d([...at], 'int32'))) as tf.Tensor3D;
      }
      let h = fusedNorm(x, this.norm('attentionNorm', 0), kind, eps); // [1, T, D]
      const matrix = (ws: Linear[]) => cache.matrix(ws.map((w) => w.weight));
      const bias = (ws: Linear[]) => (ws[0]!.bias === undefined ? undefined : cache.vector(ws.map((w) => w.bias!)));
      for (let i = 0; i < numLayers; i++) {
        const w = this.blockWeights(i);
        const next = i + 1 < numLayers ? this.norm('attentionNorm', i + 1) : this.norm('norm', null);
        const gateUp = mlp === 'swiglu' && pack ? [w.w1, w.w3!] : [w.w1];
        [x, h] = fusedBlock(
          {
            x,
            h,
            ...cache.block(i),
            ...(pack ? { wq: matrix([w.wq, w.wk, w.wv]), bq: bias([w.wq, w.wk, w.wv]) } : { wq: matrix([w.wq]), bq: bias([w.wq]), wk: matrix([w.wk]), bk: bias([w.wk]), wv: matrix([w.wv]), bv: bias([w.wv]) }),
            wo: matrix([w.wo]),
            bo: bias([w.wo]),
            ffnNorm: w.ffnNorm.weight,
            ffnNormBias: w.ffnNorm.bias,
            w1: matrix(gateUp),
            b1: bias(gateUp),
            ...(mlp === 'swiglu' && !pack ? { w3: matrix([w.w3!]), b3: bias([w.w3!]) } : {}),
            w2: matrix([w.w2]),
            b2: bias([w.w2]),
            nextNorm: next.weight,
            nextNormBias: next.bias,
          },
          plan,
          kind,
          eps,
          mlp,
        ); // the residual stream after the block, and its next norm
      }
      return tf.reshape(h, [T, D]) as tf.Tensor2D;
    });
  }

  /**
   * Whether the fused path packs q|k|v and gate|up into one matmul each: a copy of those weights
   * per sequence (made at the first forward, freed with the cache) for 3 fewer dispatches a block
   * — taken while the copy stays under {@link PACK_LIMIT} floats, i.e. where dispatch, not the
   * matmuls' arithmetic, is what a step costs.
   */
  private get packFused(): boolean {
    const { hiddenSize: D, numHeads: H, numKeyValueHeads: Hkv, headDim: hs, mlp, numLayers } = this.arch;
    const F = this.read(weightName('w1', 0)).shape[1]!;
    return numLayers * D * ((H + 2 * Hkv) * hs + (mlp === 'swiglu' ? 2 * F : 0)) <= packLimit;
  }

  /** Rotary cosines and sines `[T, hs/2]` of `positions`, as `rotaryTablesAt` computes them (float32 angles). */
  private rotaryAngles(positions: readonly number[]): RotaryAngles {
    const { headDim: hs, ropeTheta, ropeLayout, ropeScaling } = this.arch;
    this.frequencies ??= inverseFrequencies(hs, ropeTheta, ropeScaling);
    const half = hs / 2;
    const cos = new Float32Array(positions.length * half);
    const sin = new Float32Array(positions.length * half);
    positions.forEach((p, t) => {
      for (let i = 0; i < half; i++) {
        const angle = Math.fround(p * this.frequencies![i]!);
        cos[t * half + i] = Math.cos(angle);
        sin[t * half + i] = Math.sin(angle);
      }
    });
    return { cos, sin, layout: ropeLayout };
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const ids = one(inputs); // [B, T]
      const [B, T] = ids.shape as [number, number];
      const flat = tf.reshape(ids.dtype === 'int32' ? ids : tf.cast(ids, 'int32'), [B * T]) as tf.Tensor1D; // [B·T]
      return tf.reshape(this.forward(flat, B, null), [B, T, this.arch.hiddenSize]); // [B, T, D]
    });
  }

  override computeOutputShape(inputShape: Shape | Shape[]): Shape {
    const shape = oneShape(inputShape);
    return [shape[0] ?? null, shape[1] ?? null, this.arch.hiddenSize];
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), ...this.arch };
  }
}

/** Factory of {@link TransformerTrunk}. */
export function transformerTrunk(args: TransformerTrunkArgs): TransformerTrunk {
  return new TransformerTrunk(args);
}
