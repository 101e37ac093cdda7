/**
 * The static KV cache of the fused decode path (batch size 1): per block one keys and one values
 * buffer `[Hkv·hs, capacity]` (a lane per head dimension, positions along it, so attention's
 * products over positions are contiguous) that the cached-attention kernel writes in place. Nothing is re-concatenated per step: a forward writes its rows after the ones in use, a
 * rollback moves the cursor back (the next forward overwrites), and a tree step keeps its path
 * by moving those rows down over the rejected ones — so the rows in use are always the sequence,
 * contiguous, and attention never sees a dead row. Capacity grows by doubling (one copy per block)
 * up to the context limit, so a long context costs memory only when it is used.
 *
 * Reference: Pope et al., "Efficiently Scaling Transformer Inference" (2022), §2 (KV cache);
 * llama2.c's run.c (`key_cache`/`value_cache` preallocated to `seq_len`, written at `pos`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { kernelMemory } from '../kernels/registry.js';

/** Rows a cache starts with (then doubling, capped at the context limit). */
const STATIC_CACHE_INITIAL_ROWS = 128;

/** A KV cache preallocated per block and written in place (see the module header). @internal */
export class StaticKVCache {
  private buffers: { keys: tf.Tensor2D; values: tf.Tensor2D }[] = [];
  private matrices = new Map<tf.Tensor, Derived<tf.Tensor3D>>(); // first part → [1, in, Σ out]
  private vectors = new Map<tf.Tensor, Derived<tf.Tensor1D>>(); // first part → the parts end to end
  private capacity = 0;
  private count = 0;
  private backendName: string | null = null;

  /**
   * @param numLayers Blocks (one keys and one values buffer each).
   * @param width Lanes per buffer, Hkv·hs (the floats of one position).
   * @param maxRows The context limit: capacity grows past it only for a tree step's rows, which hold more nodes than positions.
   */
  constructor(
    readonly numLayers: number,
    readonly width: number,
    readonly maxRows: number,
  ) {}

  /** Number of positions in the sequence (the rows in use). */
  get length(): number {
    return this.count;
  }

  /** Rows allocated per buffer. */
  get rows(): number {
    return this.capacity;
  }

  /** The backend the buffers live on (null while none is allocated). */
  get backend(): string | null {
    return this.backendName;
  }

  /** Block `i`'s keys and values buffers. Call {@link StaticKVCache.reserve} first. */
  block(i: number): { keys: tf.Tensor2D; values: tf.Tensor2D } {
    return this.buffers[i]!;
  }

  /** Makes room for `rows` rows in every buffer (allocating, or doubling with a copy of the rows in use). */
  reserve(rows: number): void {
    if (rows <= this.capacity) return;
    let next = Math.max(this.capacity, Math.min(STATIC_CACHE_INITIAL_ROWS, this.maxRows));
    while (next < rows) next *= 2;
    next = Math.min(next, Math.max(this.maxRows, rows)); // a tree step may hold more rows than positions for a moment
    const grown = tf.tidy(() =>
      Array.from({ length: this.numLayers }, (_, i) => {
        const old = this.buffers[i];
        const grow = (t: tf.Tensor2D | undefined): tf.Tensor2D =>
          tf.keep(t === undefined ? tf.zeros([this.width, next]) : tf.concat([t, tf.zeros([this.width, next - this.capacity])], 1)) as tf.Tensor2D;
        return { keys: grow(old?.keys), values: grow(old?.values) };
      }),
    );
    this.release();
    this.buffers = grown;
    this.capacity = next;
    this.backendName = tf.getBackend();
  }

  /** Records `T` rows written after the ones in use (by the attention kernels of every block). */
  commit(T: number): void {
    this.count += T;
  }

  /**
   * Of the `T` rows the last forward appended, keeps `rows` (increasing indices into those T),
   * moving each down to follow the one before: the kept rows become the end of the sequence,
   * in order. Rows moved: at most T per buffer, in place.
   */
  keepLast(T: number, rows: readonly number[]): void {
    const base = this.count - T;
    const moves = rows.map((r, i) => [base + r, base + i] as const).filter(([from, to]) => from !== to);
    if (moves.length > 0) {
      const memory = kernelMemory(tf.backend());
      if (memory === null) throw new Error(`StaticKVCache.keepLast: the ${tf.getBackend()} backend has no cpu or wasm memory to move rows in (the cache was built on ${this.backendName}).`);
      const cap = this.capacity;
      for (const { keys, values } of this.buffers) {
        for (const buffer of [keys, values]) {
          const view = memory.view(buffer);
          for (let lane = 0; lane < this.width; lane++) for (const [from, to] of moves) view[lane * cap + to] = view[lane * cap + from]!;
        }
      }
    }
    this.count = base + rows.length;
  }

  /** Keeps the first `length` positions (moves the cursor; frees every buffer at 0). */
  truncate(length: number): void {
    if (length === 0) this.clear();
    else this.count = length;
  }

  /**
   * The weights `parts` (each `[in, out_i]`) side by side as `[1, in, Σ out_i]`, the operand the
   * matmul kernel takes: for one part a view sharing its memory (so the wasm backend's packed copy
   * is reused), for several a copy (q|k|v or gate|up: one matmul instead of several). Made once
   * per sequence, remade when a part was assigned since; freed with the buffers.
   */
  matrix(parts: readonly tf.Tensor2D[]): tf.Tensor3D {
    return derive(this.matrices, parts, () => {
      const joined = parts.length === 1 ? parts[0]! : tf.concat(parts as tf.Tensor2D[], 1);
      return tf.reshape(joined, [1, ...joined.shape]) as tf.Tensor3D;
    });
  }

  /** The biases `parts` end to end (one part: itself, no copy), cached like {@link StaticKVCache.matrix}. */
  vector(parts: readonly tf.Tensor1D[]): tf.Tensor1D {
    if (parts.length === 1) return parts[0]!;
    return derive(this.vectors, parts, () => tf.concat(parts as tf.Tensor1D[], 0));
  }

  /** Frees every buffer. */
  clear(): void {
    this.release();
    for (const cache of [this.matrices, this.vectors]) {
      for (const { value } of cache.values()) value.dispose();
      cache.clear();
    }
    this.capacity = 0;
    this.count = 0;
    this.backendName = null;
  }

  private release(): void {
    for (const { keys, values } of this.buffers) tf.dispose([keys, values]);
    this.buffers = [];
  }
}

/** A tensor made from others, and the memory of each as it was then. */
interface Derived<T extends tf.Tensor> {
  sources: tf.DataId[];
  value: T;
}

/** `cache`'s entry for `parts`, made by `make` (kept) when missing or when a part's memory changed (an assign). */
function derive<T extends tf.Tensor>(cache: Map<tf.Tensor, Derived<T>>, parts: readonly tf.Tensor[], make: () => T): T {
  const entry = cache.get(parts[0]!);
  if (entry !== undefined && entry.sources.length === parts.length && entry.sources.every((id, i) => id === parts[i]!.dataId)) return entry.value;
  entry?.value.dispose();
  const value = tf.keep(tf.tidy(make));
  cache.set(parts[0]!, { sources: parts.map((p) => p.dataId), value });
  return value;
}
