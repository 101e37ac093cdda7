/**
 * The one leak check of the suite: the number of live tensors is the same before and after a
 * public call, whether it returns (`expectNoLeak`) or throws (`expectThrowNoLeak`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/**
 * Tokens of the long leak decodes (a tensor count taken after every step): enough for the static
 * KV cache to grow twice, the second time capped at the context limit (128 → 256 → maxLength rows
 * with `maxLength: LONG_TOKENS + 100`), and for the composite cache to compact many times, so a
 * tensor kept per step, per growth or per compaction shows in the count.
 */
export const LONG_TOKENS = 300;

/**
 * Runs `fn` (sync or async), disposes the tensors of what it returned (the caller's to free),
 * and asserts that no other tensor was left behind. Returns `fn`'s value; its tensors are
 * disposed by then, so read what you need inside `fn`. When `fn` throws (a failed assertion
 * inside it, say), that error is the one reported, and the count is not asserted: the tensors of
 * an interrupted `fn` would hide the real failure. A call that is meant to throw is checked by
 * {@link expectThrowNoLeak}.
 */
export async function expectNoLeak<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn(); // a throw propagates as it is
  if (out !== undefined) tf.dispose(out as unknown as tf.TensorContainer);
  expect(tf.memory().numTensors, 'live tensors after the call').toBe(before);
  return out;
}

/** Asserts `fn` throws (or rejects) with a message containing `message`, leaving no tensor behind. */
export async function expectThrowNoLeak(fn: () => unknown, message: string | RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  await expect(async () => fn()).rejects.toThrow(message);
  expect(tf.memory().numTensors).toBe(before);
}

/**
 * The most tensor bytes alive at any moment of synchronous `fn`, above those alive before it:
 * every tensor (weights included) passes through the engine's `trackTensor`, which is watched
 * for the duration. For "fails before allocating" checks, where a leak check alone would miss a
 * large allocation that was freed again.
 */
export function peakBytesDuring(fn: () => void): number {
  const watch = watchPeakBytes();
  try {
    fn();
  } finally {
    watch.stop();
  }
  return watch.peak();
}

/** {@link peakBytesDuring} of an async `fn` (rejections are swallowed: pair it with a check of the error). */
export async function peakBytesDuringAsync(fn: () => Promise<unknown>): Promise<number> {
  const watch = watchPeakBytes();
  try {
    await fn().catch(() => undefined);
  } finally {
    watch.stop();
  }
  return watch.peak();
}

/** Watches the engine's `trackTensor` for the most tensor bytes alive above those alive now. */
function watchPeakBytes(): { peak: () => number; stop: () => void } {
  const engine = tf.engine() as unknown as { trackTensor: (...args: unknown[]) => void };
  const track = engine.trackTensor;
  const start = tf.memory().numBytes;
  let peak = start;
  engine.trackTensor = function (this: unknown, ...args: unknown[]) {
    track.apply(this, args);
    peak = Math.max(peak, tf.memory().numBytes);
  };
  return {
    peak: () => peak - start,
    stop: () => void delete (engine as Partial<typeof engine>).trackTensor, // back to the prototype's
  };
}
