/**
 * The readback counter of the decoder tests: how often `fn` reads tensors back, asynchronously
 * (`data()`) and synchronously (`dataSync()` / `arraySync()`, which stall WebGL/WebGPU and must
 * never run in a decode loop). Patches `tf.Tensor.prototype` for the duration of `fn` only.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Runs `fn` and returns its value with the number of async and sync readbacks it made. */
export async function countReadbacks<T>(fn: () => Promise<T>): Promise<{ value: T; reads: number; syncReads: number }> {
  const proto = tf.Tensor.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const originals = { data: proto.data, dataSync: proto.dataSync, arraySync: proto.arraySync };
  let reads = 0;
  let syncReads = 0;
  const counted = (original: (...a: unknown[]) => unknown, count: () => void) =>
    function (this: tf.Tensor, ...a: unknown[]) {
      count();
      return original.apply(this, a);
    };
  proto.data = counted(originals.data, () => reads++);
  proto.dataSync = counted(originals.dataSync, () => syncReads++);
  proto.arraySync = counted(originals.arraySync, () => syncReads++);
  try {
    return { value: await fn(), reads, syncReads };
  } finally {
    Object.assign(proto, originals);
  }
}
