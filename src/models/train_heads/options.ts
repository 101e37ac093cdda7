/**
 * The options of `trainDraftHeads`, their defaults (one place, each with its reason) and their
 * validation: every option is checked, and unknown keys refused naming the nearest one, before
 * any work starts. Errors read `trainDraftHeads: options.<key> <constraint>, but got <value>.`
 */
import { checkKeys } from '../../internal/keys.js';
import { checkBoolean, checkFiniteNumber, checkInteger, fail, SIZE_LIMITS } from '../../internal/errors.js';

/** A tokenizer as `trainDraftHeads` needs it: text to token ids. @inline */
export interface TextEncoderLike {
  /** The token ids of `text`. */
  encode(text: string): number[];
}

/** What `onProgress` receives: where training is, called after every step and every corpus batch. @inline */
export interface TrainDraftHeadsProgress {
  /** `corpus`: the frozen model writes (or reads) the training text; `training`: Adam steps; `evaluating`: held-out metrics. */
  phase: 'corpus' | 'training' | 'evaluating';
  /** Adam steps done. */
  step: number;
  /** The step bound (`options.steps`), when given. */
  steps?: number;
  /** Mean loss over offsets 1…k−1 of the last step (NaN before the first). */
  loss: number;
  /** Loss of each offset 1…k−1 at the last step (empty before the first). */
  lossPerOffset: number[];
  /** Corpus: tokens generated per second; training: positions (rows) trained per second. */
  tokensPerSecond: number;
  /** Tokens in the corpus (so far, during the corpus phase). */
  corpusTokens: number;
  /** The last held-out τ estimate (tokens per forward along the decoder's steps), once evaluated. */
  heldOutTau?: number;
  /** Seconds since the call. */
  seconds: number;
}

/** Options of `trainDraftHeads`. The defaults are {@link TRAIN_HEADS_DEFAULTS}'. */
export interface TrainDraftHeadsOptions {
  /**
   * Training text as token ids (each an array of ids in `[0, vocabSize)`). Longer ones are cut
   * into pieces of `sequenceTokens`. Neither this nor `texts`: self-distillation (the frozen model
   * writes its own corpus).
   */
  sequences?: ReadonlyArray<ArrayLike<number>>;
  /** Training text as strings, encoded with `tokenizer` (give both, or neither). */
  texts?: readonly string[];
  /** Encodes `texts` (e.g. the `Llama2cTokenizer` of `loadLlama2c`). */
  tokenizer?: TextEncoderLike;
  /**
   * Self-distillation: the token ids each generated sequence starts from (e.g. the tokenizer's
   * encoding of a few story openings, BOS first). Default: the model's own start token (its
   * first stop token, llama2.c's BOS) followed by sampled tokens, so the corpus varies by itself.
   */
  openings?: ReadonlyArray<ArrayLike<number>>;
  /** Self-distillation: tokens the model writes, openings included (whole batches; fewer if the corpus reaches half of `seconds`). */
  corpusTokens?: number;
  /** Self-distillation: share of greedy continuations (what greedy acceptance sees); the rest are temperature / top-p samples. */
  greedyShare?: number;
  /** Tokens per training sequence: generated sequences have this length, given ones are cut to it. At most the model's context. */
  sequenceTokens?: number;
  /** A draft vocabulary of the N most frequent tokens of the training text, set on the head before training (FR-Spec). Default: the head's own. */
  draftVocab?: number;
  /** Wall-time budget of the whole call (corpus, training, evaluation), in seconds. */
  seconds?: number;
  /** Stop after this many Adam steps. With `seconds` too, whichever comes first; alone, no time bound. */
  steps?: number;
  /** Positions per Adam step. */
  batchSize?: number;
  /** Adam's learning rate at the start; it decays linearly to 10 % over the budget. */
  learningRate?: number;
  /** Offset j at position p learns the frozen model's choice at p + j: its argmax (`hard`), its distribution (`soft`), or half each (`mix`). */
  targets?: 'hard' | 'soft' | 'mix';
  /**
   * Adds HASS's ranking term: the cross-entropy with the frozen model's distribution kept on its K
   * most likely tokens (zero elsewhere), which rewards offering those tokens in the model's order —
   * what a tree's top-k drafting tries. 0: none; at most 64 (K ids and probabilities are kept per
   * corpus position).
   */
  topK?: number;
  /**
   * What sequential modules are fed while training: the text's true tokens (`'truth'`, teacher
   * forcing) or what a decode feeds them (`'drafts'`: module j + 1 gets module j's own draft,
   * EAGLE-3's training-time test; one more pass of the modules per step). Parallel heads are fed
   * no tokens: `'drafts'` is refused for them.
   */
  feed?: 'truth' | 'drafts';
  /** Share of the sequences held out for the metrics and the τ estimate (0: none; then an abort keeps the last heads). */
  heldOut?: number;
  /** Seconds between held-out evaluations during training (an abort keeps the best evaluated heads). */
  evaluateEvery?: number;
  /** Seed of the corpus, the held-out split and the batches: the same seed and `steps` give the same heads. */
  seed?: number;
  /**
   * Aborting before the call rejects with `signal.reason`; during the corpus, too (nothing was
   * trained); during training, it stops at the next step and resolves with the best heads
   * evaluated so far (the current heads are evaluated once more first).
   */
  signal?: AbortSignal;
  /** Called after every corpus batch, every step and every evaluation. */
  onProgress?: (progress: TrainDraftHeadsProgress) => void;
  /** Write the trained heads (and their draft vocabulary) into the model. `false`: the model is left as it was. */
  attach?: boolean;
}

/** The defaults of {@link TrainDraftHeadsOptions}. */
export const TRAIN_HEADS_DEFAULTS = Object.freeze({
  /** Enough text that the heads do not overfit in a few minutes of training (with less, held-out loss rises above training loss within a minute). */
  corpusTokens: 100_000,
  /**
   * All greedy: a sampled text's targets depend on the sampled tokens, which parallel heads never
   * see (noise for them: held-out decoded τ ~0.1 lower with a fifth sampled); lower it for
   * sequential modules trained for sampling acceptance.
   */
  greedyShare: 1,
  /** Decoding reaches a few hundred positions: heads trained on shorter texts never see the states there (τ drops). */
  sequenceTokens: 256,
  /** A minute: a useful first set of heads on a small model (see docs/training-heads.md). */
  seconds: 60,
  /** Large batches of cached positions: one step is a few small matMuls per offset. */
  batchSize: 1024,
  /** Adam on small heads over a short budget; decays linearly to 10 %. */
  learningRate: 1e-2,
  /** The argmax is the greedy acceptance test itself. */
  targets: 'hard' as const,
  /** No ranking term: plain distillation. */
  topK: 0,
  /** Teacher forcing: cheaper per step, and in greedy text the true token is what an accepted draft was. */
  feed: 'truth' as const,
  /** Enough held-out text for a τ estimate within a few hundredths. */
  heldOut: 0.1,
  /** Frequent enough that an abort loses little, rare enough to cost a few percent. */
  evaluateEvery: 10,
  /** Reproducible by default. */
  seed: 1,
  /** The usual intent: train the model's heads, then decode with them. */
  attach: true,
});

/** Self-distillation sampling: temperature and top-p of the sampled sequences and prefixes. */
export const SAMPLING = Object.freeze({ temperature: 0.8, topP: 0.9 });

/** Every key of {@link TrainDraftHeadsOptions}. */
const KEYS = [
  'sequences',
  'texts',
  'tokenizer',
  'openings',
  'corpusTokens',
  'greedyShare',
  'sequenceTokens',
  'draftVocab',
  'seconds',
  'steps',
  'batchSize',
  'learningRate',
  'targets',
  'topK',
  'feed',
  'heldOut',
  'evaluateEvery',
  'seed',
  'signal',
  'onProgress',
  'attach',
] as const;

/** Where the training text comes from. */
export type DataSource = { kind: 'sequences'; sequences: number[][] } | { kind: 'self'; openings: number[][] | null; corpusTokens: number; greedyShare: number };

/** Options after validation and defaults. */
export interface ResolvedTrainOptions {
  data: DataSource;
  sequenceTokens: number;
  draftVocab: number | null;
  /** Seconds of the whole call (Infinity: only `steps` bounds it). */
  seconds: number;
  /** Step bound (Infinity: only `seconds` bounds it). */
  steps: number;
  batchSize: number;
  learningRate: number;
  targets: 'hard' | 'soft' | 'mix';
  topK: number;
  feed: 'truth' | 'drafts';
  heldOut: number;
  evaluateEvery: number;
  seed: number;
  signal: AbortSignal | undefined;
  onProgress: ((p: TrainDraftHeadsProgress) => void) | undefined;
  attach: boolean;
}

/** What the model allows: vocabulary size, context length, offsets. */
export interface ModelLimits {
  vocabSize: number;
  maxLength: number;
  numHeads: number;
}

const FN = 'trainDraftHeads';
const TARGETS = ['hard', 'soft', 'mix'] as const;
const FEEDS = ['truth', 'drafts'] as const;
/** Largest `topK`: the targets keep K ids and probabilities per corpus position (HASS uses K ≤ 10). */
export const MAX_TOP_K = 64;

/** Checks `value` as a list of token-id lists in [0, V) (each non-empty); returns plain copies. */
function checkIdLists(arg: string, value: unknown, vocabSize: number): number[][] {
  if (!Array.isArray(value) || value.length === 0) fail(TypeError, FN, arg, 'must be a non-empty array of token-id arrays', value);
  return value.map((ids: unknown, i) => checkIds(`${arg}[${i}]`, ids, vocabSize));
}

/** Checks one list of token ids in [0, V) (non-empty); returns a plain copy. */
function checkIds(arg: string, ids: unknown, vocabSize: number): number[] {
  const isList = Array.isArray(ids) || (ArrayBuffer.isView(ids) && !(ids instanceof DataView));
  if (!isList || (ids as ArrayLike<unknown>).length === 0) fail(TypeError, FN, arg, 'must be a non-empty array of token ids', ids);
  const out = Array.from(ids as ArrayLike<unknown>);
  out.forEach((t, n) => {
    if (typeof t !== 'number' || !Number.isInteger(t) || t < 0 || t >= vocabSize) fail(RangeError, FN, `${arg}[${n}]`, `must be a token id, an integer in [0, ${vocabSize})`, t);
  });
  return out as number[];
}

/** The training data options: given sequences, texts + tokenizer, or self-distillation settings. */
function resolveData(o: TrainDraftHeadsOptions, limits: ModelLimits): DataSource {
  const given = o.sequences !== undefined ? 'sequences' : o.texts !== undefined ? 'texts' : null;
  if (o.sequences !== undefined && o.texts !== undefined) fail(TypeError, FN, 'options.texts', 'must not be given with options.sequences (give one of them)', o.texts);
  if (o.texts !== undefined && o.tokenizer === undefined) fail(TypeError, FN, 'options.tokenizer', 'must be given with options.texts (an object with encode(text): number[])', undefined);
  if (o.tokenizer !== undefined && o.texts === undefined) fail(TypeError, FN, 'options.texts', 'must be given with options.tokenizer (an array of strings)', undefined);
  if (given !== null) {
    for (const key of ['openings', 'corpusTokens', 'greedyShare'] as const) {
      if (o[key] !== undefined) fail(TypeError, FN, `options.${key}`, `applies to self-distillation only (not with options.${given})`, o[key]);
    }
  }
  if (o.sequences !== undefined) return { kind: 'sequences', sequences: checkIdLists('options.sequences', o.sequences, limits.vocabSize) };
  if (o.texts !== undefined) {
    const tokenizer = o.tokenizer as Partial<TextEncoderLike> | null;
    if (tokenizer === null || typeof tokenizer !== 'object' || typeof tokenizer.encode !== 'function') fail(TypeError, FN, 'options.tokenizer', 'must be an object with encode(text): number[]', tokenizer);
    if (!Array.isArray(o.texts) || o.texts.length === 0) fail(TypeError, FN, 'options.texts', 'must be a non-empty array of strings', o.texts);
    const sequences = o.texts.map((text: unknown, i) => {
      if (typeof text !== 'string') fail(TypeError, FN, `options.texts[${i}]`, 'must be a string', text);
      return checkIds(`options.tokenizer.encode(options.texts[${i}])`, tokenizer.encode!(text), limits.vocabSize);
    });
    return { kind: 'sequences', sequences };
  }
  const openings = o.openings === undefined ? null : checkIdLists('options.openings', o.openings, limits.vocabSize);
  const corpusTokens = o.corpusTokens === undefined ? TRAIN_HEADS_DEFAULTS.corpusTokens : checkInteger(FN, 'options.corpusTokens', o.corpusTokens, 1, 2 ** 31 - 1);
  const greedyShare = o.greedyShare === undefined ? TRAIN_HEADS_DEFAULTS.greedyShare : checkFiniteNumber(FN, 'options.greedyShare', o.greedyShare, 0, 1);
  return { kind: 'self', openings, corpusTokens, greedyShare };
}

/**
 * Validates `options` against the model's `limits` and applies the defaults. An already aborted
 * signal throws its reason, after every other check.
 */
export function resolveTrainOptions(options: unknown, limits: ModelLimits): ResolvedTrainOptions {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) fail(TypeError, FN, 'options', 'must be an object', options);
  checkKeys(FN, 'options', options, KEYS);
  const o = options as TrainDraftHeadsOptions;
  const data = resolveData(o, limits);
  const sequenceTokens = o.sequenceTokens === undefined ? Math.min(TRAIN_HEADS_DEFAULTS.sequenceTokens, limits.maxLength) : checkInteger(FN, 'options.sequenceTokens', o.sequenceTokens, limits.numHeads, limits.maxLength);
  if (sequenceTokens < limits.numHeads) fail(RangeError, FN, 'model', `must have a context of at least numHeads (${limits.numHeads}) positions`, limits.maxLength);
  const draftVocab = o.draftVocab === undefined ? null : checkInteger(FN, 'options.draftVocab', o.draftVocab, 1, limits.vocabSize);
  if (o.seconds !== undefined && (typeof o.seconds !== 'number' || !(o.seconds > 0) || !Number.isFinite(o.seconds))) fail(RangeError, FN, 'options.seconds', 'must be a finite number > 0', o.seconds);
  const steps = o.steps === undefined ? Infinity : checkInteger(FN, 'options.steps', o.steps, 1, Number.MAX_SAFE_INTEGER);
  const seconds = o.seconds ?? (o.steps === undefined ? TRAIN_HEADS_DEFAULTS.seconds : Infinity);
  const batchSize = o.batchSize === undefined ? TRAIN_HEADS_DEFAULTS.batchSize : checkInteger(FN, 'options.batchSize', o.batchSize, 1, SIZE_LIMITS.maxLength);
  const learningRate = o.learningRate === undefined ? TRAIN_HEADS_DEFAULTS.learningRate : checkFiniteNumber(FN, 'options.learningRate', o.learningRate, 0, 1);
  if (learningRate <= 0) fail(RangeError, FN, 'options.learningRate', 'must be a number in (0, 1]', learningRate);
  const targets = o.targets ?? TRAIN_HEADS_DEFAULTS.targets;
  if (!TARGETS.includes(targets)) fail(TypeError, FN, 'options.targets', `must be one of ${TARGETS.map((t) => `'${t}'`).join(', ')}`, targets);
  const topK = o.topK === undefined ? TRAIN_HEADS_DEFAULTS.topK : checkInteger(FN, 'options.topK', o.topK, 0, Math.min(MAX_TOP_K, limits.vocabSize));
  const feed = o.feed ?? TRAIN_HEADS_DEFAULTS.feed;
  if (!FEEDS.includes(feed)) fail(TypeError, FN, 'options.feed', `must be one of ${FEEDS.map((t) => `'${t}'`).join(', ')}`, feed);
  const heldOut = o.heldOut === undefined ? TRAIN_HEADS_DEFAULTS.heldOut : checkFiniteNumber(FN, 'options.heldOut', o.heldOut, 0, 0.5);
  const evaluateEvery = o.evaluateEvery === undefined ? TRAIN_HEADS_DEFAULTS.evaluateEvery : checkFiniteNumber(FN, 'options.evaluateEvery', o.evaluateEvery, 0, Infinity);
  const seed = o.seed === undefined ? TRAIN_HEADS_DEFAULTS.seed : checkInteger(FN, 'options.seed', o.seed, 0, 2 ** 32 - 1);
  const signal = o.signal;
  if (signal !== undefined) {
    const s = signal as Partial<AbortSignal> | null;
    if (s === null || typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.throwIfAborted !== 'function') fail(TypeError, FN, 'options.signal', 'must be an AbortSignal', signal);
  }
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') fail(TypeError, FN, 'options.onProgress', 'must be a function', o.onProgress);
  const attach = o.attach === undefined ? TRAIN_HEADS_DEFAULTS.attach : checkBoolean(FN, 'options.attach', o.attach);
  if (signal?.aborted) throw signal.reason ?? new DOMException(`${FN}: options.signal is already aborted; nothing was trained.`, 'AbortError');
  return { data, sequenceTokens, draftVocab, seconds, steps, batchSize, learningRate, targets, topK, feed, heldOut, evaluateEvery, seed, signal, onProgress: o.onProgress, attach };
}
