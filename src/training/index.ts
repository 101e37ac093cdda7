/**
 * MTP training: shifted multi-token targets, the per-offset weighted loss, and its
 * `model.compile` adapters.
 */
export { MASKED_TARGET, multiTokenTargets, oneHotMultiTokenTargets } from './targets.js';
export { multiTokenLoss, type MultiTokenLossOptions, type MultiTokenLossResult } from './loss.js';
export { multiTokenLossFunction, offsetLossMetric } from './keras.js';
export { type OffsetWeights } from './weights.js';
