/**
 * `tfjs-mtp/models`: one configurable decoder-only transformer (GPT family and Llama family)
 * with multi-token heads, its construction from a checkpoint's named weights, a KV-cached
 * `MultiTokenModel` view of it, and tokenizers behind one `Tokenizer` interface (bytes, llama2.c,
 * Hugging Face `tokenizer.json`).
 *
 * @packageDocumentation
 */
export { createTransformer, loadTransformer, registerModelLayers } from './transformer.js';
export {
  type TransformerConfig,
  type ResolvedTransformerConfig,
  type NormKind,
  type PositionKind,
  type RopeLayout,
  type MlpKind,
  type AttentionBias,
  type RopeScaling,
  TRANSFORMER_DEFAULTS,
} from './config.js';
export { transformerFromWeights, type CheckpointTensor, type CheckpointWeights } from './from_weights.js';
export { TransformerTrunk, type TransformerTrunkArgs, type InitialValues, transformerTrunk } from './trunk.js';
export { type ArchConfig } from './weights.js';
export { CachedTransformer, cachedTransformer, type CachedTransformerOptions } from './cached.js';
export { setFusedKernels } from '../kernels/registry.js';
export { BYTE_VOCAB_SIZE, encodeBytes, decodeBytes, byteTokenizer } from './tokenizer.js';
export { type Tokenizer, type TokenizerEncodeOptions, type TokenizerDecodeOptions, type ChatMessage, type ChatTemplateOptions } from './tokenizer_interface.js';
export { loadHfTokenizer, HfTokenizer, type HfDecodeOptions, type HfJsonSource } from './hf_tokenizer.js';
export { loadLlama2c, parseLlama2c, type LoadLlama2cOptions, type Llama2cModel, type Llama2cHeader, type ParsedLlama2c } from './llama2c.js';
export { type BytesSource } from './read_bytes.js';
export { type DraftHeadOptions } from './head_options.js';
export { Llama2cTokenizer, type Llama2cEncodeOptions } from './llama2c_tokenizer.js';
export {
  loadHfLlama,
  parseHfLlama,
  type HfLlamaFiles,
  type HfSingleFiles,
  type HfShardedFiles,
  type HfTensorBytes,
  type HfLoadProgress,
  type HfLlamaModel,
  type LoadHfLlamaOptions,
  type ParsedHfLlama,
} from './hf_llama.js';
export { type HfModelType, type JsonSource } from './hf_config.js';
export { BACKEND_MEMORY_BYTES } from './capacity.js';
export { attachDraftHeads, baseFingerprint, exportDraftHeads, readDraftHeads, writeDraftHeads, withSequentialHeads, DRAFT_HEADS_FORMAT, type DraftHeads, type DraftHeadsKind, type DraftHeadsManifest, type DraftHeadsWeight } from './draft_heads.js';
export { trainDraftHeads } from './train_heads/train.js';
export { TRAIN_HEADS_DEFAULTS, type TrainDraftHeadsOptions, type TrainDraftHeadsProgress, type TextEncoderLike } from './train_heads/options.js';
export { createHeadAdapter, type AdaptReport, type HeadAdapter, type HeadAdapterOptions } from './adapter.js';
