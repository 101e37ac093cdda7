/**
 * `createTransformer`: a decoder-only transformer with multi-token heads — GPT-style or
 * Llama-style by config — built as a tfjs-layers functional `LayersModel` (so `model.save` /
 * `tf.loadLayersModel` work):
 *
 *     token ids [B, T] → TransformerTrunk (embedding → blocks → final norm) → [B, T, D]
 *                      → MultiTokenHead (k offsets, one SharedUnembedding: tied to the trunk's
 *                        token embedding, or its own matrix) → [B, T, k, V]
 *
 * Reference: nanoGPT's `GPT`; llama2.c's `Transformer`; Gloeckle et al., "Better & Faster Large
 * Language Models via Multi-token Prediction" (2024) for the k-head trunk.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { input, loadLayersModel, model as functionalModel, type LayersModel, type SymbolicTensor } from '@tensorflow/tfjs-layers';
import { registerOnce } from '../internal/registration.js';
import { multiTokenHead, registerMtpLayers } from '../layers/index.js';
import { type ResolvedTransformerConfig, type TransformerConfig, resolveTransformerConfig } from './config.js';
import { type InitialValues, TransformerTrunk } from './trunk.js';
import { archOf, type ArchConfig } from './weights.js';

/** Names of the model's two layers (tests and scripts may look them up; the cached decoder finds them by class). @internal */
export const LAYER_NAMES = { trunk: 'transformer', head: 'mtp_head' } as const;

/**
 * Registers the layer classes a saved transformer needs (`TransformerTrunk` and the MTP layers)
 * for `tf.loadLayersModel`. Idempotent; `loadTransformer` calls it for you.
 */
export function registerModelLayers(): void {
  registerMtpLayers();
  registerOnce(TransformerTrunk);
}

/** Builds the model of a resolved config; `initialValues` replaces the trunk's initializers. @internal */
export function buildTransformer(c: ResolvedTransformerConfig, initialValues?: InitialValues): LayersModel {
  registerModelLayers();
  const ids = input({ shape: [null], dtype: 'int32', name: 'token_ids' }); // [B, T]
  const trunk = new TransformerTrunk({ ...(archOf(c) as ArchConfig), name: LAYER_NAMES.trunk }, initialValues);
  const hidden = trunk.apply(ids) as SymbolicTensor; // [B, T, D]
  const head = multiTokenHead({
    numHeads: c.mtpHeads,
    vocabSize: c.vocabSize,
    headKind: c.headKind,
    ...(c.rank !== undefined ? { rank: c.rank } : {}),
    ...(c.headHiddenSize !== undefined ? { mlpHiddenSize: c.headHiddenSize } : {}),
    ...(c.tiedEmbeddings ? { tiedTo: trunk } : {}), // untied: the head's SharedUnembedding owns a [V, D] matrix
    ...(c.draftVocab !== null ? { draftVocab: c.draftVocab } : {}),
    name: LAYER_NAMES.head,
  });
  const logits = head.apply(hidden) as SymbolicTensor; // [B, T, k, V]
  return functionalModel({ inputs: ids, outputs: logits, name: c.name });
}

/**
 * Builds the (untrained) transformer. Input: int32 token ids `[batch, seq]`, `seq ≤ maxLength`;
 * output: logits `[batch, seq, mtpHeads, vocabSize]`. Every field is checked before any weight
 * is created.
 *
 * @example
 * const gpt = createTransformer({ hiddenSize: 64, numLayers: 2 });
 * const llama = createTransformer({ norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', numKeyValueHeads: 2, useBias: false });
 * const logits = gpt.predict(tf.tensor2d([[72, 105]], [1, 2], 'int32')); // [1, 2, 4, 256]
 */
export function createTransformer(config: TransformerConfig = {}): LayersModel {
  return buildTransformer(resolveTransformerConfig(config));
}

/**
 * Loads a saved transformer (`model.save` output: a URL, or any `tf.io.IOHandler` such as
 * `tf.io.fromMemory`) after registering every layer class it needs.
 *
 * @example
 * const model = await loadTransformer('https://example.com/tslib-k4/model.json');
 */
export async function loadTransformer(source: string | tf.io.IOHandler): Promise<LayersModel> {
  registerModelLayers();
  return loadLayersModel(source);
}
