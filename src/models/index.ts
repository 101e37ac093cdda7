/**
 * `tfjs-mtp/models`: one configurable decoder-only transformer (GPT family and Llama family)
 * with multi-token heads, a KV-cached `MultiTokenModel` view of it, the llama2.c and Hugging Face
 * checkpoint loaders, tokenizers behind one `Tokenizer` interface (bytes, llama2.c, Hugging Face
 * `tokenizer.json`), and draft heads: their file, their training and their online adaptation.
 *
 * Every name here is one a user needs; the project's own tools, benches and tests import the
 * rest from the source modules. tests/package/exports.test.ts lists them and bounds their count.
 *
 * @packageDocumentation
 */

// The transformer: its config and defaults, building, loading a saved one, the KV-cached view.
export { createTransformer, loadTransformer } from './transformer.js';
export { TRANSFORMER_DEFAULTS, type TransformerConfig } from './config.js';
export { CachedTransformer, type CachedTransformerOptions } from './cached.js';
export { setFusedKernels } from '../kernels/registry.js';

// Pretrained checkpoints.
export { loadLlama2c, type LoadLlama2cOptions } from './llama2c.js';
export { loadHfLlama, type HfLlamaFiles } from './hf_llama.js';

// Tokenizers.
export { type Tokenizer } from './tokenizer_interface.js';
export { byteTokenizer } from './tokenizer.js';
export { Llama2cTokenizer } from './llama2c_tokenizer.js';
export { HfTokenizer, loadHfTokenizer } from './hf_tokenizer.js';

// Draft heads: sequential modules on a loaded model, the heads file, training and adaptation.
export { withSequentialHeads, attachDraftHeads, exportDraftHeads, writeDraftHeads, type DraftHeads } from './draft_heads.js';
export { trainDraftHeads } from './train_heads/train.js';
export { TRAIN_HEADS_DEFAULTS, type TrainDraftHeadsOptions } from './train_heads/options.js';
export { createHeadAdapter } from './adapter.js';
