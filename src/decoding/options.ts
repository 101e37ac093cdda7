/**
 * Decoding options: one documented object per decoder, resolved (defaults applied, every field
 * checked) once at the entry point, so the loops below never re-check or re-default anything.
 */
import type { MultiTokenModel } from './model.js';
import { checkPrompt, checkModel, fail } from './validate.js';

/** A chunk of tokens committed by one decoding step. */
export interface TokenChunk {
  /** The committed token ids, in order. */
  tokens: number[];
  /**
   * How each token was produced: `0` = the verifier's own token (offset 0 — in `greedyDecode`
   * every token), `j ≥ 1` = a draft from offset `j` (accepted by verification in
   * `speculativeDecode`, unverified in `blockwiseDecode`).
   */
  sources: number[];
  /** 0-based index of the model forward that committed this chunk (0 = the prompt's forward). */
  step: number;
}

/** Options shared by every decoder. */
export interface DecodeOptions {
  /** Most new tokens to generate (a positive integer). Default: {@link DEFAULTS}.maxNewTokens. */
  maxNewTokens?: number;
  /**
   * Sampling temperature ≥ 0. `0` picks the most likely token (greedy, deterministic); `> 0`
   * samples from softmax(logits / temperature). Default `0`, except for `speculativeDecode`
   * with `acceptance: 'sampling'` or `'typical'`, where it is `1` (with `0` both reduce to greedy).
   */
  temperature?: number;
  /** When sampling, keep only the `topK` most likely tokens (a positive integer). Default: all. */
  topK?: number;
  /** When sampling, keep the smallest set of tokens whose probability reaches `topP` ∈ (0, 1]. Default `1`. */
  topP?: number;
  /** Seed of the sampler's random stream (an integer): the same seed gives the same output. Default: random. */
  seed?: number;
  /** Token ids that end decoding; the stop token is included in the output. Default: none. */
  stopTokens?: readonly number[];
  /** Aborting rejects the call with the signal's reason, after freeing every tensor. */
  signal?: AbortSignal;
  /** Called once per step with the tokens that step committed (for streaming UIs). */
  onToken?: (chunk: TokenChunk) => void;
}

/** How `speculativeDecode` decides which drafted tokens to keep. */
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
  /** Drafts per step, `0 ≤ draftLength ≤ numHeads - 1`. Default: `numHeads - 1`. */
  draftLength?: number;
  /** `'typical'` only: ε, the probability above which a draft is always plausible, in (0, 1]. Default: {@link DEFAULTS}.posteriorThreshold. */
  posteriorThreshold?: number;
  /** `'typical'` only: δ, scales the entropy-adaptive threshold δ·exp(−H(p)), in (0, 1]. Default: {@link DEFAULTS}.posteriorAlpha. */
  posteriorAlpha?: number;
}

/** Options of `blockwiseDecode`. */
export interface BlockwiseOptions extends DecodeOptions {
  /** Tokens emitted per step, `1 ≤ blockSize ≤ numHeads`. Default: `numHeads`. */
  blockSize?: number;
}

/** Every default in one place. */
export const DEFAULTS = Object.freeze({
  /** A short completion; callers generating more say so. */
  maxNewTokens: 64,
  /** Greedy unless asked otherwise: deterministic and the speculative baseline. */
  temperature: 0,
  /** Speculative sampling and typical acceptance are about sampling: their default temperature is the model's own. */
  samplingTemperature: 1,
  /** No nucleus truncation unless asked. */
  topP: 1,
  /** Lossless and deterministic. */
  acceptance: 'greedy' as AcceptanceRule,
  /** Typical acceptance's ε, Medusa's default (Cai et al. 2024, §2.3.1). */
  posteriorThreshold: 0.09,
  /** Typical acceptance's δ = √ε, Medusa's default. */
  posteriorAlpha: 0.3,
});

/** Sampling settings after resolution; `temperature === 0` means argmax. */
export interface SamplingSettings {
  temperature: number;
  topK: number;
  topP: number;
}

/** Options after validation and defaults (internal). */
export interface ResolvedOptions {
  fn: string;
  prompt: number[];
  maxNewTokens: number;
  sampling: SamplingSettings;
  seed: number;
  stopTokens: ReadonlySet<number>;
  signal: AbortSignal | undefined;
  onToken: ((chunk: TokenChunk) => void) | undefined;
}

/** Speculative options after validation and defaults (internal). */
export interface ResolvedSpeculativeOptions extends ResolvedOptions {
  acceptance: AcceptanceRule;
  draftLength: number;
  posteriorThreshold: number;
  posteriorAlpha: number;
}

const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x);

/** Validates the arguments every decoder takes and applies the defaults. */
export function resolveOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: readonly number[],
  options: DecodeOptions,
  defaultTemperature: number = DEFAULTS.temperature,
): ResolvedOptions {
  checkModel(fn, model);
  if (options === null || typeof options !== 'object') fail(TypeError, fn, 'options', 'must be an object', options);
  const { maxNewTokens = DEFAULTS.maxNewTokens, temperature = defaultTemperature } = options;
  const { topK = model.vocabSize, topP = DEFAULTS.topP, seed, stopTokens = [], signal, onToken } = options;
  if (!isInt(maxNewTokens) || maxNewTokens < 1) fail(RangeError, fn, 'options.maxNewTokens', 'must be a positive integer', maxNewTokens);
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    fail(RangeError, fn, 'options.temperature', 'must be a finite number ≥ 0', temperature);
  }
  if (!isInt(topK) || topK < 1) fail(RangeError, fn, 'options.topK', 'must be a positive integer', topK);
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) fail(RangeError, fn, 'options.topP', 'must be in (0, 1]', topP);
  if (seed !== undefined && !isInt(seed)) fail(TypeError, fn, 'options.seed', 'must be an integer', seed);
  if (!Array.isArray(stopTokens)) fail(TypeError, fn, 'options.stopTokens', 'must be an array of token ids', stopTokens);
  stopTokens.forEach((t, i) => {
    if (!isInt(t) || t < 0 || t >= model.vocabSize) {
      fail(RangeError, fn, `options.stopTokens[${i}]`, `must be an integer in [0, ${model.vocabSize})`, t);
    }
  });
  if (signal !== undefined && (signal === null || typeof signal.aborted !== 'boolean')) {
    fail(TypeError, fn, 'options.signal', 'must be an AbortSignal', signal);
  }
  if (onToken !== undefined && typeof onToken !== 'function') fail(TypeError, fn, 'options.onToken', 'must be a function', onToken);
  const ids = checkPrompt(fn, prompt, model);
  if (signal?.aborted) {
    throw new DOMException(`${fn}: options.signal is already aborted (reason: ${String(signal.reason)}); nothing was decoded.`, 'AbortError');
  }
  return {
    fn,
    prompt: ids,
    maxNewTokens,
    sampling: { temperature, topK: Math.min(topK, model.vocabSize), topP },
    seed: seed ?? Math.floor(Math.random() * 2 ** 32),
    stopTokens: new Set(stopTokens),
    signal,
    onToken,
  };
}

/** Validates and defaults `speculativeDecode`'s options. */
export function resolveSpeculativeOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: readonly number[],
  options: SpeculativeOptions,
): ResolvedSpeculativeOptions {
  const acceptance = options?.acceptance ?? DEFAULTS.acceptance;
  if (!['greedy', 'sampling', 'typical'].includes(acceptance)) {
    fail(TypeError, fn, 'options.acceptance', "must be 'greedy', 'sampling' or 'typical'", acceptance);
  }
  const defaultTemperature = acceptance === 'greedy' ? DEFAULTS.temperature : DEFAULTS.samplingTemperature;
  const base = resolveOptions(fn, model, prompt, options, defaultTemperature);
  if (acceptance === 'greedy' && base.sampling.temperature !== 0) {
    fail(RangeError, fn, 'options.temperature', "must be 0 with acceptance 'greedy' (use 'sampling' to sample)", base.sampling.temperature);
  }
  const maxDraft = model.numHeads - 1;
  const { draftLength = maxDraft } = options;
  if (!isInt(draftLength) || draftLength < 0 || draftLength > maxDraft) {
    fail(RangeError, fn, 'options.draftLength', `must be an integer in [0, numHeads - 1 = ${maxDraft}]`, draftLength);
  }
  const { posteriorThreshold = DEFAULTS.posteriorThreshold, posteriorAlpha = DEFAULTS.posteriorAlpha } = options;
  if (typeof posteriorThreshold !== 'number' || !(posteriorThreshold > 0 && posteriorThreshold <= 1)) {
    fail(RangeError, fn, 'options.posteriorThreshold', 'must be in (0, 1]', posteriorThreshold);
  }
  if (typeof posteriorAlpha !== 'number' || !(posteriorAlpha > 0 && posteriorAlpha <= 1)) {
    fail(RangeError, fn, 'options.posteriorAlpha', 'must be in (0, 1]', posteriorAlpha);
  }
  return { ...base, acceptance, draftLength, posteriorThreshold, posteriorAlpha };
}

/** Validates and defaults `blockwiseDecode`'s options; returns the block size too. */
export function resolveBlockwiseOptions(
  fn: string,
  model: MultiTokenModel,
  prompt: readonly number[],
  options: BlockwiseOptions,
): ResolvedOptions & { blockSize: number } {
  const base = resolveOptions(fn, model, prompt, options);
  const { blockSize = model.numHeads } = options;
  if (!isInt(blockSize) || blockSize < 1 || blockSize > model.numHeads) {
    fail(RangeError, fn, 'options.blockSize', `must be an integer in [1, numHeads = ${model.numHeads}]`, blockSize);
  }
  return { ...base, blockSize };
}
