/** Test setup: the cpu backend, chosen by the test (the library never chooses one). */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
export { useCpu } from '../../helpers/backend.js';

/** Runs `fn` and asserts the number of live tensors is the same afterwards (whether it throws or not). */
export async function expectNoLeak<T>(fn: () => Promise<T>): Promise<T> {
  const before = tf.memory().numTensors;
  try {
    return await fn();
  } finally {
    expect(tf.memory().numTensors).toBe(before);
  }
}
