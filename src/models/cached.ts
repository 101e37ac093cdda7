/**
 * `CachedTransformer`: runs a `createTransformer` model incrementally with a KV cache, as the
 * `MultiTokenModel` the decoders drive. Same weights, same functions (`ops.ts`) as the layers
 * graph; only the keys/values of past positions are kept instead of recomputed.
 *
 * The cache is one `[1, H, P, hs]` keys tensor and one values tensor per block, `tf.keep`-ed;
 * every forward replaces them (concat) and `truncate` replaces them by a slice, disposing the old.
 *
 * Reference: Pope et al., "Efficiently Scaling Transformer Inference" (2022), §2 (KV cache);
 * Stern et al. (2018) §4 for why the decoders need `truncate`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import type { MultiTokenHead } from '../layers/index.js';
import type { MultiTokenModel } from '../decoding/model.js';
import { LAYER_NAMES, type createTransformer } from './transformer.js';
import type { MtpLayerNorm, MtpPositionEmbedding, MtpTransformerBlock } from './layers.js';
import type { KeyValue } from './ops.js';
import { layerNorm } from './ops.js';
import { show } from './config.js';

function findLayer<T>(model: LayersModel, name: string, className: string): T {
  const layer = model.layers.find((l) => l.name === name);
  if (layer === undefined || layer.getClassName() !== className) {
    throw new TypeError(
      `CachedTransformer: model must come from createTransformer (a ${className} layer named '${name}'), ` +
        `but model '${model.name}' has ${layer ? `a ${layer.getClassName()} there` : 'no such layer'}.`,
    );
  }
  return layer as T;
}

/** A KV-cached, incremental view of a `createTransformer` model (batch size 1). */
export class CachedTransformer implements MultiTokenModel {
  /** Number of multi-token heads k (from the model's `MultiTokenHead`). */
  readonly numHeads: number;
  /** Vocabulary size V. */
  readonly vocabSize: number;
  /** The context limit: the size of the model's position table. */
  readonly maxLength: number;
  private readonly wte: tf.Tensor2D; // [V, D]
  private readonly wpe: MtpPositionEmbedding;
  private readonly blocks: MtpTransformerBlock[];
  private readonly lnF: MtpLayerNorm;
  private readonly head: MultiTokenHead;
  private cache: KeyValue[] = [];
  private cursor = 0;
  private disposed = false;

  /**
   * Wraps `model` (not copied: later weight updates are seen; `dispose` leaves it alone).
   * @param model A `LayersModel` from {@link createTransformer} or loaded from its saved form.
   */
  constructor(readonly model: LayersModel) {
    const wte = model.layers.find((l) => l.name === LAYER_NAMES.tokenEmbedding);
    if (wte === undefined || wte.getClassName() !== 'Embedding') {
      throw new TypeError(`CachedTransformer: model must come from createTransformer (an Embedding layer named 'wte'), but model '${model.name}' has no such layer.`);
    }
    this.wte = wte.getWeights()[0] as tf.Tensor2D;
    this.wpe = findLayer(model, LAYER_NAMES.positionEmbedding, 'MtpPositionEmbedding');
    this.lnF = findLayer(model, LAYER_NAMES.finalNorm, 'MtpLayerNorm');
    this.head = findLayer(model, LAYER_NAMES.head, 'MultiTokenHead');
    this.blocks = [];
    for (let i = 0; model.layers.some((l) => l.name === LAYER_NAMES.block(i)); i++) {
      this.blocks.push(findLayer(model, LAYER_NAMES.block(i), 'MtpTransformerBlock'));
    }
    this.numHeads = this.head.numHeads;
    this.vocabSize = this.head.vocabSize;
    this.maxLength = this.wpe.maxLength;
  }

  /** Number of positions in the cache. */
  get length(): number {
    return this.cursor;
  }

  /**
   * Appends `tokenIds` at position `length` and returns the final hidden states of the new
   * positions, `[n, D]` (after `ln_f`, ready for `headLogits`). Never reads data back.
   */
  forward(tokenIds: readonly number[]): tf.Tensor2D {
    this.checkTokens(tokenIds);
    const n = tokenIds.length;
    const past = this.cursor;
    let cache: KeyValue[] = [];
    const hidden = tf.tidy(() => {
      const ids = tf.tensor1d(tokenIds as number[], 'int32'); // [n]
      const x = tf.add(tf.gather(this.wte, ids), this.wpe.positions(past, n)); // [n, D]
      let h = tf.expandDims(x, 0) as tf.Tensor3D; // [1, n, D]
      cache = this.blocks.map((block, i) => {
        const out = block.step(h, this.cache[i] ?? null); // y [1, n, D], kv [1, H, past+n, hs]
        h = out.y;
        return { keys: tf.keep(out.kv.keys), values: tf.keep(out.kv.values) };
      });
      return layerNorm(tf.squeeze(h, [0]) as tf.Tensor2D, this.lnF.normWeights()); // [n, D]
    });
    this.replaceCache(cache);
    this.cursor = past + n;
    return hidden;
  }

  /** Logits of `offsets` at the rows of `states` `[m, D]`: `[m, offsets.length, V]`. */
  headLogits(states: tf.Tensor2D, offsets: readonly number[]): tf.Tensor3D {
    this.checkLive('headLogits');
    return this.head.computeLogits(states, offsets) as tf.Tensor3D;
  }

  /** Rolls the cache back to its first `length` positions. */
  truncate(length: number): void {
    this.checkLive('truncate');
    if (!Number.isInteger(length) || length < 0 || length > this.cursor) {
      throw new RangeError(`CachedTransformer.truncate: length must be an integer in [0, length = ${this.cursor}], but got ${show(length)}.`);
    }
    if (length === this.cursor) return;
    if (length === 0) {
      this.replaceCache([]);
    } else {
      this.replaceCache(
        this.cache.map(({ keys, values }) => ({
          keys: tf.keep(tf.slice(keys, [0, 0, 0, 0], [-1, -1, length, -1])),
          values: tf.keep(tf.slice(values, [0, 0, 0, 0], [-1, -1, length, -1])),
        })),
      );
    }
    this.cursor = length;
  }

  /** Frees the cache; the wrapped model (and its weights) stay usable. */
  dispose(): void {
    this.replaceCache([]);
    this.cursor = 0;
    this.disposed = true;
  }

  private replaceCache(next: KeyValue[]): void {
    for (const { keys, values } of this.cache) tf.dispose([keys, values]);
    this.cache = next;
  }

  private checkLive(where: string): void {
    if (this.disposed) throw new Error(`CachedTransformer.${where}: this model was disposed; create a new CachedTransformer.`);
  }

  private checkTokens(tokenIds: readonly number[]): void {
    this.checkLive('forward');
    if (!Array.isArray(tokenIds) || tokenIds.length === 0) {
      throw new TypeError(`CachedTransformer.forward: tokenIds must be a non-empty array of token ids, but got ${show(tokenIds)}.`);
    }
    const bad = tokenIds.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.vocabSize);
    if (bad >= 0) {
      throw new RangeError(`CachedTransformer.forward: tokenIds[${bad}] must be an integer in [0, vocabSize = ${this.vocabSize}), but got ${show(tokenIds[bad])}.`);
    }
    if (this.cursor + tokenIds.length > this.maxLength) {
      throw new RangeError(
        `CachedTransformer.forward: tokenIds must fit the context (length ${this.cursor} + ${tokenIds.length} new ≤ maxLength = ${this.maxLength}), but got ${tokenIds.length} tokens.`,
      );
    }
  }
}

/** Factory of {@link CachedTransformer}. */
export function cachedTransformer(model: LayersModel): CachedTransformer {
  return new CachedTransformer(model);
}
