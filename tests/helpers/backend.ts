/** The cpu backend for Node tests, chosen by the test (the library never chooses one) and checked. */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';

/** Selects the cpu backend (the one with every gradient the tests need) and asserts it took. */
export async function useCpu(): Promise<void> {
  await tf.setBackend('cpu');
  await tf.ready();
  expect(tf.getBackend()).toBe('cpu');
}
