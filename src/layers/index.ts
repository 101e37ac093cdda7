/**
 * MTP layers: the shared unembedding, the lightweight offset heads, the multi-token head that
 * combines them, their defaults, their registration and the parameter arithmetic.
 */
export { type ActivationIdentifier, LAYER_DEFAULTS, type OffsetHeadKind } from './args.js';
export { SharedUnembedding, sharedUnembedding, type SharedUnembeddingArgs } from './shared_unembedding.js';
export { LightweightOffsetHead, lightweightOffsetHead, type LightweightOffsetHeadArgs } from './offset_head.js';
export { MultiTokenHead, multiTokenHead, type MultiTokenHeadArgs } from './multi_token_head.js';
export { registerMtpLayers } from './registration.js';
export { formatParameterReport, parameterReport, type ParameterReport, type ParameterReportArgs } from './parameter_report.js';
export { SequentialMtpHead, sequentialMtpHead, sequentialModuleWeights, SEQUENTIAL_NORM_EPSILON, type SequentialMtpHeadArgs, type SequentialModuleWeight } from './sequential_mtp.js';
export { type DraftHeadKind, type DraftHeadSpec, type DraftHeadWeight } from './draft_head.js';
