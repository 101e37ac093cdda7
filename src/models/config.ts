/**
 * Configuration of the reference transformer: one documented object, defaults in one place,
 * resolved and checked once by `resolveTransformerConfig`.
 */
import type { OffsetHeadKind } from '../layers/index.js';
import { OFFSET_HEAD_KINDS } from '../layers/args.js';

/** Options of {@link createTransformer}. Every field is optional; see {@link TRANSFORMER_DEFAULTS}. */
export interface TransformerConfig {
  /** Size of the vocabulary V (token ids are integers in [0, V)). */
  vocabSize?: number;
  /** Context limit: most positions the model can attend over (size of the position table). */
  maxLength?: number;
  /** Width D of the residual stream. */
  hiddenSize?: number;
  /** Number of transformer blocks. */
  numLayers?: number;
  /** Attention heads per block; must divide `hiddenSize`. */
  numHeads?: number;
  /** MLP width as a multiple of `hiddenSize`. */
  mlpRatio?: number;
  /** Number k of multi-token heads (offset 0 is next-token; 1…k-1 draft further ahead). */
  mtpHeads?: number;
  /** Kind of the offset heads 1…k-1 (offset 0 is the identity, so it is a plain LM head). */
  headKind?: OffsetHeadKind;
  /** Rank of `lowRank` offset heads. */
  rank?: number;
  /** Seed of every initializer: the same seed gives the same initial weights. */
  seed?: number;
  /** Name of the `LayersModel`. */
  name?: string;
}

/** Fully resolved configuration. */
export type ResolvedTransformerConfig = Required<Omit<TransformerConfig, 'rank'>> & {
  /** Rank of `lowRank` offset heads; `undefined` for other kinds, or for the head layer's default. */
  rank: number | undefined;
};

/** Default configuration, each value with its reason. */
export const TRANSFORMER_DEFAULTS: ResolvedTransformerConfig = {
  vocabSize: 256, // byte-level tokenizer: every UTF-8 string encodes, nothing to ship
  maxLength: 128, // a few lines of code; the position table and attention stay tiny
  hiddenSize: 128, // small enough to train in ~30 min on one wasm thread, large enough to learn syntax
  numLayers: 4, // depth buys more than width at this size; a forward stays overhead-bound on wasm
  numHeads: 4, // head size 32, as in small GPTs
  mlpRatio: 4, // GPT-2's ratio
  mtpHeads: 4, // k = 4: draft 3 tokens per forward
  headKind: 'residual', // x + act(W·x), zero-initialized: starts as the next-token head, D² params each
  rank: undefined, // only for 'lowRank' heads (the head layer's default then applies)
  seed: 0, // deterministic initialization
  name: 'mtp_transformer',
};



function positiveInteger(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new RangeError(`createTransformer: config.${name} must be a positive integer, but got ${show(value)}.`);
  }
}

/**
 * Renders a received value for an error message. The decoders have their own: importing theirs
 * here would make it a module shared by both entry points, which the bundler puts in the chunk
 * with the layer classes, and an app importing only the decoders would then bundle the layers.
 */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (Array.isArray(value)) return value.length > 8 ? `an array of length ${value.length}` : `[${value.map(show).join(', ')}]`;
  return String(value);
}

/** Applies the defaults and checks every field; throws an `Error` naming the field and value. */
export function resolveTransformerConfig(config: TransformerConfig = {}): ResolvedTransformerConfig {
  if (config === null || typeof config !== 'object') {
    throw new TypeError(`createTransformer: config must be an object, but got ${show(config)}.`);
  }
  const unknown = Object.keys(config).find((key) => !(key in TRANSFORMER_DEFAULTS));
  if (unknown !== undefined) {
    throw new TypeError(`createTransformer: config.${unknown} is not an option (options: ${Object.keys(TRANSFORMER_DEFAULTS).join(', ')}).`);
  }
  const c: ResolvedTransformerConfig = { ...TRANSFORMER_DEFAULTS };
  for (const [key, value] of Object.entries(config)) {
    if (value !== undefined) (c as Record<string, unknown>)[key] = value;
  }
  for (const name of ['vocabSize', 'maxLength', 'hiddenSize', 'numLayers', 'numHeads', 'mlpRatio', 'mtpHeads'] as const) {
    positiveInteger(name, c[name]);
  }
  if (c.hiddenSize % c.numHeads !== 0) {
    throw new RangeError(
      `createTransformer: config.hiddenSize must be divisible by config.numHeads = ${c.numHeads}, but got ${c.hiddenSize}.`,
    );
  }
  if (!OFFSET_HEAD_KINDS.includes(c.headKind)) {
    throw new TypeError(`createTransformer: config.headKind must be one of ${OFFSET_HEAD_KINDS.map(show).join(', ')}, but got ${show(c.headKind)}.`);
  }
  if (c.rank !== undefined) positiveInteger('rank', c.rank);
  if (!Number.isInteger(c.seed)) {
    throw new TypeError(`createTransformer: config.seed must be an integer, but got ${show(c.seed)}.`);
  }
  return c;
}
