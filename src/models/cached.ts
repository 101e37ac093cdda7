/**
 * `CachedTransformer`: runs a `createTransformer` model incrementally with a KV cache, as the
 * `MultiTokenModel` the decoders drive. Only the keys/values of past positions are kept instead
 * of recomputed; `truncate` moves the cache's cursor: no tensor is copied on a rollback.
 *
 * Two paths, the same math: on cpu and wasm a forward runs the fused decode kernels
 * (`../kernels/`) over a static KV cache written in place (`StaticKVCache`), a tenth of the
 * dispatches; on other backends, or after `setFusedKernels(false)`, the trunk's
 * composite `forward` (the one its full-sequence `call` runs) over a growing cache (`KVCache`).
 *
 * Reference: Pope et al., "Efficiently Scaling Transformer Inference" (2022), §2 (KV cache);
 * Stern et al. (2018) §4 for why the decoders need `truncate`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { checkInteger, fail, show } from '../internal/errors.js';
import { modelStopTokens } from '../internal/stop_tokens.js';
import { checkTopK } from '../layers/draft_projection.js';
import { topKOfLogits } from '../layers/inference_fused.js';
import { type InferenceHead, isInferenceHead } from '../layers/inference_head.js';
import type { MultiTokenModel, TopKCandidates, TreeCandidates } from '../decoding/model.js';
import { KVCache } from './cache.js';
import { fusedKernelsAvailable } from '../kernels/registry.js';
import { StaticKVCache } from './static_cache.js';
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
  /**
   * EAGLE-2 tree growth on the device (see `MultiTokenModel.headTree`): present when the head is
   * made of sequential MTP modules (`SequentialMtpHead`), whose children depend on their parent's
   * token; undefined for parallel heads, which dynamic trees rank per depth with
   * {@link CachedTransformer.headTopK}.
   */
  readonly headTree?: (states: tf.Tensor2D, roots: tf.Tensor1D, depth: number, k: number) => TreeCandidates;
  /**
   * The token ids that end a text for this model (see `MultiTokenModel.stopTokens`): `options.stopTokens`,
   * else what the loader recorded on the wrapped model (`loadLlama2c`: BOS and EOS; `loadHfLlama`:
   * `eos_token_id`); undefined for a model no loader saw (e.g. `createTransformer`'s).
   */
  readonly stopTokens?: readonly number[];
  private readonly trunk: TransformerTrunk;
  private readonly head: InferenceHead;
  private readonly composite = new KVCache();
  private readonly static: StaticKVCache;
  private cache: KVCache | StaticKVCache = this.composite;
  private disposed = false;
  private prepared = false;
  /**
   * The parent of each row the last forward appended (−1: the cached prefix; a plain `forward`
   * appends a chain), for `keepRows`; empty once anything else changed the cache.
   */
  private lastParents: readonly number[] = [];

  /**
   * Wraps `model` (not copied: later weight updates are seen; `dispose` leaves it alone).
   * @param model A `LayersModel` from {@link createTransformer}, a loader (`loadLlama2c`, `loadHfLlama`) or `loadTransformer`.
   * @param options `stopTokens`: the ids that end a text for this model (default: those its loader recorded).
   */
  constructor(
    readonly model: LayersModel,
    options: CachedTransformerOptions = {},
  ) {
    const { trunk, head } = findTrunkAndHead(model);
    if (options === null || typeof options !== 'object') fail(TypeError, WHERE, 'options', 'must be an object', options);
    const stopTokens = options.stopTokens === undefined ? modelStopTokens(model) : checkStopTokens(options.stopTokens, head.vocabSize);
    if (stopTokens !== undefined) this.stopTokens = stopTokens;
    this.trunk = trunk;
    this.head = head;
    this.numHeads = head.numHeads;
    this.vocabSize = head.vocabSize;
    this.maxLength = trunk.arch.maxLength;
    this.static = new StaticKVCache(trunk.arch.numLayers, trunk.arch.numKeyValueHeads * trunk.arch.headDim, trunk.arch.maxLength);
    if (head.headTree !== undefined) {
      this.headTree = (states, roots, depth, k) => {
        this.checkLive('headTree');
        return head.headTree!(states, roots, depth, k);
      };
    }
  }

  /**
   * The draft vocabulary of the head (increasing token ids offsets 1…k−1 may propose), or `null`
   * for the whole vocabulary. Set it on the head (`setDraftVocab`) or through the model's config.
   */
  get draftVocab(): readonly number[] | null {
    return this.head.draftVocab ?? null;
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
    const cache = this.cacheForForward('forward');
    const states = cache instanceof StaticKVCache ? this.trunk.stepFused(ids, null, cache) : this.trunk.step(ids, cache);
    this.lastParents = ids.map((_, i) => i - 1); // a chain
    return states;
  }

  /**
   * A tree of new tokens in one forward: token i hangs under token `parents[i]` (an earlier index),
   * or under the last position in the cache when `parents[i]` is −1. Each sits at position
   * `length` + its depth (0 for a child of the cache) and attends to the cache and to its own
   * ancestors only. Appends every token's row; follow with {@link CachedTransformer.keepRows} to
   * keep one root-to-node path. Returns the final hidden states `[n, D]`. Never reads data back.
   */
  forwardTree(tokenIds: readonly number[], parents: readonly number[]): tf.Tensor2D {
    const where = `${WHERE}.forwardTree`;
    const ids = this.checkIds(where, tokenIds);
    if ((!Array.isArray(parents) && !ArrayBuffer.isView(parents)) || (parents as ArrayLike<number>).length !== ids.length) {
      fail(TypeError, where, 'parents', `must be an array of ${ids.length} parent indices (one per token)`, parents);
    }
    const depth: number[] = [];
    Array.from(parents as ArrayLike<number>).forEach((p, i) => {
      if (!Number.isInteger(p) || p < -1 || p >= i) fail(RangeError, where, `parents[${i}]`, `must be an integer in [-1, ${i - 1}] (an earlier token, or -1 for the cached prefix)`, p);
      depth.push(p < 0 ? 0 : depth[p]! + 1);
    });
    const deepest = depth.reduce((a, b) => Math.max(a, b), 0);
    if (this.cache.length + deepest + 1 > this.maxLength) {
      throw new RangeError(`${where}: the deepest token (depth ${deepest}) must fit the context (length ${this.cache.length} + ${deepest + 1} ≤ maxLength = ${this.maxLength}), but it does not.`);
    }
    const cache = this.cacheForForward('forwardTree');
    const links = Array.from(parents as ArrayLike<number>);
    const states = cache instanceof StaticKVCache ? this.trunk.stepFused(ids, links, cache) : this.trunk.stepTree(ids, links, cache);
    this.lastParents = Array.from(parents as ArrayLike<number>);
    return states;
  }

  /**
   * Of the tokens the last `forward`/`forwardTree` appended, keeps exactly `rows` and drops the
   * others from the cache, without copying: `length` becomes the earlier length + `rows.length`.
   * `rows` must be one root-to-node path of that call's tokens (or empty): `rows[0]` hangs under
   * the cached prefix (parent −1) and each next row is a child of the one before, so every kept
   * row attended to exactly the rows kept before it. After a plain `forward`, whose tokens form a
   * chain, that is a prefix `0 … r−1`.
   */
  keepRows(rows: readonly number[]): void {
    const where = `${WHERE}.keepRows`;
    this.checkLive('keepRows');
    if (!Array.isArray(rows)) fail(TypeError, where, 'rows', 'must be an array of row indices', rows);
    const parents = this.lastParents;
    const fed = parents.length;
    if (fed === 0) throw new Error(`${where}: rows are kept of the last forward, but nothing was fed since the cache last changed.`);
    rows.forEach((r, i) => {
      const min = i === 0 ? 0 : rows[i - 1]! + 1;
      if (!Number.isInteger(r) || r < min || r >= fed) fail(RangeError, where, `rows[${i}]`, `must be an integer in [${min}, ${fed - 1}] (increasing, of the last forward's ${fed} tokens)`, r);
      const parent = i === 0 ? -1 : rows[i - 1]!;
      if (parents[r] !== parent) {
        const rule = i === 0 ? "must be a root of the last forward's tree (parent -1: it hangs under the cached prefix)" : `must be a child of rows[${i - 1}] = ${parent} (the kept rows are one root-to-node path)`;
        throw new RangeError(`${where}: rows[${i}] ${rule}, but got ${r}, whose parent is ${parents[r]}.`);
      }
    });
    this.cache.keepLast(fed, rows);
    this.lastParents = [];
  }

  /**
   * The `k` most likely tokens of offsets 0…numOffsets−1 at every row of `states` `[m, D]` and their
   * log-probabilities, `[m, numOffsets, k]` each (rank 0 equals {@link CachedTransformer.headArgmax};
   * −1 ids where the logits hold NaN or ±Infinity). One pass inside a decode; no readback.
   */
  headTopK(states: tf.Tensor2D, numOffsets: number, k: number): TopKCandidates {
    this.checkLive('headTopK');
    if (this.head.headTopK !== undefined) return this.head.headTopK(states, numOffsets, k);
    const vocab = this.head.draftVocab;
    if (vocab !== null && numOffsets > 1) checkTopK(`${WHERE}.headTopK`, k, vocab.length); // draft offsets rank within the draft vocabulary
    const offsets = Array.from({ length: numOffsets }, (_, j) => j);
    return tf.tidy(() => {
      const m = states.shape[0];
      const flat = tf.reshape(this.head.logits(states, offsets), [m * numOffsets, this.vocabSize]) as tf.Tensor2D; // [m·n, V]
      const { ids, logProbs } = topKOfLogits(flat, k);
      return { ids: tf.reshape(ids, [m, numOffsets, k]) as tf.Tensor3D, logProbs: tf.reshape(logProbs, [m, numOffsets, k]) as tf.Tensor3D };
    });
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

  /**
   * Drafting at the accepted tip: the argmax token of offsets 1…n at every row of `states`
   * `[m, D]` within the draft vocabulary, int32 `[m, n]`; `roots` int32 `[m]` is the token the
   * verifier committed after each row (sequential modules chain from it). See
   * `MultiTokenModel.draftArgmax`. No readback.
   */
  draftArgmax(states: tf.Tensor2D, roots: tf.Tensor1D, n: number): tf.Tensor2D {
    this.checkLive('draftArgmax');
    return this.head.draftArgmax(states, roots, n);
  }

  /**
   * The `k` most likely draft tokens of offsets 1…n at every row, ranked within the draft
   * vocabulary, with log-probabilities renormalised over it, `[m, n, k]` each (rank 0 equals
   * {@link CachedTransformer.draftArgmax}). See `MultiTokenModel.draftTopK`. No readback.
   */
  draftTopK(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, k: number): TopKCandidates {
    this.checkLive('draftTopK');
    return this.head.draftTopK(states, roots, n, k);
  }

  /**
   * Logits of offsets 1…n at every row, `[m, n, V]`, −1e30 outside the draft vocabulary;
   * sequential modules feed module j + 1 the token `choose(j, column j's logits)` picks. See
   * `MultiTokenModel.draftLogits`. No readback.
   */
  draftLogits(states: tf.Tensor2D, roots: tf.Tensor1D, n: number, choose?: (column: number, logits: tf.Tensor2D) => tf.Tensor1D): tf.Tensor3D {
    this.checkLive('draftLogits');
    return this.head.draftLogits(states, roots, n, choose);
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
    this.lastParents = [];
  }

  /** Frees the cache; the wrapped model (and its weights) stay usable. */
  dispose(): void {
    this.endDecode();
    this.composite.clear();
    this.static.clear();
    this.lastParents = [];
    this.disposed = true;
  }

  /**
   * The cache a forward appends to: while the sequence is empty, the static one when the fused
   * kernels run on the current backend (cpu, wasm) and the composite one otherwise; after that,
   * the one holding the sequence (the static cache's buffers live on the backend they were made on).
   */
  private cacheForForward(method: string): KVCache | StaticKVCache {
    if (this.cache.length === 0) {
      const next = fusedKernelsAvailable() ? this.static : this.composite;
      if (next !== this.cache) this.cache.clear();
      this.cache = next;
    } else if (this.cache instanceof StaticKVCache && this.cache.backend !== tf.getBackend()) {
      throw new Error(
        `${WHERE}.${method}: the backend changed from '${this.cache.backend}' to '${tf.getBackend()}' while ${this.cache.length} positions were cached by the fused kernels; call truncate(0) first to decode on another backend.`,
      );
    }
    return this.cache;
  }

  private checkLive(where: string): void {
    if (this.disposed) throw new Error(`${WHERE}.${where}: this model was disposed; create a new CachedTransformer.`);
    if (this.trunk.isDisposed) {
      throw new Error(`${WHERE}.${where}: the wrapped LayersModel '${this.model.name}' was disposed (its weights are gone); load or create the model again.`);
    }
  }

  private checkIds(where: string, tokenIds: unknown): number[] {
    this.checkLive(where.slice(WHERE.length + 1));
    const isTyped = ArrayBuffer.isView(tokenIds) && !(tokenIds instanceof DataView);
    if ((!Array.isArray(tokenIds) && !isTyped) || (tokenIds as ArrayLike<number>).length === 0) {
      fail(TypeError, where, 'tokenIds', 'must be a non-empty array (or typed array) of token ids', tokenIds);
    }
    const ids = Array.from(tokenIds as ArrayLike<number>);
    const bad = ids.findIndex((t) => !Number.isInteger(t) || t < 0 || t >= this.vocabSize);
    if (bad >= 0) {
      throw new RangeError(`${where}: tokenIds[${bad}] must be an integer in [0, vocabSize = ${this.vocabSize}), but got ${show(ids[bad])}.`);
    }
    return ids;
  }

  private checkTokens(tokenIds: unknown): readonly number[] {
    const ids = this.checkIds(`${WHERE}.forward`, tokenIds);
    if (this.cache.length + ids.length > this.maxLength) {
      throw new RangeError(
        `${WHERE}.forward: tokenIds must fit the context (length ${this.cache.length} + ${ids.length} new ≤ maxLength = ${this.maxLength}), but got ${ids.length} tokens.`,
      );
    }
    return ids;
  }
}

/** Factory of {@link CachedTransformer}. */
export function cachedTransformer(model: LayersModel, options?: CachedTransformerOptions): CachedTransformer {
  return new CachedTransformer(model, options);
}

/** Options of {@link CachedTransformer}. */
export interface CachedTransformerOptions {
  /** The token ids that end a text for this model (default: those its loader recorded, if any). */
  stopTokens?: readonly number[];
}

/** `ids` checked (integers in [0, vocabSize)) and frozen. */
function checkStopTokens(ids: unknown, vocabSize: number): readonly number[] {
  if (!Array.isArray(ids)) fail(TypeError, WHERE, 'options.stopTokens', 'must be an array of token ids', ids);
  ids.forEach((id, i) => checkInteger(WHERE, `options.stopTokens[${i}]`, id, 0, vocabSize - 1));
  return Object.freeze([...(ids as number[])]);
}
