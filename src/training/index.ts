/**
 * MTP training: shifted multi-token targets, the per-offset weighted loss, its `model.compile`
 * adapters, freezing a model for draft-head training, and the kernels training needs on wasm.
 */
export { MASKED_TARGET, multiTokenTargets, oneHotMultiTokenTargets } from './targets.js';
export { multiTokenLoss, type MultiTokenLossOptions, type MultiTokenLossResult } from './loss.js';
export { multiTokenLossFunction, offsetLossMetric } from './keras.js';
export { type OffsetWeights } from './weights.js';
export { freezeAllButDraftHeads, type DraftHeadFreeze } from './freeze.js';
export { registerWasmTrainingKernels, type WasmTrainingKernels } from './wasm/index.js';
