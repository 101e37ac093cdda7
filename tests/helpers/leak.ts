/**
 * The one leak check of the suite: the number of live tensors is the same before and after a
 * public call, whether it returns, throws or is aborted.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/**
 * Runs `fn` (sync or async), disposes the tensors of what it returned (the caller's to free),
 * and asserts that no other tensor was left behind — also when `fn` throws. Returns `fn`'s
 * value; its tensors are disposed by then, so read what you need inside `fn`.
 */
export async function expectNoLeak<T>(fn: () => T | Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  let out: T | undefined;
  try {
    out = await fn();
    return out;
  } finally {
    if (out !== undefined) tf.dispose(out as unknown as tf.TensorContainer);
    expect(tf.memory().numTensors).toBe(before);
  }
}

/** Asserts `fn` throws (or rejects) with a message containing `message`, leaving no tensor behind. */
export async function expectThrowNoLeak(fn: () => unknown, message: string | RegExp): Promise<void> {
  const before = tf.memory().numTensors;
  await expect(async () => fn()).rejects.toThrow(message);
  expect(tf.memory().numTensors).toBe(before);
}
