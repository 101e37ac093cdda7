/**
 * `createTransformer`: a GPT-style decoder-only transformer with multi-token heads, built as a
 * tfjs-layers functional `LayersModel` (so `model.save` / `tf.loadLayersModel` work):
 *
 *     token ids [B, T] → wte (tied) + wpe → numLayers × pre-norm block → ln_f
 *                      → MultiTokenHead (k offsets, one SharedUnembedding tied to wte) → [B, T, k, V]
 *
 * Reference: nanoGPT's `GPT` (wte, wpe, h, ln_f, tied lm_head); Gloeckle et al., "Better & Faster
 * Large Language Models via Multi-token Prediction" (2024) for the k-head trunk.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { initializers, input, layers, loadLayersModel, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { multiTokenHead, registerMtpLayers } from '../layers/index.js';
import { type TransformerConfig, resolveTransformerConfig } from './config.js';
import { mtpLayerNorm, mtpPositionEmbedding, mtpTransformerBlock, registerModelLayers } from './layers.js';

/** Names of the model's layers, which `CachedTransformer` looks up. */
export const LAYER_NAMES = {
  /** The token embedding (`tf.layers.embedding`), whose matrix the head's unembedding shares. */
  tokenEmbedding: 'wte',
  /** The learned position embedding ({@link MtpPositionEmbedding}). */
  positionEmbedding: 'wpe',
  /** The name of transformer block `i` (0-based, {@link MtpTransformerBlock}). */
  block: (i: number) => `h${i}`,
  /** The final layer norm ({@link MtpLayerNorm}). */
  finalNorm: 'ln_f',
  /** The multi-token head (`MultiTokenHead`). */
  head: 'mtp_head',
} as const;

/**
 * Builds the (untrained) transformer. Input: int32 token ids `[batch, seq]`, `seq ≤ maxLength`;
 * output: logits `[batch, seq, mtpHeads, vocabSize]`.
 *
 * @example
 * const model = createTransformer({ hiddenSize: 64, numLayers: 2 });
 * const logits = model.predict(tf.tensor2d([[72, 105]], [1, 2], 'int32')); // [1, 2, 4, 256]
 */
export function createTransformer(config: TransformerConfig = {}): LayersModel {
  const c = resolveTransformerConfig(config);
  registerMtpLayers();
  registerModelLayers();
  const ids = input({ shape: [null], dtype: 'int32', name: 'token_ids' }); // [B, T]
  const wte = layers.embedding({
    inputDim: c.vocabSize,
    outputDim: c.hiddenSize,
    embeddingsInitializer: initializers.randomNormal({ mean: 0, stddev: 0.02, seed: c.seed }),
    name: LAYER_NAMES.tokenEmbedding,
  });
  let x = wte.apply(ids) as SymbolicTensor; // [B, T, D]
  x = mtpPositionEmbedding({ maxLength: c.maxLength, seed: c.seed + 1, name: LAYER_NAMES.positionEmbedding }).apply(x) as SymbolicTensor;
  const residualStddev = 0.02 / Math.sqrt(2 * c.numLayers); // GPT-2: keep the residual stream's scale
  for (let i = 0; i < c.numLayers; i++) {
    const block = mtpTransformerBlock({
      numHeads: c.numHeads,
      mlpRatio: c.mlpRatio,
      residualStddev,
      seed: c.seed + 16 * (i + 1),
      name: LAYER_NAMES.block(i),
    });
    x = block.apply(x) as SymbolicTensor; // [B, T, D]
  }
  x = mtpLayerNorm({ name: LAYER_NAMES.finalNorm }).apply(x) as SymbolicTensor; // [B, T, D]
  const head = multiTokenHead({
    numHeads: c.mtpHeads,
    vocabSize: c.vocabSize,
    headKind: c.headKind,
    ...(c.rank !== undefined ? { rank: c.rank } : {}),
    tiedTo: wte,
    name: LAYER_NAMES.head,
  });
  const logits = head.apply(x) as SymbolicTensor; // [B, T, k, V]
  return functionalModel({ inputs: ids, outputs: logits, name: c.name });
}

/**
 * Loads a saved transformer (`model.save` output: a URL, or any `tf.io.IOHandler` such as
 * `tf.io.fromMemory`) after registering every layer class it needs.
 *
 * @example
 * const model = await loadTransformer('https://example.com/tslib-k4/model.json');
 */
export async function loadTransformer(source: string | tf.io.IOHandler): Promise<LayersModel> {
  registerMtpLayers();
  registerModelLayers();
  return loadLayersModel(source);
}
