/**
 * What every decoder shares around its loop: committing tokens (stop tokens, the token
 * budget), the statistics, one decode per model at a time, and the generator → promise
 * bridge. The loops themselves live in greedy.ts, blockwise.ts and speculative.ts.
 */
import type { MultiTokenModel } from './model.js';
import type { ResolvedOptions, TokenChunk } from './options.js';
import { uniformStream } from './random.js';

/** Why decoding ended. `'context'`: the model's context (`maxLength`) is full. */
export type FinishReason = 'length' | 'stop' | 'context';

/**
 * Statistics of one decode. τ (`meanAcceptedLength`) follows vLLM and EAGLE: tokens committed
 * per verification forward, the bonus/correction token included — so greedy decoding has τ = 1
 * and a speculative step that keeps all d drafts commits d + 1. The prompt's forward commits
 * one token and counts as a forward.
 */
export interface DecodeStats {
  /** Model forwards (calls to `model.forward`), the prompt's included. */
  forwards: number;
  /** Tokens committed (= `tokens.length` of the result). */
  tokens: number;
  /** τ = tokens / forwards. */
  meanAcceptedLength: number;
  /** Drafted tokens that went through verification. */
  drafted: number;
  /** Drafted tokens that verification kept. */
  accepted: number;
  /**
   * Per offset j = 1 … k-1 (index j - 1): the share of steps drafting offset j in which its
   * draft was kept (which requires offsets 1 … j-1 kept too), as vLLM reports per position.
   * `NaN` where offset j never drafted.
   */
  acceptanceRates: number[];
  /** Milliseconds from the call to the end, validation and prompt included. */
  wallTimeMs: number;
  /** Milliseconds from the call until the first token was committed. */
  timeToFirstTokenMs: number;
  /** tokens / wall time, in tokens per second. */
  tokensPerSecond: number;
}

/** What every decoder resolves to. */
export interface DecodeResult {
  /** The new token ids (the prompt excluded; a stop token, if hit, included last). */
  tokens: number[];
  /** Per token, how it was produced (see {@link TokenChunk.sources}). */
  sources: number[];
  /** Why decoding ended. */
  finishReason: FinishReason;
  /** Counts and timings. */
  stats: DecodeStats;
}

const busy = new WeakSet<MultiTokenModel>();

/** Marks `model` as decoding; throws if another decode is using it (they would share its cache). */
export function acquire(fn: string, model: MultiTokenModel): () => void {
  if (busy.has(model)) {
    throw new Error(`${fn}: model is already being decoded by another call; its cache cannot be shared. Await that call first, or use a second model instance.`);
  }
  busy.add(model);
  return () => busy.delete(model);
}

/** Collects committed tokens and counts; decides when to stop. */
export class Transcript {
  readonly tokens: number[] = [];
  readonly sources: number[] = [];
  finishReason: FinishReason | null = null;
  forwards = 0;
  private readonly drafted: number[];
  private readonly kept: number[];
  private readonly start = now();
  private firstTokenAt = NaN;

  constructor(private readonly opts: ResolvedOptions, numHeads: number) {
    this.drafted = new Array<number>(Math.max(0, numHeads - 1)).fill(0);
    this.kept = new Array<number>(Math.max(0, numHeads - 1)).fill(0);
  }

  /** Records that offsets 1…`drafted` drafted in one step and the first `kept` were kept. */
  recordDrafts(drafted: number, kept: number): void {
    for (let j = 0; j < drafted; j++) {
      this.drafted[j]++;
      if (j < kept) this.kept[j]++;
    }
  }

  /**
   * Appends tokens in order until the budget or a stop token ends decoding; reports the chunk
   * actually committed to `onToken`. Returns true when decoding is finished.
   */
  commit(tokens: readonly number[], sources: readonly number[]): boolean {
    const chunk: TokenChunk = { tokens: [], sources: [], step: this.forwards - 1 };
    for (let i = 0; i < tokens.length && this.finishReason === null; i++) {
      chunk.tokens.push(tokens[i]);
      chunk.sources.push(sources[i]);
      if (this.opts.stopTokens.has(tokens[i])) this.finishReason = 'stop';
      else if (this.tokens.length + chunk.tokens.length >= this.opts.maxNewTokens) this.finishReason = 'length';
    }
    this.tokens.push(...chunk.tokens);
    this.sources.push(...chunk.sources);
    if (Number.isNaN(this.firstTokenAt) && chunk.tokens.length > 0) this.firstTokenAt = now();
    this.lastChunk = chunk;
    this.opts.onToken?.(chunk);
    return this.finishReason !== null;
  }

  /** The chunk committed by the latest `commit`. */
  lastChunk: TokenChunk = { tokens: [], sources: [], step: 0 };

  /** Whether `n` more tokens fit in the model's context; if not, decoding ends with `'context'`. */
  fits(model: MultiTokenModel, n: number): boolean {
    if (model.length + n <= model.maxLength) return true;
    this.finishReason = 'context';
    return false;
  }

  /** The result, with statistics. */
  result(): DecodeResult {
    const wallTimeMs = now() - this.start;
    const drafted = this.drafted.reduce((a, b) => a + b, 0);
    const accepted = this.kept.reduce((a, b) => a + b, 0);
    return {
      tokens: this.tokens,
      sources: this.sources,
      finishReason: this.finishReason ?? 'length',
      stats: {
        forwards: this.forwards,
        tokens: this.tokens.length,
        meanAcceptedLength: this.forwards > 0 ? this.tokens.length / this.forwards : 0,
        drafted,
        accepted,
        acceptanceRates: this.drafted.map((d, j) => (d > 0 ? this.kept[j] / d : NaN)),
        wallTimeMs,
        timeToFirstTokenMs: this.firstTokenAt - this.start,
        tokensPerSecond: wallTimeMs > 0 ? (1000 * this.tokens.length) / wallTimeMs : 0,
      },
    };
  }
}

function now(): number {
  return globalThis.performance?.now() ?? Date.now();
}

/** A decoder's loop: yields each step's chunk, returns when the transcript says decoding is over. */
export type Steps = (transcript: Transcript, random: () => number) => AsyncGenerator<TokenChunk, void>;

/**
 * Runs a decoder's steps inside what every decode needs: the model to itself, an empty cache
 * before and after (so no tensor outlives the call, whether it ends, throws or is abandoned),
 * the transcript and a seeded random stream. Returns the result with its statistics.
 */
export async function* decodeSession(model: MultiTokenModel, opts: ResolvedOptions, steps: Steps): AsyncGenerator<TokenChunk, DecodeResult> {
  const release = acquire(opts.fn, model);
  const transcript = new Transcript(opts, model.numHeads);
  try {
    model.truncate(0);
    yield* steps(transcript, uniformStream(opts.seed));
    return transcript.result();
  } finally {
    model.truncate(0);
    release();
  }
}

/** Runs a decoding generator to its end and returns its result. */
export async function drain(steps: AsyncGenerator<TokenChunk, DecodeResult>): Promise<DecodeResult> {
  for (;;) {
    const r = await steps.next();
    if (r.done) return r.value;
  }
}
