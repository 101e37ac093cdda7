/**
 * tfjs-mtp: multi-token prediction heads and lossless self-speculative decoding for
 * TensorFlow.js. Named exports only; the reference transformer lives in `tfjs-mtp/models`.
 *
 * Every name here is one a user needs; the project's own tools, benches and tests import the
 * rest from the source modules. tests/package/exports.test.ts lists them and bounds their count.
 *
 * @packageDocumentation
 */

// Layers: the shared unembedding, the offset heads, the heads that combine them (tfjs-layers
// classes with their args and lower-camel factories), registration and the parameter arithmetic.
export { SharedUnembedding, sharedUnembedding, type SharedUnembeddingArgs } from './layers/shared_unembedding.js';
export { LightweightOffsetHead, lightweightOffsetHead, type LightweightOffsetHeadArgs } from './layers/offset_head.js';
export { MultiTokenHead, multiTokenHead, type MultiTokenHeadArgs } from './layers/multi_token_head.js';
export { SequentialMtpHead, sequentialMtpHead, type SequentialMtpHeadArgs } from './layers/sequential_mtp.js';
export { LAYER_DEFAULTS } from './layers/args.js';
export { registerMtpLayers } from './layers/registration.js';
export { formatParameterReport, parameterReport } from './layers/parameter_report.js';

// Training: shifted targets, the per-offset loss and its model.compile adapters, freezing a
// model for draft-head training, the kernels training needs on wasm.
export { multiTokenTargets, oneHotMultiTokenTargets } from './training/targets.js';
export { multiTokenLoss, type MultiTokenLossOptions } from './training/loss.js';
export { multiTokenLossFunction, offsetLossMetric } from './training/keras.js';
export { freezeAllButDraftHeads } from './training/freeze.js';
export { registerWasmTrainingKernels } from './training/wasm/index.js';

// Decoding: the model interface and its LayersModel adapter, the three decoders and their
// streams, their options and results, drafters, trees.
export type { MultiTokenModel, TopKCandidates, TreeCandidates } from './decoding/model.js';
export { fromLayersModel } from './decoding/layers_model.js';
export { greedyDecode, greedyStream } from './decoding/greedy.js';
export { blockwiseDecode, blockwiseStream } from './decoding/blockwise.js';
export { speculativeDecode, speculativeStream } from './decoding/speculative.js';
export { DECODE_DEFAULTS, type DecodeOptions, type SpeculativeOptions } from './decoding/options.js';
export type { DecodeResult, TokenChunk } from './decoding/result.js';
export { headsDrafter, promptLookupDrafter, type Drafter } from './decoding/drafters.js';
export type { DynamicTree, TreeOption } from './decoding/tree.js';
export { defaultTree } from './decoding/tree_auto.js';
