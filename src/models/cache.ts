/**
 * The KV cache of one decode (batch size 1; `TransformerTrunk.stepBatch` fills one with B
 * sequences of one length, never rolled back): per block, one keys and one values tensor
 * `[1, Hkv, rows, hs]`, `tf.keep`-ed, plus which rows are live. A rollback (`truncate`) only moves
 * the cursor: the rejected rows stay in the buffer, masked out of attention (see
 * `attentionMask`), until a later forward compacts them away — one gather per tensor once
 * `COMPACT_AT` rows are dead, never a slice per rollback. The cache grows with the context.
 *
 * Reference: Pope et al., "Efficiently Scaling Transformer Inference" (2022), §2 (KV cache);
 * Leviathan et al. (2023) / Stern et al. (2018) for why speculative decoders roll back.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KeyValue } from './ops.js';

/** Dead rows tolerated before a forward compacts them (each costs attention work until then). */
export const COMPACT_AT = 16;

/** A KV cache with cursor rollback. @internal */
export class KVCache {
  private blocks: KeyValue[] = [];
  private live: boolean[] = []; // per buffer row: still part of the sequence?
  private count = 0; // live rows = the sequence length

  /** Number of positions in the sequence (live rows). */
  get length(): number {
    return this.count;
  }

  /** Rows in the buffer, live or dead. */
  get rows(): number {
    return this.live.length;
  }

  /** Whether each buffer row is live, in buffer order. */
  visible(): readonly boolean[] {
    return this.live;
  }

  /** Keys and values of block `i` (all buffer rows), or null when empty. */
  past(i: number): KeyValue | null {
    return this.blocks[i] ?? null;
  }

  /** Drops dead rows (one gather per tensor) when there are at least `COMPACT_AT` of them. */
  compact(): void {
    if (this.live.length - this.count < COMPACT_AT) return;
    const keep = this.live.flatMap((isLive, j) => (isLive ? [j] : []));
    const next = tf.tidy(() => {
      const idx = tf.tensor1d(keep, 'int32'); // [count]
      return this.blocks.map(({ keys, values }) => ({
        keys: tf.keep(tf.gather(keys, idx, 2)) as tf.Tensor4D, // [1, Hkv, count, hs]
        values: tf.keep(tf.gather(values, idx, 2)) as tf.Tensor4D,
      }));
    });
    this.replace(next);
    this.live = new Array<boolean>(this.count).fill(true);
  }

  /** Takes ownership of every block's past + new keys/values (T new live rows at the end). */
  commit(next: KeyValue[], T: number): void {
    this.replace(next.map(({ keys, values }) => ({ keys: tf.keep(keys), values: tf.keep(values) })));
    for (let t = 0; t < T; t++) this.live.push(true);
    this.count += T;
  }

  /**
   * Of the `T` rows the last `commit` appended (the last T buffer rows), keeps `rows` (increasing
   * indices into those T) and marks the rest dead: a tree step keeps its accepted path this way,
   * without copying. The live rows stay in buffer order, which is the sequence order.
   */
  keepLast(T: number, rows: readonly number[]): void {
    const base = this.live.length - T;
    const kept = new Set(rows);
    for (let t = 0; t < T; t++) if (!kept.has(t)) this.live[base + t] = false;
    this.count -= T - kept.size;
  }

  /** Keeps the first `length` positions; the rest become dead rows (no tensor is touched, except freeing all at 0). */
  truncate(length: number): void {
    if (length === 0) {
      this.clear();
      return;
    }
    let seen = 0;
    for (let j = 0; j < this.live.length; j++) {
      if (this.live[j] && ++seen > length) this.live[j] = false;
    }
    this.count = length;
  }

  /** Frees every tensor. */
  clear(): void {
    this.replace([]);
    this.live = [];
    this.count = 0;
  }

  private replace(next: KeyValue[]): void {
    for (const { keys, values } of this.blocks) tf.dispose([keys, values]); // `next` is always new tensors (concat or gather results)
    this.blocks = next;
  }
}
