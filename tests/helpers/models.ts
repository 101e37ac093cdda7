/** Shared setup of the reference-model tests: the cpu backend and a tiny transformer. */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { expect } from 'vitest';
export { useCpu } from './backend.js';
import { type CachedTransformer, CachedTransformer as CachedTransformerClass, createTransformer, type TransformerConfig } from '../../src/models/index.js';

/** A transformer small enough for unit tests, with non-trivial heads (residual heads start as identity). */
export function tinyTransformer(config: TransformerConfig = {}): LayersModel {
  const model = createTransformer({ vocabSize: 32, maxLength: 24, hiddenSize: 16, numLayers: 2, numAttentionHeads: 2, mlpRatio: 2, mtpHeads: 3, seed: 7, ...config });
  // perturb every weight so the offset heads differ from offset 0 and nothing is symmetric
  const weights = model.getWeights();
  const perturbed = weights.map((w, i) => tf.tidy(() => tf.add(w, tf.randomNormal(w.shape, 0, 0.2, 'float32', 100 + i))));
  model.setWeights(perturbed); // copies the values into the variables
  tf.dispose(perturbed);
  return model;
}

/** Full-sequence logits `[n, k, V]` of `ids` from the layers graph (no cache). */
export function uncachedLogits(model: LayersModel, ids: number[]): tf.Tensor3D {
  return tf.tidy(() => tf.squeeze(model.predict(tf.tensor2d([ids], [1, ids.length], 'int32')) as tf.Tensor, [0]) as tf.Tensor3D);
}

export function expectClose(a: tf.Tensor, b: tf.Tensor, tolerance = 1e-4): void {
  expect(a.shape).toEqual(b.shape);
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);
  expect(diff).toBeLessThan(tolerance);
}

/** Feeds `ids` to `cached` in chunks of `chunk` and returns every position's logits `[n, k, V]`. */
export function cachedLogits(cached: CachedTransformer, ids: number[], chunk: number): tf.Tensor3D {
  const offsets = Array.from({ length: cached.numHeads }, (_, j) => j);
  const parts: tf.Tensor3D[] = [];
  for (let i = 0; i < ids.length; i += chunk) {
    const states = cached.forward(ids.slice(i, i + chunk)); // [n, D]
    parts.push(cached.headLogits(states, offsets)); // [n, k, V]
    states.dispose();
  }
  const all = tf.concat(parts, 0);
  tf.dispose(parts);
  return all;
}

/** Next-token logits `[n·V]` (offset 0) of `tokens` through a fresh KV cache of `model`. */
export async function offset0Logits(model: LayersModel, tokens: number[]): Promise<Float32Array> {
  const cached = new CachedTransformerClass(model);
  const states = cached.forward(tokens); // [n, D]
  const logits = tf.tidy(() => tf.reshape(cached.headLogits(states, [0]), [tokens.length, cached.vocabSize])); // [n, V]
  try {
    return Float32Array.from(await logits.data());
  } finally {
    tf.dispose([states, logits]);
    cached.dispose();
  }
}
