/**
 * `CachedTransformer`: runs a `createTransformer` model incrementally with a KV cache, as the
 * `MultiTokenModel` the decoders drive. The trunk's `step` is the same `forward` as its
 * full-sequence `call`; only the keys/values of past positions are kept (`KVCache`) instead of
 * recomputed. `truncate` moves the cache's cursor: no tensor is copied on a rollback.
 *
 * Reference: Pope et al., "Efficiently Scaling Transformer Inference" (2022), §2 (KV cache);
 * Stern et al. (2018) §4 for why the decoders need `truncate`.
 */
import type * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { fail, show } from '../internal/errors.js';
import { type InferenceHead, isInferenceHead } from '../layers/inference_head.js';
import type { MultiTokenModel } from '../decoding/model.js';
import { KVCache } from './cache.js';
import { TransformerTrunk } from './trunk.js';

const WHERE = 'CachedTransformer';

function findTrunkAndHead(model: LayersModel): { trunk: TransformerTrunk; head: InferenceHead } {
  if (model === null || typeof model !== 'object' || !Array.isArray((model as { layers?: unknown }).layers)) {
    fail(TypeError, WHERE, 'model', 'must be a tf.LayersModel from createTransformer or loadTransformer', model);
  }
  const trunk = model.layers.find((l) => l instanceof TransformerTrunk || l.getClassName() === TransformerTrunk.className);
  const head = model.layers.find((l) => isInferenceHead(l));
  if (trunk === undefined || head === undefined) {
    throw new TypeError(
      `${WHERE}: model must come from createTransformer (a ${TransformerTrunk.className} layer and a MultiTokenHead), ` +
        `but model '${model.name}' has layers [${model.layers.map((l) => l.getClassName()).join(', ')}].`,
    );
  }
  return { trunk: trunk as TransformerTrunk, head: head as unknown as InferenceHead };
}

/** A KV-cached, incremental view of a `createTransformer` model (batch size 1). */
export class CachedTransformer implements MultiTokenModel {
  /** Number of multi-token heads k (from the model's `MultiTokenHead`). */
  readonly numHeads: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** The context limit (`maxLength` of the model's config). */
  readonly maxLength: number;
  private readonly trunk: TransformerTrunk;
  private readonly head: InferenceHead;
  private readonly cache = new KVCache();
  private disposed = false;
  private prepared = false;

  /**
   * Wraps `model` (not copied: later weight updates are seen; `dispose` leaves it alone).
   * @param model A `LayersModel` from {@link createTransformer}, `transformerFromWeights` or `loadTransformer`.
   */
  constructor(readonly model: LayersModel) {
    const { trunk, head } = findTrunkAndHead(model);
    this.trunk = trunk;
    this.head = head;
    this.numHeads = head.numHeads;
    this.vocabSize = head.vocabSize;
    this.maxLength = trunk.arch.maxLength;
  }

  /** Number of positions in the cache. */
  get length(): number {
    return this.cache.length;
  }

  /**
   * Appends `tokenIds` (an array or a typed array) at position `length` and returns the final
   * hidden states of the new positions, `[n, D]` (after the final norm, ready for `headLogits`).
   * Never reads data back.
   */
  forward(tokenIds: readonly number[] | Int32Array | Uint32Array | Uint16Array | Uint8Array): tf.Tensor2D {
    const ids = this.checkTokens(tokenIds);
    return this.trunk.step(ids, this.cache);
  }

  /** Logits of `offsets` at the rows of `states` `[m, D]`: `[m, offsets.length, V]` (the fused pass inside a decode). */
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    this.checkLive('headLogits');
    return this.head.logits(states, offsets);
  }

  /**
   * The argmax token of offsets 0…numOffsets−1 at every row of `states` `[m, D]`, int32
   * `[m, numOffsets]` (−1 where those logits hold NaN or ±Infinity); inside a decode one fused
   * pass (see `MultiTokenModel.headArgmax`). No readback.
   */
  headArgmax(states: tf.Tensor2D, numOffsets: number): tf.Tensor2D {
    this.checkLive('headArgmax');
    return this.head.headArgmax(states, numOffsets);
  }

  /** Prepares the head's fused pass from the current weights (the decoders call it when a decode starts). */
  beginDecode(): void {
    this.checkLive('beginDecode');
    this.endDecode(); // a decode abandoned without endDecode: start from fresh weights
    this.head.prepare();
    this.prepared = true;
  }

  /** Frees what {@link CachedTransformer.beginDecode} prepared (the decoders call it when a decode ends; a no-op otherwise). */
  endDecode(): void {
    if (!this.prepared) return;
    this.prepared = false;
    this.head.release();
  }

  /** Rolls the cache back to its first `length` positions (moves a cursor; rejected rows are masked out until compacted). */
  truncate(length: number): void {
    this.checkLive('truncate');
    if (!Number.isInteger(length) || length < 0 || length > this.cache.length) {
      throw new RangeError(`${WHERE}.truncate: length must be an integer in [0, length = ${this.cache.length}], but got ${show(length)}.`);
    }
    this.cache.truncate(length);
  }

  /** Frees the cache; the wrapped model (and its weights) stay usable. */
  dispose(): void {
    this.endDecode();
    this.cache.clear();
    this.disposed = true;
  }

  private checkLive(where: string): void {
    if (this.disposed) throw new Error(`${WHERE}.${where}: this model was disposed; create a new CachedTransformer.`);
    if (this.trunk.isDisposed) {
      throw new Error(`${WHERE}.${where}: the wrapped LayersModel '${this.model.name}' was disposed (its weights are gone); load or create the model again.`);
    }
  }

  private checkTokens(tokenIds: unknown): readonly number[] {
    this.checkLive('forward');
    const isTyped = ArrayBuffer.isView(tokenIds) && !(tokenIds instanceof DataView);
    if ((!Array.isArray(tokenIds) && !isTyped) || (tokenIds as ArrayLike<number>).length === 0) {
      fail(TypeError, `${WHERE}.forward`, 'tokenIds', 'must be a non-empty array (or typed array) of token ids', tokenIds);
    }
    const ids = Array.from(tokenIds as ArrayLike<number>);
    const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.vocabSize);
    if (bad >= 0) {
      throw new RangeError(`${WHERE}.forward: tokenIds[${bad}] must be an integer in [0, vocabSize = ${this.vocabSize}), but got ${show(ids[bad])}.`);
    }
    if (this.cache.length + ids.length > this.maxLength) {
      throw new RangeError(
        `${WHERE}.forward: tokenIds must fit the context (length ${this.cache.length} + ${ids.length} new ≤ maxLength = ${this.maxLength}), but got ${ids.length} tokens.`,
      );
    }
    return ids;
  }
}

/** Factory of {@link CachedTransformer}. */
export function cachedTransformer(model: LayersModel): CachedTransformer {
  return new CachedTransformer(model);
}
