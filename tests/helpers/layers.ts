/**
 * Test fixtures for the layer tests: the cpu backend, tiny models (token ids → Embedding →
 * causal trunk → MultiTokenHead), in-memory save/load, randomised weights and a leak check.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { expect } from 'vitest';
export { useCpu } from '../helpers/backend.js';
import { multiTokenHead, type MultiTokenHeadArgs } from '../../src/index.js';

/** Runs `fn` and asserts it leaves no tensor behind. */
export function expectNoLeak<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const out = fn();
  tf.dispose(out as tf.TensorContainer);
  expect(tf.memory().numTensors).toBe(before);
  return out;
}

/** Asserts `fn` throws an error whose message contains `message`, leaving no tensor behind. */
export function expectThrowNoLeak(fn: () => unknown, message: string): void {
  const before = tf.memory().numTensors;
  expect(fn).toThrow(message);
  expect(tf.memory().numTensors).toBe(before);
}

/** Overwrites every weight of `layer` with seeded normal noise (so offsets differ and identity starts do not hide bugs). */
export function randomizeWeights(layer: { weights: tfl.LayerVariable[] }, seed = 1, stddev = 0.3): void {
  layer.weights.forEach((w, i) => {
    const value = tf.randomNormal(w.shape as number[], 0, stddev, 'float32', seed + i);
    w.write(value);
    value.dispose();
  });
}

/** Options of {@link tinyModel}. */
export interface TinyModelOptions extends Partial<MultiTokenHeadArgs> {
  /** Hidden size. */
  hidden?: number;
  /** Whether the head is tied to the embedding. */
  tied?: boolean;
}

/** A tiny causal model: ids [B, T] → Embedding('tok_emb') → causal conv (width 4) → Dense(tanh) → MultiTokenHead. */
export function tinyModel(o: TinyModelOptions = {}): { model: tfl.LayersModel; embedding: tfl.layers.Layer; head: ReturnType<typeof multiTokenHead>; trunk: tfl.layers.Layer[] } {
  const vocabSize = o.vocabSize ?? 20;
  const hidden = o.hidden ?? 16;
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const embedding = tfl.layers.embedding({ inputDim: vocabSize, outputDim: hidden, name: 'tok_emb' });
  // tfjs-layers 4.22 has no 'causal' conv1d padding: pad 3 steps on the left, then a 'valid' [4, 1] conv2d.
  const toImage = tfl.layers.reshape({ targetShape: [-1, 1, hidden] });
  const leftPad = tfl.layers.zeroPadding2d({ padding: [[3, 0], [0, 0]] });
  const conv = tfl.layers.conv2d({ filters: hidden, kernelSize: [4, 1], padding: 'valid', activation: 'relu', name: 'trunk_conv' });
  const toSequence = tfl.layers.reshape({ targetShape: [-1, hidden] });
  const dense = tfl.layers.dense({ units: hidden, activation: 'tanh', name: 'trunk_dense' });
  let h = embedding.apply(ids) as tfl.SymbolicTensor; // [B, T, D]
  h = leftPad.apply(toImage.apply(h)) as tfl.SymbolicTensor; // [B, T+3, 1, D]
  h = toSequence.apply(conv.apply(h)) as tfl.SymbolicTensor; // [B, T, D], position t sees t-3…t only
  h = dense.apply(h) as tfl.SymbolicTensor; // [B, T, D]
  const { tied, hidden: _h, ...headArgs } = o;
  const head = multiTokenHead({ numHeads: 3, ...headArgs, vocabSize, ...(tied ? { tiedTo: embedding } : {}), name: 'mtp_head' });
  const logits = head.apply(h) as tfl.SymbolicTensor; // [B, T, k, V]
  return { model: tfl.model({ inputs: ids, outputs: logits }), embedding, head, trunk: [embedding, conv, dense] };
}

/** Saves `model` to memory and returns the artifacts. */
export async function saveToMemory(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return artifacts!;
}

/** Loads a model from in-memory artifacts. */
export function loadFromMemory(artifacts: tf.io.ModelArtifacts): Promise<tfl.LayersModel> {
  return tfl.loadLayersModel(tf.io.fromMemory(artifacts));
}
