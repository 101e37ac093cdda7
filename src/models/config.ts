/**
 * Configuration of the reference transformer: one documented object covering the GPT family
 * (LayerNorm, learned positions, GELU/ReLU MLP, biases, tied output) and the Llama family
 * (RMSNorm, rotary positions, SwiGLU MLP, grouped-query attention, no biases, tied or untied
 * output). Defaults live in one place ({@link TRANSFORMER_DEFAULTS}); `resolveTransformerConfig`
 * checks every field — types, bounds ({@link SIZE_LIMITS}), relations — before anything is
 * allocated, so a bad config never leaks a tensor.
 *
 * Reference: nanoGPT's `GPTConfig`; llama2.c's `Config`; Hugging Face's `LlamaConfig`.
 */
import { checkDraftVocab } from '../internal/draft_vocab.js';
import { checkInteger, fail, show, SIZE_LIMITS } from '../internal/errors.js';
import { OFFSET_HEAD_KINDS, type OffsetHeadKind } from '../layers/args.js';

/** Normalisation of the blocks and the final norm. @inline */
export type NormKind = 'layerNorm' | 'rmsNorm';
/** How positions enter: a learned table added to the embeddings, or rotary q/k rotations. @inline */
export type PositionKind = 'learned' | 'rotary';
/** Which dimensions of a head rotate together: (2i, 2i+1) as llama2.c, or (i, i + hs/2) as Hugging Face. @inline */
export type RopeLayout = 'interleaved' | 'halfSplit';
/** The position-wise MLP: `w2(act(w1 x))` for relu/gelu, `w2(silu(w1 x) * w3 x)` for swiglu. @inline */
export type MlpKind = 'relu' | 'gelu' | 'swiglu';
/** Which attention projections carry a bias: none, the query/key/value ones (Qwen2), or those and the output (GPT). @inline */
export type AttentionBias = 'none' | 'qkv' | 'qkvo';

/**
 * A change of the rotary inverse frequencies for contexts longer than the training one, as
 * Hugging Face's `rope_scaling` (transformers' `modeling_rope_utils.py`):
 * - `linear`: every frequency divided by `factor` (positions interpolated);
 * - `llama3` (Llama 3.1): wavelengths above `originalMaxLength / lowFreqFactor` divided by
 *   `factor`, those below `originalMaxLength / highFreqFactor` kept, a smooth blend between.
 * @inline
 */
export type RopeScaling =
  | {
      /** Every inverse frequency divided by `factor` (transformers' `linear`). */
      type: 'linear';
      /** The divisor, > 0. */
      factor: number;
    }
  | {
      /** Llama 3.1's scaling: low frequencies divided by `factor`, high ones kept, a smooth ramp between (transformers' `llama3`). */
      type: 'llama3';
      /** The divisor of the low frequencies, > 0. */
      factor: number;
      /** Wavelengths longer than `originalMaxLength / lowFreqFactor` are scaled fully. */
      lowFreqFactor: number;
      /** Wavelengths shorter than `originalMaxLength / highFreqFactor` are kept. */
      highFreqFactor: number;
      /** The context the model was pretrained with (`original_max_position_embeddings`). */
      originalMaxLength: number;
    };

/** Options of {@link createTransformer}. Every field is optional; see {@link TRANSFORMER_DEFAULTS}. */
export interface TransformerConfig {
  /** Size of the vocabulary V (token ids are integers in [0, V)). */
  vocabSize?: number;
  /** Context limit: most positions the model attends over (learned positions: the table's size). */
  maxLength?: number;
  /** Width D of the residual stream. */
  hiddenSize?: number;
  /** Number of transformer blocks. */
  numLayers?: number;
  /** Attention (query) heads per block H (Hugging Face's `num_attention_heads`); must divide `hiddenSize` unless `headDim` is given. */
  numAttentionHeads?: number;
  /**
   * The old name of `numAttentionHeads` (attention heads, not the k multi-token heads: those are
   * `mtpHeads`). Given with `numAttentionHeads`, the two must be equal.
   * @deprecated Use `numAttentionHeads`; `numHeads` is accepted until the next minor release.
   */
  numHeads?: number;
  /** Key/value heads per block (grouped-query attention; 1 = multi-query); must divide `numAttentionHeads`. Default `numAttentionHeads`. */
  numKeyValueHeads?: number;
  /** Width hs of one attention head (q/k/v are `[D, heads·hs]`, the output `[H·hs, D]`). Default `hiddenSize / numAttentionHeads`. */
  headDim?: number;
  /** Trunk MLP width as a multiple of `hiddenSize` (used when `intermediateSize` is not given). */
  mlpRatio?: number;
  /** Width F of the trunk's MLP (Hugging Face's `intermediate_size`); default `mlpRatio · hiddenSize`. The draft heads' width is `headHiddenSize`. */
  intermediateSize?: number;
  /**
   * The old name of `intermediateSize` (the trunk's MLP width). Given with `intermediateSize`,
   * the two must be equal.
   * @deprecated Use `intermediateSize`; `mlpHiddenSize` is accepted until the next minor release.
   */
  mlpHiddenSize?: number;
  /** Normalisation: `'layerNorm'` (scale and shift) or `'rmsNorm'` (scale only). */
  norm?: NormKind;
  /** Epsilon added to the variance (layerNorm) or mean square (rmsNorm). */
  normEpsilon?: number;
  /** Positions: `'learned'` (a `[maxLength, D]` table) or `'rotary'` (no table, no length limit of its own). */
  positions?: PositionKind;
  /** Rotary base θ: pair i of a head turns by pos·θ^(−2i/hs). */
  ropeTheta?: number;
  /** Rotary pairing of a head's dimensions. */
  ropeLayout?: RopeLayout;
  /** Rotary frequency scaling (rotary positions only), as Hugging Face's `rope_scaling`. `null`: none. */
  ropeScaling?: RopeScaling | null;
  /** The position-wise MLP: `w2(act(w1 x))` for relu/gelu, `w2(silu(w1 x) * w3 x)` for swiglu. */
  mlp?: MlpKind;
  /** Biases on every attention and MLP projection (a layerNorm's shift is separate): the default of `attentionBias` and `mlpBias`. */
  useBias?: boolean;
  /** Which attention projections carry a bias: none, q/k/v (Qwen2), or those and the output (GPT). Default: `'qkvo'` with `useBias`, else `'none'`. */
  attentionBias?: AttentionBias;
  /** Biases on the MLP projections. Default: `useBias`. */
  mlpBias?: boolean;
  /** Output projection = token embedding (one matrix); otherwise the head owns its own. */
  tiedEmbeddings?: boolean;
  /** Number k of multi-token heads (offset 0 is next-token; 1…k-1 draft further ahead). */
  mtpHeads?: number;
  /** Kind of the offset heads 1…k-1 (offset 0 is the identity, so it is a plain LM head). */
  headKind?: OffsetHeadKind;
  /** Rank of `lowRank` offset heads (required for that kind, at most `hiddenSize`). */
  rank?: number;
  /** Width of `mlp` offset heads (required for that kind; the trunk's MLP width is `intermediateSize`). */
  headHiddenSize?: number;
  /**
   * The draft vocabulary: distinct token ids in [0, vocabSize) that offsets 1…k−1 may propose at
   * inference (the head's `draftVocab`); `null` for the whole vocabulary. Offset 0 always uses the
   * whole vocabulary.
   */
  draftVocab?: readonly number[] | null;
  /** Seed of every initializer: the same seed gives the same initial weights. */
  seed?: number;
  /** Name of the `LayersModel`. */
  name?: string;
}

/**
 * Fully resolved configuration, in the field names of the trunk's own code (`ArchConfig`): here
 * `numHeads` is `numAttentionHeads` and `mlpHiddenSize` is `intermediateSize` (the public names
 * are mapped once, in {@link resolveTransformerConfig}).
 * @internal
 */
export type ResolvedTransformerConfig = Required<
  Omit<TransformerConfig, 'rank' | 'headHiddenSize' | 'mlpHiddenSize' | 'numKeyValueHeads' | 'headDim' | 'attentionBias' | 'mlpBias' | 'ropeScaling' | 'draftVocab' | 'numAttentionHeads' | 'intermediateSize'>
> & {
  /** Attention heads per block (the public `numAttentionHeads`). */
  numHeads: number;
  /** Key/value heads (resolved: `numHeads` when not given). */
  numKeyValueHeads: number;
  /** Head width (resolved: `hiddenSize / numHeads` when not given). */
  headDim: number;
  /** Attention biases (resolved from `useBias` when not given). */
  attentionBias: AttentionBias;
  /** MLP biases (resolved: `useBias` when not given). */
  mlpBias: boolean;
  /** Rotary scaling, or `null`. */
  ropeScaling: RopeScaling | null;
  /** MLP width F (resolved: `mlpRatio · hiddenSize` when not given). */
  mlpHiddenSize: number;
  /** Rank of `lowRank` offset heads; `undefined` for other kinds. */
  rank: number | undefined;
  /** Width of `mlp` offset heads; `undefined` for other kinds. */
  headHiddenSize: number | undefined;
  /** The draft vocabulary, increasing, or `null` for the whole vocabulary. */
  draftVocab: readonly number[] | null;
};

/** The fields of {@link TransformerConfig} whose default is a value (the others resolve from them, or are unset). @inline */
type ValueDefaults = Required<
  Omit<TransformerConfig, 'numHeads' | 'mlpHiddenSize' | 'numKeyValueHeads' | 'headDim' | 'intermediateSize' | 'attentionBias' | 'mlpBias' | 'rank' | 'headHiddenSize' | 'ropeScaling' | 'draftVocab'>
>;

/** Default configuration (the GPT-style reference model), each value with its reason. */
export const TRANSFORMER_DEFAULTS: Readonly<ValueDefaults> & {
  /** Not set: resolves to `numAttentionHeads`. */
  readonly numKeyValueHeads: undefined;
  /** Not set: resolves to `hiddenSize / numAttentionHeads`. */
  readonly headDim: undefined;
  /** Not set: resolves to `mlpRatio · hiddenSize`. */
  readonly intermediateSize: undefined;
  /** Not set: resolves from `useBias`. */
  readonly attentionBias: undefined;
  /** Not set: resolves to `useBias`. */
  readonly mlpBias: undefined;
  /** Not set: no rotary scaling. */
  readonly ropeScaling: null;
  /** Not set: only for `lowRank` heads. */
  readonly rank: undefined;
  /** Not set: only for `mlp` heads. */
  readonly headHiddenSize: undefined;
  /** Not set: the whole vocabulary. */
  readonly draftVocab: null;
} = {
  vocabSize: 256, // byte-level tokenizer: every UTF-8 string encodes, nothing to ship
  maxLength: 128, // a few lines of code; the position table and attention stay tiny
  hiddenSize: 128, // small enough to train in ~30 min on one wasm thread, large enough to learn syntax
  numLayers: 4, // depth buys more than width at this size; a forward stays overhead-bound on wasm
  numAttentionHeads: 4, // head size 32, as in small GPTs
  numKeyValueHeads: undefined, // = numAttentionHeads: plain multi-head attention
  headDim: undefined, // = hiddenSize / numAttentionHeads, as in GPT-2 and Llama 2
  mlpRatio: 4, // GPT-2's ratio
  intermediateSize: undefined, // = mlpRatio · hiddenSize
  norm: 'layerNorm', // GPT-2
  normEpsilon: 1e-5, // GPT-2's and llama2.c's value
  positions: 'learned', // GPT-2
  ropeTheta: 10000, // RoFormer's and Llama's base (only for rotary positions)
  ropeLayout: 'interleaved', // llama2.c's pairing (only for rotary positions)
  ropeScaling: null, // the frequencies of RoFormer (only for rotary positions)
  mlp: 'relu', // the reference checkpoint's; GPT-2 uses 'gelu'
  useBias: true, // GPT-2
  attentionBias: undefined, // = 'qkvo' with useBias, else 'none'
  mlpBias: undefined, // = useBias
  tiedEmbeddings: true, // GPT-2: one V·D matrix in and out
  mtpHeads: 4, // k = 4: draft 3 tokens per forward
  headKind: 'residual', // x + act(W·x), zero-initialized: starts as the next-token head, D² params each
  rank: undefined, // only for 'lowRank' heads
  headHiddenSize: undefined, // only for 'mlp' heads
  draftVocab: null, // drafts may propose any token; a subset pays off at large vocabularies
  seed: 0, // deterministic initialization
  name: 'mtp_transformer',
};

const own = (o: object, key: string) => Object.prototype.hasOwnProperty.call(o, key);

/** Deprecated option names and the option each is the old name of (accepted until the next minor release). */
const RENAMED = { numHeads: 'numAttentionHeads', mlpHiddenSize: 'intermediateSize' } as const;

/**
 * `config` with each deprecated name moved to its new one (both given: they must be equal), and
 * the name each moved field was given as (errors about its value name what the caller wrote).
 * Saved configs and code written before the renames resolve exactly as before.
 */
function withCurrentNames(WHERE: string, config: TransformerConfig): { given: Record<string, unknown>; label: (key: string) => string } {
  const renamed: Record<string, unknown> = { ...config };
  const givenAs: Record<string, string> = {};
  for (const [old, current] of Object.entries(RENAMED)) {
    const value = renamed[old];
    if (!own(config, old)) continue;
    delete renamed[old];
    if (value === undefined) continue;
    if (renamed[current] !== undefined && renamed[current] !== value) {
      fail(RangeError, WHERE, `config.${old}`, `is the deprecated name of config.${current} (${show(renamed[current])}) and must equal it or be omitted`, value);
    }
    renamed[current] = value;
    givenAs[current] = old;
  }
  return { given: renamed, label: (key) => givenAs[key] ?? key };
}

function oneOf<T extends string>(WHERE: string, field: string, value: unknown, options: readonly T[]): T {
  if (!options.includes(value as T)) fail(TypeError, WHERE, `config.${field}`, `must be one of ${options.map(show).join(', ')}`, value);
  return value as T;
}

function boolean(WHERE: string, field: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(TypeError, WHERE, `config.${field}`, 'must be a boolean', value);
  return value;
}

function positiveNumber(WHERE: string, field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    fail(typeof value === 'number' ? RangeError : TypeError, WHERE, `config.${field}`, `must be a finite number in (0, ${max}]`, value);
  }
  return value;
}

/** The fields of each rotary scaling type, besides `type`. */
const ROPE_SCALING_FIELDS = { linear: ['factor'], llama3: ['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxLength'] } as const;

/** Checks `config.ropeScaling`: null, or one of the `RopeScaling` objects with exactly its fields, each in range. */
function resolveRopeScaling(WHERE: string, value: unknown, positions: PositionKind): RopeScaling | null {
  if (value === null) return null;
  const arg = 'config.ropeScaling';
  if (typeof value !== 'object' || Array.isArray(value)) fail(TypeError, WHERE, arg, 'must be null or an object { type, factor, … }', value);
  const o = value as Record<string, unknown>;
  const type = oneOf(WHERE, 'ropeScaling.type', o['type'], ['linear', 'llama3'] as const);
  if (positions !== 'rotary') fail(TypeError, WHERE, arg, 'applies only to rotary positions (config.positions is "learned")', type);
  const fields: readonly string[] = ROPE_SCALING_FIELDS[type];
  const extra = Object.keys(o).find((key) => key !== 'type' && !fields.includes(key));
  if (extra !== undefined) fail(TypeError, WHERE, arg, `of type ${show(type)} may only have the keys type, ${fields.join(', ')}`, extra);
  const factor = positiveNumber(WHERE, 'ropeScaling.factor', o['factor'], 1e6);
  if (type === 'linear') return { type, factor };
  const lowFreqFactor = positiveNumber(WHERE, 'ropeScaling.lowFreqFactor', o['lowFreqFactor'], 1e6);
  const highFreqFactor = positiveNumber(WHERE, 'ropeScaling.highFreqFactor', o['highFreqFactor'], 1e6);
  if (!(highFreqFactor > lowFreqFactor)) fail(RangeError, WHERE, 'config.ropeScaling.highFreqFactor', `must be above lowFreqFactor (${lowFreqFactor})`, highFreqFactor);
  const originalMaxLength = checkInteger(WHERE, 'config.ropeScaling.originalMaxLength', o['originalMaxLength'], 1, SIZE_LIMITS.maxLength);
  return { type, factor, lowFreqFactor, highFreqFactor, originalMaxLength };
}

/**
 * Applies the defaults and checks every field (types, {@link SIZE_LIMITS}, relations); throws an
 * `Error` naming the field and value. Pure: allocates no tensor. Only own keys count (so
 * `constructor`, `toString` or an own `__proto__` are unknown options, not inherited ones).
 */
export function resolveTransformerConfig(config: TransformerConfig = {}, WHERE = 'createTransformer'): ResolvedTransformerConfig {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    fail(TypeError, WHERE, 'config', 'must be a plain object of options', config);
  }
  const keys = Reflect.ownKeys(config);
  const unknown = keys.find((key) => typeof key !== 'string' || !(own(TRANSFORMER_DEFAULTS, key) || own(RENAMED, key)));
  if (unknown !== undefined) {
    throw new TypeError(`${WHERE}: config.${String(unknown)} is not an option (options: ${Object.keys(TRANSFORMER_DEFAULTS).join(', ')}).`);
  }
  const { given, label } = withCurrentNames(WHERE, config);
  const pick = (key: keyof typeof TRANSFORMER_DEFAULTS): unknown => (given[key] !== undefined ? given[key] : TRANSFORMER_DEFAULTS[key]);
  const int = (key: keyof typeof TRANSFORMER_DEFAULTS, max: number, min = 1) => checkInteger(WHERE, `config.${label(key)}`, pick(key), min, max);

  const vocabSize = int('vocabSize', SIZE_LIMITS.vocabSize);
  const maxLength = int('maxLength', SIZE_LIMITS.maxLength);
  const hiddenSize = int('hiddenSize', SIZE_LIMITS.hiddenSize);
  const numLayers = int('numLayers', SIZE_LIMITS.numLayers);
  const numHeads = int('numAttentionHeads', SIZE_LIMITS.attentionHeads); // the trunk's internal name (ArchConfig)
  const mlpRatio = int('mlpRatio', SIZE_LIMITS.mlpRatio);
  const mtpHeads = int('mtpHeads', SIZE_LIMITS.numHeads);
  const numKeyValueHeads = given['numKeyValueHeads'] === undefined ? numHeads : int('numKeyValueHeads', numHeads);
  const mlpHiddenSize = given['intermediateSize'] === undefined ? mlpRatio * hiddenSize : int('intermediateSize', SIZE_LIMITS.hiddenSize * SIZE_LIMITS.mlpRatio); // the trunk's internal name
  const headDim = given['headDim'] === undefined ? hiddenSize / numHeads : int('headDim', SIZE_LIMITS.hiddenSize);
  if (given['headDim'] === undefined && hiddenSize % numHeads !== 0) {
    throw new RangeError(`${WHERE}: config.hiddenSize must be divisible by config.numAttentionHeads = ${numHeads}, but got ${hiddenSize}.`);
  }
  if (numHeads % numKeyValueHeads !== 0) {
    throw new RangeError(`${WHERE}: config.numKeyValueHeads must divide config.numAttentionHeads = ${numHeads}, but got ${numKeyValueHeads}.`);
  }
  const matrices: [string, number][] = [
    ['vocabSize · hiddenSize', vocabSize * hiddenSize],
    ['hiddenSize · intermediateSize', hiddenSize * mlpHiddenSize],
    ['hiddenSize · numAttentionHeads · headDim', hiddenSize * numHeads * headDim],
  ];
  if (pick('positions') !== 'rotary') matrices.push(['maxLength · hiddenSize', maxLength * hiddenSize]); // the learned table
  for (const [what, elements] of matrices) {
    if (elements > SIZE_LIMITS.matrixElements) {
      throw new RangeError(`${WHERE}: config.${what} must be at most ${SIZE_LIMITS.matrixElements} (one weight matrix), but got ${elements}.`);
    }
  }
  const norm = oneOf(WHERE, 'norm', pick('norm'), ['layerNorm', 'rmsNorm'] as const);
  const normEpsilon = positiveNumber(WHERE, 'normEpsilon', pick('normEpsilon'), 1);
  const positions = oneOf(WHERE, 'positions', pick('positions'), ['learned', 'rotary'] as const);
  const ropeTheta = positiveNumber(WHERE, 'ropeTheta', pick('ropeTheta'), 1e12);
  const ropeLayout = oneOf(WHERE, 'ropeLayout', pick('ropeLayout'), ['interleaved', 'halfSplit'] as const);
  if (positions === 'rotary' && headDim % 2 !== 0) {
    const field = given['headDim'] === undefined ? 'the head size config.hiddenSize / config.numAttentionHeads' : 'config.headDim';
    throw new RangeError(`${WHERE}: ${field} must be even for rotary positions, but got ${headDim}.`);
  }
  const ropeScaling = resolveRopeScaling(WHERE, given['ropeScaling'] ?? null, positions);
  const mlp = oneOf(WHERE, 'mlp', pick('mlp'), ['relu', 'gelu', 'swiglu'] as const);
  const useBias = boolean(WHERE, 'useBias', pick('useBias'));
  const attentionBias = given['attentionBias'] === undefined ? (useBias ? 'qkvo' : 'none') : oneOf(WHERE, 'attentionBias', given['attentionBias'], ['none', 'qkv', 'qkvo'] as const);
  const mlpBias = given['mlpBias'] === undefined ? useBias : boolean(WHERE, 'mlpBias', given['mlpBias']);
  const tiedEmbeddings = boolean(WHERE, 'tiedEmbeddings', pick('tiedEmbeddings'));
  const headKind = oneOf(WHERE, 'headKind', pick('headKind'), OFFSET_HEAD_KINDS);
  let rank: number | undefined;
  if (given['rank'] !== undefined) {
    rank = checkInteger(WHERE, 'config.rank', given['rank'], 1, hiddenSize);
    if (headKind !== 'lowRank') fail(TypeError, WHERE, 'config.rank', `applies only to headKind "lowRank" (headKind is ${show(headKind)})`, rank);
  } else if (headKind === 'lowRank') {
    fail(TypeError, WHERE, 'config.rank', 'must be given for headKind "lowRank" (an integer in [1, hiddenSize])', undefined);
  }
  let headHiddenSize: number | undefined;
  if (given['headHiddenSize'] !== undefined) {
    headHiddenSize = checkInteger(WHERE, 'config.headHiddenSize', given['headHiddenSize'], 1, SIZE_LIMITS.hiddenSize);
    if (headKind !== 'mlp') fail(TypeError, WHERE, 'config.headHiddenSize', `applies only to headKind "mlp" (headKind is ${show(headKind)})`, headHiddenSize);
  } else if (headKind === 'mlp') {
    fail(TypeError, WHERE, 'config.headHiddenSize', `must be given for headKind "mlp" (an integer in [1, ${SIZE_LIMITS.hiddenSize}])`, undefined);
  }
  const draftVocab = given['draftVocab'] === undefined || given['draftVocab'] === null ? null : checkDraftVocab(WHERE, 'config.draftVocab', given['draftVocab'], vocabSize);
  const seed = checkInteger(WHERE, 'config.seed', pick('seed'), -(2 ** 31), 2 ** 31 - 1);
  const name = pick('name');
  if (typeof name !== 'string' || name.length === 0) fail(TypeError, WHERE, 'config.name', 'must be a non-empty string', name);
  return {
    vocabSize, maxLength, hiddenSize, numLayers, numHeads, numKeyValueHeads, headDim, mlpRatio, mlpHiddenSize,
    norm, normEpsilon, positions, ropeTheta, ropeLayout, ropeScaling, mlp, useBias, attentionBias, mlpBias, tiedEmbeddings,
    mtpHeads, headKind, rank, headHiddenSize, draftVocab, seed, name,
  };
}
