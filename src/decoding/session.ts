/**
 * The decode session: everything a decoder shares around its loop. A loop (greedy.ts,
 * blockwise.ts, speculative.ts) runs forwards and yields one plain {@link Forward} per model
 * forward — the tokens that forward would commit. The session owns the rest, in this order per
 * step: give the event loop a turn when due, honour the abort signal, take the loop's next
 * forward, commit it (stop tokens, the token budget, the context rule), count it, hand a copy to
 * `onToken` (awaited) and to the stream's consumer. Around it: the model to itself (one decode
 * per model at a time), an empty cache and `beginDecode` before, `endDecode` and an empty cache
 * after, and cleanup that always releases the model and keeps the first error.
 */
import { macrotask, now } from './event_loop.js';
import type { MultiTokenModel } from './model.js';
import type { ResolvedOptions } from './options.js';
import { uniformStream } from './random.js';
import type { DecodeResult, DrafterStats, FinishReason, TokenChunk } from './result.js';

/** What one model forward produced, as a loop reports it. */
export interface Forward {
  /** The tokens this forward would commit, in order (the session may commit fewer). */
  tokens: number[];
  /** Per token, its source offset (see `TokenChunk.sources`). */
  sources: number[];
  /** Drafts this forward verified (`blockwiseDecode`: emitted unverified), from offsets 1 … drafted (a tree: its depth). */
  drafted: number;
  /** Draft tokens this forward fed (a tree's nodes); `drafted` when absent. */
  nodes?: number;
  /** False if any logit this forward used was NaN or ±Infinity (read back with the tokens). */
  finite: boolean;
  /** The draft tree this forward verified (tree steps only; see `TokenChunk.tree`). */
  tree?: NonNullable<TokenChunk['tree']>;
  /** The drafter whose proposal this forward verified (absent: nothing was proposed). */
  drafter?: string;
}

/** A decoder's loop: one {@link Forward} per model forward, for as long as the session asks. */
export type Loop = (random: () => number) => AsyncGenerator<Forward, void, void>;

/** Collects committed tokens and counts; decides when decoding is over. */
class Transcript {
  readonly tokens: number[] = [];
  readonly sources: number[] = [];
  finishReason: FinishReason | null = null;
  private forwards = 0;
  private nodes = 0;
  private readonly drafted: number[];
  private readonly perDrafter: Record<string, DrafterStats> = {};
  private readonly kept: number[];
  /** Most tokens the context allows: every committed token is predicted from positions inside it, as in greedy decoding. */
  private readonly contextBudget: number;
  private readonly start = now();
  private firstTokenAt = NaN;

  constructor(private readonly opts: ResolvedOptions, model: MultiTokenModel) {
    this.drafted = new Array<number>(Math.max(0, model.numHeads - 1)).fill(0);
    this.kept = new Array<number>(Math.max(0, model.numHeads - 1)).fill(0);
    this.contextBudget = model.maxLength + 1 - opts.prompt.length;
  }

  /**
   * Commits `f`'s tokens until a stop token, the token budget or the context ends decoding, and
   * counts its drafts (only what was committed, when the step was cut short). Returns the chunk.
   */
  commit(f: Forward): TokenChunk {
    const step = this.forwards++;
    if (!f.finite) {
      throw new RangeError(`${this.opts.fn}: the model's logits at step ${step} contain NaN or ±Infinity, so no token can be chosen; nothing from that step was committed.`);
    }
    const chunk: TokenChunk = { tokens: [], sources: [], step, drafted: 0, ...(f.tree ? { tree: f.tree } : {}), ...(f.drafter !== undefined ? { drafter: f.drafter } : {}) };
    for (let i = 0; i < f.tokens.length && this.finishReason === null; i++) {
      chunk.tokens.push(f.tokens[i]);
      chunk.sources.push(f.sources[i]);
      const total = this.tokens.length + chunk.tokens.length;
      if (this.opts.stopTokens.has(f.tokens[i])) this.finishReason = 'stop';
      else if (total >= this.opts.maxNewTokens) this.finishReason = 'length';
      else if (total >= this.contextBudget) this.finishReason = 'context';
    }
    const cut = chunk.tokens.length < f.tokens.length;
    this.nodes += f.nodes ?? f.drafted;
    const keptOffsets = chunk.sources.filter((s) => s > 0); // offsets 1 … a, in order
    chunk.drafted = cut ? keptOffsets.length : f.drafted;
    for (let j = 0; j < chunk.drafted; j++) this.drafted[j] = (this.drafted[j] ?? 0) + 1; // drafters other than the heads may go deeper than k − 1
    for (let j = this.kept.length; j < this.drafted.length; j++) this.kept[j] = 0;
    for (const s of keptOffsets) this.kept[s - 1]!++;
    if (f.drafter !== undefined) {
      const d = (this.perDrafter[f.drafter] ??= { steps: 0, drafted: 0, accepted: 0 });
      d.steps++;
      d.drafted += f.nodes ?? f.drafted;
      d.accepted += keptOffsets.length;
    }
    this.tokens.push(...chunk.tokens);
    this.sources.push(...chunk.sources);
    if (Number.isNaN(this.firstTokenAt) && chunk.tokens.length > 0) this.firstTokenAt = now();
    return chunk;
  }

  /** The result, with statistics. */
  result(): DecodeResult {
    const wallTimeMs = now() - this.start;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    return {
      tokens: this.tokens,
      sources: this.sources,
      finishReason: this.finishReason ?? 'length',
      stats: {
        forwards: this.forwards,
        tokens: this.tokens.length,
        meanAcceptedLength: this.forwards > 0 ? this.tokens.length / this.forwards : 0,
        drafted: sum(this.drafted),
        accepted: sum(this.kept),
        draftedPerOffset: this.drafted.slice(),
        acceptedPerOffset: this.kept.slice(),
        acceptanceRates: this.drafted.map((d, j) => (d > 0 ? this.kept[j] / d : NaN)),
        draftNodes: this.nodes,
        drafters: Object.fromEntries(Object.entries(this.perDrafter).map(([name, d]) => [name, { ...d }])),
        wallTimeMs,
        timeToFirstTokenMs: this.firstTokenAt - this.start,
        tokensPerSecond: wallTimeMs > 0 ? (1000 * this.tokens.length) / wallTimeMs : 0,
      },
    };
  }
}

/** A session's hold on its model. */
interface Lease {
  /** True while a stream is paused at a `yield`, waiting for its consumer. */
  suspended: boolean;
  /** The function that took the model over from this (abandoned) stream, if one did. */
  takenOverBy: string | null;
  /** Frees the loop's state and ends the model's decode (`endDecode`); the cache is reset by the new owner. */
  free(): Promise<unknown>;
}

const leases = new WeakMap<MultiTokenModel, Lease>();

/**
 * Marks `model` as decoding. A decode that is running refuses the newcomer (they would share a
 * cache); a stream paused at a `yield` is taken over: its state is freed (awaited via the
 * returned promise) and its next `next()` rejects, saying so.
 */
function acquire(fn: string, model: MultiTokenModel, lease: Lease): Promise<unknown> {
  const held = leases.get(model);
  let takeover: Promise<unknown> = Promise.resolve();
  if (held !== undefined) {
    if (!held.suspended) {
      throw new Error(`${fn}: model is already being decoded by another call; its cache cannot be shared. Await that call first, or use a second model instance.`);
    }
    held.takenOverBy = fn;
    takeover = held.free().catch(() => undefined); // its cleanup errors are its own; the cache is reset below anyway
  }
  leases.set(model, lease);
  return takeover;
}

/** `error`, with `cleanupError` attached as its `cause` when that is free, else both in an AggregateError. */
function keepFirst(fn: string, error: unknown, cleanupError: unknown): unknown {
  if (error instanceof Error && error.cause === undefined && Object.isExtensible(error)) {
    Object.defineProperty(error, 'cause', { value: cleanupError, configurable: true, writable: true });
    return error;
  }
  return new AggregateError([error, cleanupError], `${fn}: decoding failed, and cleaning up after it failed too (errors[0], then errors[1]).`);
}

/** A copy of `chunk` that its consumer may keep or change without touching another consumer's. */
function copy(chunk: TokenChunk): TokenChunk {
  const c: TokenChunk = { ...chunk, tokens: chunk.tokens.slice(), sources: chunk.sources.slice() };
  if (chunk.tree) c.tree = { tokens: chunk.tree.tokens.slice(), parents: chunk.tree.parents.slice(), accepted: chunk.tree.accepted.slice() };
  return c;
}

/** Throws the signal's reason (an AbortError DOMException when it has none). */
function checkAbort(signal: AbortSignal | undefined): void {
  signal?.throwIfAborted();
}

/**
 * Runs a decoder's loop inside what every decode needs (see the module notes). `stream`: the
 * caller hands chunks to a consumer, so the session yields each one (and can be taken over while
 * paused there); otherwise it yields nothing and returns the result.
 */
export async function* decodeSession(
  model: MultiTokenModel,
  opts: ResolvedOptions,
  loop: Loop,
  stream: boolean,
): AsyncGenerator<TokenChunk, DecodeResult, void> {
  const steps = loop(uniformStream(opts.seed));
  let began = false;
  const end = () => {
    if (!began) return;
    began = false;
    model.endDecode?.();
  };
  const free = async () => {
    try {
      await steps.return(); // the loop frees what it carries
    } finally {
      end(); // the model's prepared inference tensors
    }
  };
  const lease: Lease = { suspended: false, takenOverBy: null, free };
  const takeover = acquire(opts.fn, model, lease);
  const transcript = new Transcript(opts, model);
  let failure: { error: unknown } | null = null;
  try {
    await takeover;
    model.truncate(0);
    began = true;
    model.beginDecode?.();
    let lastTurn = now();
    for (;;) {
      if (now() - lastTurn >= opts.yieldEveryMs) {
        await macrotask(); // timers, input and an abort get to run
        lastTurn = now();
      }
      checkAbort(opts.signal);
      const next = await steps.next();
      if (next.done) throw new Error(`${opts.fn}: internal error: the decoding loop ended on its own.`);
      const chunk = transcript.commit(next.value);
      if (opts.onToken) await opts.onToken(copy(chunk));
      if (stream) {
        lease.suspended = true;
        yield copy(chunk);
        lease.suspended = false;
        if (lease.takenOverBy !== null) {
          throw new Error(`${opts.fn}: this stream was left paused and a later ${lease.takenOverBy} call took its model over (freeing its state). Finish a stream, or call its return() (a for await loop's break does), before starting another decode on the same model.`);
        }
      }
      if (transcript.finishReason !== null) return transcript.result();
    }
  } catch (error) {
    failure = { error };
    throw error;
  } finally {
    if (lease.takenOverBy === null) {
      try {
        await free();
        model.truncate(0);
      } catch (cleanupError) {
        throw failure === null ? cleanupError : keepFirst(opts.fn, failure.error, cleanupError);
      } finally {
        if (leases.get(model) === lease) leases.delete(model);
      }
    }
  }
}

/** Runs a non-streaming session to its end and returns its result. */
export async function drain(session: AsyncGenerator<TokenChunk, DecodeResult, void>): Promise<DecodeResult> {
  for (;;) {
    const r = await session.next();
    if (r.done) return r.value;
  }
}
