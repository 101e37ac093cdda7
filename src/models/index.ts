/**
 * `tfjs-mtp/models`: a small reference causal transformer with multi-token heads, a KV-cached
 * `MultiTokenModel` view of it, and a byte-level tokenizer.
 *
 * @packageDocumentation
 */
export { createTransformer, loadTransformer, LAYER_NAMES } from './transformer.js';
export { type TransformerConfig, type ResolvedTransformerConfig, TRANSFORMER_DEFAULTS, resolveTransformerConfig } from './config.js';
export { CachedTransformer, cachedTransformer } from './cached.js';
export {
  MtpPositionEmbedding,
  type MtpPositionEmbeddingArgs,
  mtpPositionEmbedding,
  MtpLayerNorm,
  type MtpLayerNormArgs,
  mtpLayerNorm,
  MtpTransformerBlock,
  type MtpTransformerBlockArgs,
  mtpTransformerBlock,
  registerModelLayers,
} from './layers.js';
export { BYTE_VOCAB_SIZE, encodeBytes, decodeBytes } from './tokenizer.js';
