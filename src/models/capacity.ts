/**
 * What a backend can hold: a loader compares a model's float32 weights with it before it reads
 * any weight, so a model too large for the running backend fails at once with its size, instead
 * of after minutes of downloading with an out-of-memory abort. Only bounds that are fixed are
 * known here: the wasm backend's heap is 32-bit addressed (at most 4 GiB less one 64 KiB page,
 * the `getHeapMax` of its emscripten build); the other backends have no fixed bound.
 *
 * The library never chooses the backend: it only reads which one runs.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Most bytes each backend with a fixed bound can hold (wasm32: 2³² bytes less one 64 KiB page). */
export const BACKEND_MEMORY_BYTES: Readonly<Record<string, number>> = { wasm: 2 ** 32 - 2 ** 16 };

/**
 * Throws a `RangeError` naming `where`, the backend and both sizes unless `bytes` of float32
 * weights fit the running backend (the weights alone: the KV cache and the activations need room too).
 */
export function checkFitsBackend(where: string, bytes: number): void {
  const backend = tf.getBackend();
  const limit = BACKEND_MEMORY_BYTES[backend];
  if (limit !== undefined && bytes > limit) {
    throw new RangeError(`${where}: the model's float32 weights must fit the ${backend} backend's memory of ${limit} bytes, but they take ${bytes} bytes (${(bytes / 2 ** 30).toFixed(1)} GiB).`);
  }
}
