/**
 * The models the browser suite runs, built by the same code in Node (the reference, cpu
 * backend) and in the page (each browser backend), with the same fixed weights:
 *
 * - `tiny`: token ids [batch, T] → Embedding → Dense(tanh) → MultiTokenHead (linear offset
 *   heads, untied shared unembedding) → [batch, T, k, V]. Position-wise, so trivially causal.
 * - `transformer`: the reference `createTransformer` (attention, tied unembedding, residual heads).
 *
 * Weights are not the layers' initializers: `fixedWeights` draws every tensor from a seeded
 * generator with a scale that spreads the logits (init-scale weights give near-ties, and a
 * near-tie argmax may differ between float implementations). Node sends them to the page as
 * plain arrays.
 */
import * as tf from '@tensorflow/tfjs-core';
import { input, layers, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { uniformStream } from '../../../src/decoding/random.js';
import { multiTokenHead, registerMtpLayers } from '../../../src/layers/index.js';
import { createTransformer, type TransformerConfig } from '../../../src/models/index.js';

/** The tiny model's shape. */
export interface TinyConfig {
  /**
   * Fixed input length T: `fromLayersModel` then pads every call to [n, T], so the shapes never
   * change and WebGL/WebGPU compile their programs once (SwiftShader compiles slowly).
   */
  length: number;
  vocabSize: number;
  hidden: number;
  numHeads: number;
}

/** Embedding → Dense(tanh) → MultiTokenHead. */
export function buildTiny(c: TinyConfig): LayersModel {
  registerMtpLayers();
  const ids = input({ shape: [c.length], dtype: 'int32', name: 'ids' }); // [B, T]
  let x = layers.embedding({ inputDim: c.vocabSize, outputDim: c.hidden, name: 'emb' }).apply(ids) as SymbolicTensor; // [B, T, D]
  x = layers.dense({ units: c.hidden, activation: 'tanh', name: 'trunk' }).apply(x) as SymbolicTensor; // [B, T, D]
  const head = multiTokenHead({ numHeads: c.numHeads, vocabSize: c.vocabSize, headKind: 'linear', name: 'head' });
  const logits = head.apply(x) as SymbolicTensor; // [B, T, k, V]
  return functionalModel({ inputs: ids, outputs: logits, name: 'tiny_mtp' });
}

/** The reference transformer (untrained; give it `fixedWeights`). */
export function buildTransformer(c: TransformerConfig): LayersModel {
  return createTransformer(c);
}

/** Deterministic values in about [-1.5, 1.5]·scale, mean 0 (a sum of three uniforms from the library's stream). */
function seeded(n: number, seed: number, scale: number): number[] {
  const next = uniformStream(Math.imul(seed + 1, 0x9e3779b1) ^ 0x5bd1e995);
  return Array.from({ length: n }, () => (next() + next() + next() - 1.5) * scale);
}

/** How `fixedWeights` draws. */
export interface FixedWeightOptions {
  /** Multiplies every matrix (default 1.5): larger spreads the logits further apart. */
  gain?: number;
  /**
   * Offset heads' square kernels ≈ identity (+ small noise) instead of random: each offset then
   * drafts roughly what offset 0 predicts, so some drafts are kept and some rejected.
   */
  offsetsNearIdentity?: boolean;
}

/**
 * One array per `model.weights` entry, in order. Norm gains ≈ 1, biases and norm shifts small,
 * embedding tables O(1), matrices O(1/√fan-in)·gain so that activations and logits stay O(1–5).
 */
export function fixedWeights(model: LayersModel, seed: number, options: FixedWeightOptions = {}): number[][] {
  const { gain = 1.5, offsetsNearIdentity = false } = options;
  return model.weights.map((w, i) => {
    const shape = w.shape as number[];
    const n = shape.reduce((a, b) => a * b, 1);
    const name = w.name.toLowerCase();
    if (shape.length === 1) {
      const gain = name.includes('gamma') || /norm\.weight$/.test(name); // a norm's scale (the trunk names it `….norm.weight`)
      return gain ? seeded(n, seed + i, 0.2).map((v) => 1 + v) : seeded(n, seed + i, 0.1);
    }
    if (name.includes('embeddings')) return seeded(n, seed + i, 1);
    if (offsetsNearIdentity && /offset\d+\/kernel/.test(name) && shape[0] === shape[1]) {
      return seeded(n, seed + i, 0.05).map((v, k) => v + (Math.floor(k / shape[1]) === k % shape[1] ? 1 : 0)); // I + noise
    }
    const fanIn = name.includes('unembedding') ? shape[1] : shape[0]; // the unembedding kernel is [V, D]
    return seeded(n, seed + i, gain / Math.sqrt(fanIn));
  });
}

/** Sets `values` (from `fixedWeights`) as the model's weights. */
export function setFixedWeights(model: LayersModel, values: number[][]): void {
  if (values.length !== model.weights.length) {
    throw new Error(`setFixedWeights: the model has ${model.weights.length} weights, but got ${values.length} arrays.`);
  }
  const tensors = model.weights.map((w, i) => tf.tensor(values[i], w.shape as number[], 'float32'));
  model.setWeights(tensors);
  tf.dispose(tensors);
}
