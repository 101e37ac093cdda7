/**
 * `topk` along the last axis of a 2-D tensor that stays on the device on every backend (tree
 * drafting ranks its candidates with it). tfjs-backend-webgl's `TopK` kernel reads its input back
 * synchronously and sorts on the CPU whenever the last dimension is below
 * `TOPK_LAST_DIM_CPU_HANDOFF_SIZE_THRESHOLD` (100,000 by default, so every vocabulary here) or `k` is above `TOPK_K_CPU_HANDOFF_THRESHOLD`:
 * one blocking GPU readback per tree step. In exactly that case this helper ranks with `k` passes
 * of `argMax` instead, masking each taken column to −Infinity before the next pass; everywhere
 * else (cpu and wasm sort on the CPU anyway, webgpu has a GPU `TopK`) it is plain `tf.topk`.
 *
 * Order and ties as `tf.topk` (checked on cpu and wasm): descending, equal values by lower index
 * first, so rank 0 is `tf.argMax`'s id. The two paths agree exactly on rows of finite values. A row
 * holding NaN or ±Infinity may rank differently (still `k` ids in [0, V), values read at those
 * ids); every caller reports such a row as broken (−1 ids or the non-finite error) before using
 * its ranks. Internal: exported from no public entry point.
 *
 * Reference: tfjs-backend-webgl `kernels/TopK.ts` (the hand-off condition).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkInteger } from './errors.js';

/** Whether the active backend's `TopK` would read `[n, lastDim]` back to the CPU for this `k`. */
export function topkHandsOffToCpu(lastDim: number, k: number): boolean {
  if (tf.getBackend() !== 'webgl') return false;
  const flag = (name: string): number | null => {
    try {
      return tf.env().getNumber(name);
    } catch {
      return null; // not registered: the webgl backend always registers it, so this is a foreign build
    }
  };
  const dims = flag('TOPK_LAST_DIM_CPU_HANDOFF_SIZE_THRESHOLD');
  const ks = flag('TOPK_K_CPU_HANDOFF_THRESHOLD');
  // an unknown threshold is taken as "hands off": the device path is exact on finite rows either way
  return dims === null || ks === null || lastDim < dims || k > ks;
}

/**
 * The `k` largest values of each row of float32 `x` `[n, V]` and their int32 column indices, `[n, k]`
 * each, descending, ties by lower index. `onDevice` (default: whether the backend's `TopK` would
 * hand off to the CPU) picks the argMax passes over `tf.topk`; tests force it. The caller owns the
 * result; intermediates are freed.
 */
export function topk2d(x: tf.Tensor2D, k: number, onDevice = topkHandsOffToCpu(x.shape[1], k)): { values: tf.Tensor2D; indices: tf.Tensor2D } {
  checkInteger('topk2d', 'k', k, 1, x.shape[1]);
  if (!onDevice) return tf.topk(x, k) as { values: tf.Tensor2D; indices: tf.Tensor2D };
  return tf.tidy(() => {
    const V = x.shape[1];
    const columns = tf.reshape(tf.range(0, V, 1, 'int32'), [1, V]); // [1, V]
    const none = tf.scalar(-Infinity);
    const picks: tf.Tensor1D[] = [];
    let rest: tf.Tensor2D = x; // [n, V] with the columns taken so far at −Infinity
    for (let r = 0; r < k; r++) {
      const id = tf.argMax(rest, 1) as tf.Tensor1D; // [n] int32, lowest index among equal maxima
      picks.push(id);
      if (r + 1 < k) rest = tf.where<tf.Tensor>(tf.equal(columns, tf.expandDims(id, 1)), none, rest) as tf.Tensor2D; // [n, V]
    }
    const indices = tf.stack(picks, 1) as tf.Tensor2D; // [n, k]
    // x[i, indices[i, r]] through the flattened rows (gather with batchDims gave wrong values on wasm, [2, 6] with k = 3)
    const n = x.shape[0];
    const flat = tf.add(indices, tf.mul(tf.reshape(tf.range(0, n, 1, 'int32'), [n, 1]), tf.scalar(V, 'int32'))); // [n, k]
    const values = tf.reshape(tf.gather(tf.reshape(x, [n * V]), tf.reshape(flat, [n * k])), [n, k]) as tf.Tensor2D; // [n, k]
    return { values, indices };
  });
}
