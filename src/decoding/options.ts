/**
 * Decoding options: one documented object per decoder, resolved (defaults applied, every field
 * checked) once at the entry point, so the loops never re-check or re-default anything. Every
 * default lives in {@link DECODE_DEFAULTS}.
 */
import { checkInteger, fail } from '../internal/errors.js';
import { checkKeys } from '../internal/keys.js';
import type { SamplingSettings } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import { type DynamicTree, resolveTree, type TreeOption, type TreeSpec } from './tree.js';
import type { TokenChunk } from './result.js';
import { TREE_BACKEND_DEFAULTS } from './tree_auto.js';
import { checkModel, checkPrompt, toIds } from './validate.js';
import { type Drafter, headsDrafter, isHeadsDrafter, PROMPT_LOOKUP_DEFAULTS, resolveDrafters } from './drafters.js';

/** Token ids: an array or a typed array (e.g. `Int32Array`) of integers in [0, vocabSize). @inline */
export type TokenIds = readonly number[] | ArrayLike<number>;

/** Options shared by every decoder. */
export interface DecodeOptions {
  /** Most new tokens to generate (a positive integer). Default: {@link DECODE_DEFAULTS}.maxNewTokens. */
  maxNewTokens?: number;
  /**
   * Sampling temperature ≥ 0. `0` picks the most likely token (greedy, deterministic); `> 0`
   * samples from softmax(logits / temperature). A temperature below
   * {@link DECODE_DEFAULTS}.greedyBelowTemperature is greedy (the limit of sampling as the
   * temperature goes to 0; below it float32 logits / temperature would overflow). Default:
   * {@link DECODE_DEFAULTS}.temperature, except for `speculativeDecode` with `acceptance:
   * 'sampling'` or `'typical'`: {@link DECODE_DEFAULTS}.samplingTemperature.
   */
  temperature?: number;
  /** When sampling, keep only the `topK` most likely tokens (a positive integer). Default: all. */
  topK?: number;
  /** When sampling, keep the smallest set of most likely tokens whose probability reaches `topP` ∈ (0, 1]. Default: {@link DECODE_DEFAULTS}.topP. */
  topP?: number;
  /**
   * Seed of the sampler's random stream, an integer in [0, 2³² − 1]: the same seed gives the
   * same output. Default: a random seed.
   */
  seed?: number;
  /**
   * Token ids that end decoding; the stop token is included in the output. Default: the model's
   * own `stopTokens` (what the loaders record: llama2.c's BOS and EOS, a Hugging Face config's
   * `eos_token_id`), none for a model without; `[]` decodes past them.
   */
  stopTokens?: TokenIds;
  /**
   * Aborting rejects the call (or the stream's next step) with the signal's reason, after
   * freeing every tensor. Checked between steps; see `yieldEveryMs` for how often a page's
   * events (a Stop button) get to run during a decode.
   */
  signal?: AbortSignal;
  /**
   * Called once per step with the tokens that step committed (its own copy). A returned promise
   * is awaited before the next step (backpressure); if it rejects, or the callback throws, the
   * decode rejects with that error after freeing every tensor.
   */
  onToken?: (chunk: TokenChunk) => void | Promise<void>;
  /**
   * Lets the event loop run (timers, input, repaints, an abort) between steps once at least
   * this many milliseconds of wall time have passed since it last did; `0` = after every step.
   * A turn is an ordinary-priority macrotask that costs microseconds (`setImmediate` in Node, a
   * `MessageChannel` post in browsers). Default: {@link DECODE_DEFAULTS}.yieldEveryMs.
   */
  yieldEveryMs?: number;
}

/** How `speculativeDecode` decides which drafted tokens to keep. @inline */
export type AcceptanceRule = 'greedy' | 'sampling' | 'typical';

/** Options of `speculativeDecode`. */
export interface SpeculativeOptions extends DecodeOptions {
  /**
   * `'greedy'` (default): keep a draft iff it equals offset 0's argmax — output identical to
   * `greedyDecode`. `'sampling'`: speculative sampling (Leviathan et al. 2023) — the output is
   * distributed exactly as sampling from offset 0. `'typical'`: Medusa's typical acceptance —
   * opt-in, lossy, keeps any draft offset 0 finds plausible enough.
   */
  acceptance?: AcceptanceRule;
  /**
   * Drafts per step (a chain's length; a tree's depth), or `'auto'`: each step drafts the length
   * with the most tokens per millisecond under the step costs measured while decoding and the
   * acceptance seen so far, 0 included — an ordinary decoding step, chosen where speculation
   * does not pay on the running backend (the cpu backend prices every verified row in full). A
   * number fixes it: an integer in [0, numHeads − 1] with the heads, in [0,
   * {@link DECODE_DEFAULTS}.maxDraftLength] with drafters of your own. Default: `'auto'`.
   */
  draftLength?: number | 'auto';
  /**
   * Where drafts come from: the model's heads (`headsDrafter()`, the default), prompt lookup
   * (`promptLookupDrafter()`), your own {@link Drafter}, or a list of them — each step the first
   * that proposes anything wins (`[promptLookupDrafter(), headsDrafter()]`: n-gram copies where the
   * text repeats, the heads elsewhere). Verification is the same whatever drafts, so the output
   * never depends on it.
   */
  drafter?: Drafter | readonly Drafter[];
  /** `'typical'` only: ε, the probability above which a draft is always plausible, in (0, 1]. Default: {@link DECODE_DEFAULTS}.posteriorThreshold. */
  posteriorThreshold?: number;
  /** `'typical'` only: δ, scales the entropy-adaptive threshold δ·exp(−H(p)), in (0, 1]. Default: {@link DECODE_DEFAULTS}.posteriorAlpha. */
  posteriorAlpha?: number;
  /**
   * Verify a tree of candidate continuations per step instead of one chain of drafts: a static
   * list of paths of per-depth candidate ranks (Medusa's form, e.g. `[[0], [1], [0, 0], [0, 1],
   * [1, 0]]`; every prefix of a path must be listed too, and no path may be longer than
   * `draftLength`), or `{ topK, maxNodes }` for a tree grown each step from the heads' top-`topK`
   * per depth, keeping the `maxNodes` paths of the highest draft log-probability (EAGLE-2).
   * Exact like the chain with every acceptance rule that is. `'auto'` keeps, each step, the
   * number of best-first nodes whose expected accepted length per unit of cost is highest, the
   * costs measured on the decode's own steps (as `draftLength: 'auto'` sizes a chain). The model
   * needs `forwardTree` and `keepRows` (`CachedTransformer` has both). Default: none (a chain). `defaultTree()` gives the running backend's measured
   * budget; see {@link DECODE_DEFAULTS}.tree.
   */
  tree?: TreeOption;
}

/** Options of `blockwiseDecode`. @inline */
export interface BlockwiseOptions extends DecodeOptions {
  /** Tokens emitted per step, `1 ≤ blockSize ≤ numHeads`. Default: `numHeads`. */
  blockSize?: number;
}

/** Every decoding default in one place, each with its reason. */
export const DECODE_DEFAULTS = Object.freeze({
  /** A short completion; callers generating more say so. */
  maxNewTokens: 64,
  /** Greedy unless asked otherwise: deterministic and the speculative baseline. */
  temperature: 0,
  /** Speculative sampling and typical acceptance are about sampling: their default temperature is the model's own. */
  samplingTemperature: 1,
  /**
   * Temperatures below this are greedy: logits differ by at least a float32 ulp (~1e-7 of
   * their size), so at 1e-6 every non-tied token already has a relative weight below e⁻¹⁰ or so,
   * and far below it logits / temperature overflows float32.
   */
  greedyBelowTemperature: 1e-6,
  /** No nucleus truncation unless asked. */
  topP: 1,
  /** Lossless and deterministic. */
  acceptance: 'greedy' as AcceptanceRule,
  /** `draftLength: 'auto'`'s ceiling with drafters other than the heads (prompt lookup): a forward over 8 rows costs about one row's on wasm at small sizes. */
  maxDraftLength: 7,
  /** Typical acceptance's ε, Medusa's default (Cai et al. 2024, §2.3.1). */
  posteriorThreshold: 0.09,
  /** Typical acceptance's δ = √ε, Medusa's default. */
  posteriorAlpha: 0.3,
  /**
   * A dynamic tree that measured well on every backend it was measured on (what `defaultTree()`
   * gives a backend without a measured tree of its own). `defaultTree()` gives the running
   * backend's own measured tree (docs/performance.md, "Tree drafting"). A suggestion to pass as
   * `tree`, never applied unless asked (a chain is the default).
   */
  tree: TREE_BACKEND_DEFAULTS.fallback as Readonly<DynamicTree>,
  /**
   * About one 60 Hz frame: a page stays responsive (a click is seen within a frame or two)
   * while the turns themselves cost well under 1 % of decoding time.
   */
  yieldEveryMs: 10,
  /** `promptLookupDrafter`'s defaults, each with its reason. */
  promptLookup: PROMPT_LOOKUP_DEFAULTS,
});

/** Options after validation and defaults (internal). */
export interface ResolvedOptions {
  fn: string;
  prompt: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  seed: number;
  stopTokens: ReadonlySet<number>;
  signal: AbortSignal | undefined;
  onToken: ((chunk: TokenChunk) => void | Promise<void>) | undefined;
  yieldEveryMs: number;
}

/** Speculative options after validation and defaults (internal). */
export interface ResolvedSpeculativeOptions extends ResolvedOptions {
  acceptance: AcceptanceRule;
  /** The deepest draft (the ceiling when `autoLength`). */
  draftLength: number;
  /** `draftLength: 'auto'`: the tuner sizes each step. */
  autoLength: boolean;
  /** The drafters, in the order they are asked. */
  drafters: Drafter[];
  posteriorThreshold: number;
  posteriorAlpha: number;
  /** The draft tree, or null for a chain. */
  tree: TreeSpec | null;
}

/** Blockwise options after validation and defaults (internal). */
export interface ResolvedBlockwiseOptions extends ResolvedOptions {
  blockSize: number;
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** The keys of {@link DecodeOptions}: any other key is refused (a misspelled option would be ignored). */
const DECODE_OPTION_KEYS = ['maxNewTokens', 'temperature', 'topK', 'topP', 'seed', 'stopTokens', 'signal', 'onToken', 'yieldEveryMs'] as const;
/** The keys of {@link SpeculativeOptions}. */
const SPECULATIVE_OPTION_KEYS = [...DECODE_OPTION_KEYS, 'acceptance', 'draftLength', 'drafter', 'posteriorThreshold', 'posteriorAlpha', 'tree'] as const;
/** The keys of {@link BlockwiseOptions}. */
const BLOCKWISE_OPTION_KEYS = [...DECODE_OPTION_KEYS, 'blockSize'] as const;

/** Checks that `signal` is an AbortSignal (anything with a boolean `aborted` and `throwIfAborted`). */
function checkSignal(fn: string, signal: unknown): void {
  const s = signal as Partial<AbortSignal> | null;
  if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.throwIfAborted !== 'function') {
    fail(TypeError, fn, 'options.signal', 'must be an AbortSignal (with a boolean aborted and a throwIfAborted method)', signal);
  }
}

/** Validates the arguments every decoder takes and applies the defaults. */
export function resolveOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: TokenIds,
  options: DecodeOptions,
  defaultTemperature: number = DECODE_DEFAULTS.temperature,
  known: readonly string[] = DECODE_OPTION_KEYS,
): ResolvedOptions {
  checkModel(fn, model);
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  checkKeys(fn, 'options', options, known);
  const { maxNewTokens = DECODE_DEFAULTS.maxNewTokens, temperature = defaultTemperature, topK = model.vocabSize } = options;
  const { topP = DECODE_DEFAULTS.topP, seed, signal, onToken, yieldEveryMs = DECODE_DEFAULTS.yieldEveryMs } = options;
  const stopTokens = options.stopTokens ?? model.stopTokens ?? []; // the model's own end-of-text ids unless the caller says
  if (!isInt(maxNewTokens) || maxNewTokens < 1) fail(RangeError, fn, 'options.maxNewTokens', 'must be a positive integer', maxNewTokens);
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    fail(RangeError, fn, 'options.temperature', 'must be a finite number ≥ 0', temperature);
  }
  if (!isInt(topK) || topK < 1) fail(RangeError, fn, 'options.topK', 'must be a positive integer', topK);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) fail(RangeError, fn, 'options.topP', 'must be in (0, 1]', topP);
  if (seed !== undefined) checkInteger(fn, 'options.seed', seed, 0, 2 ** 32 - 1);
  const stops = toIds(fn, options.stopTokens === undefined && model.stopTokens !== undefined ? 'model.stopTokens' : 'options.stopTokens', stopTokens, model.vocabSize);
  if (signal !== undefined) checkSignal(fn, signal);
  if (onToken !== undefined && typeof onToken !== 'function') fail(TypeError, fn, 'options.onToken', 'must be a function', onToken);
  if (typeof yieldEveryMs !== 'number' || !(yieldEveryMs >= 0)) fail(RangeError, fn, 'options.yieldEveryMs', 'must be a number ≥ 0', yieldEveryMs);
  const ids = checkPrompt(fn, prompt, model);
  if (signal?.aborted) throw signal.reason ?? new DOMException(`${fn}: options.signal is already aborted; nothing was decoded.`, 'AbortError'); // the signal's reason, as an abort mid-way
  return {
    fn,
    prompt: ids,
    maxNewTokens,
    sampling: {
      temperature: temperature < DECODE_DEFAULTS.greedyBelowTemperature ? 0 : temperature,
      topK: Math.min(topK, model.vocabSize),
      topP,
    },
    seed: seed ?? Math.floor(Math.random() * 2 ** 32),
    stopTokens: new Set(stops),
    signal,
    onToken,
    yieldEveryMs,
  };
}

/** Validates and defaults `speculativeDecode`'s options. */
export function resolveSpeculativeOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: TokenIds,
  options: SpeculativeOptions,
): ResolvedSpeculativeOptions {
  const acceptance = options?.acceptance ?? DECODE_DEFAULTS.acceptance;
  if (!['greedy', 'sampling', 'typical'].includes(acceptance)) {
    fail(TypeError, fn, 'options.acceptance', "must be 'greedy', 'sampling' or 'typical'", acceptance);
  }
  const defaultTemperature = acceptance === 'greedy' ? DECODE_DEFAULTS.temperature : DECODE_DEFAULTS.samplingTemperature;
  const base = resolveOptions(fn, model, prompt, options, defaultTemperature, SPECULATIVE_OPTION_KEYS);
  if (acceptance === 'greedy' && base.sampling.temperature !== 0) {
    fail(RangeError, fn, 'options.temperature', "must be 0 with acceptance 'greedy' (use 'sampling' to sample)", options.temperature);
  }
  const drafters = resolveDrafters(fn, options.drafter ?? headsDrafter());
  const headsOnly = drafters.every(isHeadsDrafter);
  const maxDraft = headsOnly ? model.numHeads - 1 : Math.max(model.numHeads - 1, DECODE_DEFAULTS.maxDraftLength);
  const { draftLength: given = 'auto' } = options;
  if (given !== 'auto' && (!isInt(given) || given < 0 || given > maxDraft)) {
    const bound = headsOnly ? `numHeads - 1 = ${maxDraft}` : `max(numHeads - 1, DECODE_DEFAULTS.maxDraftLength) = ${maxDraft}`;
    fail(RangeError, fn, 'options.draftLength', `must be 'auto' or an integer in [0, ${bound}]`, given);
  }
  const autoLength = given === 'auto';
  const draftLength = given === 'auto' ? maxDraft : given;
  const { posteriorThreshold = DECODE_DEFAULTS.posteriorThreshold, posteriorAlpha = DECODE_DEFAULTS.posteriorAlpha } = options;
  if (typeof posteriorThreshold !== 'number' || !(posteriorThreshold > 0 && posteriorThreshold <= 1)) {
    fail(RangeError, fn, 'options.posteriorThreshold', 'must be in (0, 1]', posteriorThreshold);
  }
  if (typeof posteriorAlpha !== 'number' || !(posteriorAlpha > 0 && posteriorAlpha <= 1)) {
    fail(RangeError, fn, 'options.posteriorAlpha', 'must be in (0, 1]', posteriorAlpha);
  }
  let tree: TreeSpec | null = null;
  if (options.tree !== undefined) {
    if (!drafters.some(isHeadsDrafter)) {
      throw new TypeError(`${fn}: options.tree shapes the heads' drafts, so options.drafter must include headsDrafter(), but it is [${drafters.map((d) => d.name).join(', ')}].`);
    }
    const candidates = Math.min(model.vocabSize, model.draftVocab?.length ?? model.vocabSize); // trees rank within the draft vocabulary
    tree = resolveTree(fn, options.tree, autoLength ? model.numHeads - 1 : draftLength, candidates);
    const missing = (['forwardTree', 'keepRows'] as const).filter((m) => typeof model[m] !== 'function');
    if (missing.length > 0) {
      throw new TypeError(`${fn}: options.tree needs a model with forwardTree and keepRows (one forward over the tree, then keeping the accepted path's positions), but model.${missing.join(' and model.')} ${missing.length > 1 ? 'are' : 'is'} missing.`);
    }
  }
  return { ...base, acceptance, draftLength, autoLength, drafters, posteriorThreshold, posteriorAlpha, tree };
}

/** Validates and defaults `blockwiseDecode`'s options; returns the block size too. */
export function resolveBlockwiseOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: TokenIds,
  options: BlockwiseOptions,
): ResolvedBlockwiseOptions {
  const base = resolveOptions(fn, model, prompt, options, DECODE_DEFAULTS.temperature, BLOCKWISE_OPTION_KEYS);
  const { blockSize = model.numHeads } = options;
  if (!isInt(blockSize) || blockSize < 1 || blockSize > model.numHeads) {
    fail(RangeError, fn, 'options.blockSize', `must be an integer in [1, numHeads = ${model.numHeads}]`, blockSize);
  }
  return { ...base, blockSize };
}
