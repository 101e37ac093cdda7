/** Decoding: the model interface, its LayersModel adapter, and the three decoders. */
export type { MultiTokenModel, TopKCandidates, TreeCandidates } from './model.js';
export { fromLayersModel, type LayersModelAdapterOptions } from './layers_model.js';
export {
  DECODE_DEFAULTS,
  type AcceptanceRule,
  type BlockwiseOptions,
  type DecodeOptions,
  type SpeculativeOptions,
  type TokenIds,
} from './options.js';
export type { DecodeResult, DecodeStats, DrafterStats, FinishReason, TokenChunk } from './result.js';
export {
  headsDrafter,
  promptLookupDrafter,
  PROMPT_LOOKUP_DEFAULTS,
  type Drafter,
  type DraftContext,
  type DraftOutcome,
  type DraftProposal,
  type DraftTreeProposal,
  type PromptLookupOptions,
} from './drafters.js';
export { MASKED_LOGIT } from '../internal/draft_vocab.js';
export { greedyDecode, greedyStream } from './greedy.js';
export { blockwiseDecode, blockwiseStream } from './blockwise.js';
export { speculativeDecode, speculativeStream } from './speculative.js';
export { TREE_LIMITS, type DynamicTree, type TreeOption, type TreePaths } from './tree.js';
export {
  chooseBudget,
  defaultTree,
  measureTreeCosts,
  TREE_AUTO_DEFAULTS,
  TREE_BACKEND_DEFAULTS,
  type MeasureTreeCostsOptions,
  type TreeBackend,
  type TreeCost,
} from './tree_auto.js';
