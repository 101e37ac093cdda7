/**
 * Layer fixtures shared by the layer and training tests: tiny models (token ids → Embedding →
 * causal trunk → MultiTokenHead), in-memory save/load and seeded random weights. Leak checks
 * are tests/helpers/leak.ts', the backend is tests/helpers/backend.ts'.
 */
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { multiTokenHead, type MultiTokenHeadArgs } from '../../src/index.js';

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
  /** Seed of every random initializer of the trunk (and of an untied unembedding), so runs repeat exactly. Default 1. */
  seed?: number;
}

/** A tiny causal model: ids [B, T] → Embedding('tok_emb') → causal conv (width 4) → Dense(tanh) → MultiTokenHead. */
export function tinyModel(o: TinyModelOptions = {}): { model: tfl.LayersModel; embedding: tfl.layers.Layer; head: ReturnType<typeof multiTokenHead>; trunk: tfl.layers.Layer[] } {
  const vocabSize = o.vocabSize ?? 20;
  const hidden = o.hidden ?? 16;
  const ids = tfl.input({ shape: [null], dtype: 'int32' });
  const seed = o.seed ?? 1;
  const glorot = (i: number) => tfl.initializers.glorotUniform({ seed: seed + i });
  const embedding = tfl.layers.embedding({ inputDim: vocabSize, outputDim: hidden, name: 'tok_emb', embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.05, maxval: 0.05, seed }) });
  // tfjs-layers 4.22 has no 'causal' conv1d padding: pad 3 steps on the left, then a 'valid' [4, 1] conv2d.
  const toImage = tfl.layers.reshape({ targetShape: [-1, 1, hidden] });
  const leftPad = tfl.layers.zeroPadding2d({ padding: [[3, 0], [0, 0]] });
  const conv = tfl.layers.conv2d({ filters: hidden, kernelSize: [4, 1], padding: 'valid', activation: 'relu', name: 'trunk_conv', kernelInitializer: glorot(1) });
  const toSequence = tfl.layers.reshape({ targetShape: [-1, hidden] });
  const dense = tfl.layers.dense({ units: hidden, activation: 'tanh', name: 'trunk_dense', kernelInitializer: glorot(2) });
  let h = embedding.apply(ids) as tfl.SymbolicTensor; // [B, T, D]
  h = leftPad.apply(toImage.apply(h)) as tfl.SymbolicTensor; // [B, T+3, 1, D]
  h = toSequence.apply(conv.apply(h)) as tfl.SymbolicTensor; // [B, T, D], position t sees t-3…t only
  h = dense.apply(h) as tfl.SymbolicTensor; // [B, T, D]
  const { tied, hidden: _h, seed: _s, ...headArgs } = o;
  const head = multiTokenHead({ numHeads: 3, unembeddingInitializer: glorot(3), ...headArgs, vocabSize, ...(tied ? { tiedTo: embedding } : {}), name: 'mtp_head' });
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
