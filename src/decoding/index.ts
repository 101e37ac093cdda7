/** Decoding: the model interface, its LayersModel adapter, and the three decoders. */
export type { MultiTokenModel } from './model.js';
export { fromLayersModel, type LayersModelAdapterOptions } from './layers_model.js';
export {
  DEFAULTS,
  type AcceptanceRule,
  type BlockwiseOptions,
  type DecodeOptions,
  type SpeculativeOptions,
  type TokenChunk,
} from './options.js';
export type { DecodeResult, DecodeStats, FinishReason } from './session.js';
export { greedyDecode, greedyStream } from './greedy.js';
export { blockwiseDecode, blockwiseStream } from './blockwise.js';
export { speculativeDecode, speculativeStream } from './speculative.js';
