/**
 * The training text of `trainDraftHeads` and the frozen trunk's final hidden states at every
 * position of it, on the running backend.
 *
 * Self-distillation: the frozen model writes its own corpus, seeded. Draft heads are judged
 * against the model's own greedy choice, so most sequences are greedy continuations (what greedy
 * acceptance sees); the rest are temperature / top-p samples (what sampling acceptance sees).
 * Greedy text from one opening is always the same, so every greedy sequence starts from its
 * opening followed by a sampled prefix ({@link PREFIX}). Without given openings the opening is
 * the model's start token (the first of its stop tokens: the token that ends one text precedes
 * the next, as llama2.c's BOS delimits its stories; a uniformly drawn token for a model without
 * stop tokens) — the sampled prefix makes every sequence its own. A sequence ends at the first
 * stop token the model writes: what follows would be another text, which a decode never reaches.
 *
 * Generation is batched: up to {@link GENERATION_BATCH} sequences advance together through the
 * trunk's KV-cached forward (`[B]` new ids per step, one readback of `[B, D + V]` per step; on cpu
 * and wasm the fused kernels over one static cache holding every sequence, `stepBatchFused`,
 * elsewhere the composite `stepBatch`), each fed its opening one token per step, so openings of
 * any length share a batch. The hidden states come with the text: no second pass of the trunk.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3.2 (self-distillation when the training data is
 * unavailable); Li et al., "EAGLE" (2024), §4 (training on the base model's own generations).
 */
import * as tf from '@tensorflow/tfjs-core';
import { macrotask, now } from '../../decoding/event_loop.js';
import { uniformStream } from '../../decoding/random.js';
import type { DraftHeadLayer } from '../../layers/draft_head.js';
import { fusedKernelsAvailable } from '../../kernels/registry.js';
import { KVCache } from '../cache.js';
import { StaticKVCache } from '../static_cache.js';
import type { TransformerTrunk } from '../trunk.js';
import { SAMPLING } from './options.js';

/** Sequences generated together: wide enough to fill the device, small enough for one readback of `[B, D + V]` per token. */
export const GENERATION_BATCH = 128;
/**
 * Greedy sequences: min…max tokens sampled from the model's own distribution (temperature 1, no
 * nucleus) after the opening, then greedy. Greedy text falls into the model's favourite stories
 * within a few tokens; a long, freely sampled prefix makes every sequence its own.
 */
export const PREFIX = Object.freeze({ min: 4, max: 48, temperature: 1, topP: 1 });
/** Sequences whose hidden states one full forward computes (given text). */
const FORWARD_BATCH = 32;
/** A turn for the event loop at least this often (ms). */
export const YIELD_EVERY_MS = 10;

/** One training sequence: ids and, for generated greedy text, where the greedy part starts. */
export interface CorpusSequence {
  ids: number[];
  /** Position of the first greedy token (the opening and sampled prefix come before); absent for sampled or given text. */
  greedyFrom?: number;
  /** Index of its opening (given openings only), so the held-out split keeps openings apart. */
  opening?: number;
}

/** The corpus: its sequences and their final hidden states `[N, D]` (row-major, sequences back to back). */
export interface Corpus {
  sequences: CorpusSequence[];
  hidden: Float32Array;
}

/** What the corpus builders need of the model. */
export interface FrozenModel {
  trunk: TransformerTrunk;
  head: DraftHeadLayer;
  hiddenSize: number;
  vocabSize: number;
}

/** Gives the event loop a turn when `YIELD_EVERY_MS` have passed since `clock.last`. */
export async function maybeYield(clock: { last: number }): Promise<void> {
  if (now() - clock.last < YIELD_EVERY_MS) return;
  await macrotask();
  clock.last = now();
}

/** Index of the largest value of `row` (the first on ties, as `tf.argMax`). */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

/**
 * A token from softmax(row / temperature) restricted to its top-p nucleus, drawn with `u` ∈ [0, 1):
 * the tokens by decreasing probability (ties by id), the nucleus the shortest prefix reaching p,
 * and the token where `u` × its mass falls. The walk needs the probabilities in that order and the
 * id at one rank only, so it sorts the values (a numeric sort: no index array, no comparator,
 * several times faster at a 50k-word vocabulary) and finds that id with one scan.
 */
export function sampleTopP(row: Float32Array, temperature: number, topP: number, u: number): number {
  if (temperature <= 0) return argmax(row);
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  const p = new Float64Array(row.length);
  let total = 0;
  for (let v = 0; v < row.length; v++) {
    p[v] = Math.exp((row[v]! - max) / temperature);
    total += p[v]!;
  }
  const sorted = p.slice().sort().reverse(); // the probabilities, decreasing
  let kept = 0;
  let n = 0;
  while (n < sorted.length && (n === 0 || kept < topP * total)) kept += sorted[n++]!;
  let r = u * kept;
  for (let i = 0; i < n; i++) {
    r -= sorted[i]!;
    if (r < 0) return tokenAtRank(p, sorted, i);
  }
  return tokenAtRank(p, sorted, n - 1);
}

/** The id at `rank` of the order by decreasing probability `p` (ties by increasing id), given `sorted`, the probabilities in that order. */
function tokenAtRank(p: Float64Array, sorted: Float64Array, rank: number): number {
  const value = sorted[rank]!;
  let first = rank; // the first rank holding this value
  while (first > 0 && sorted[first - 1] === value) first--;
  let skip = rank - first; // ids of this value that come before it
  for (let v = 0; v < p.length; v++) if (p[v] === value && skip-- === 0) return v;
  return -1; // unreachable: `sorted` holds the values of `p`
}

/** How one sequence of a batch is made. */
export interface SequencePlan {
  /** Its first tokens, fed as they are. */
  opening: readonly number[];
  /** Position from which tokens are the argmax (≥ opening length); `Infinity`: sampled throughout. */
  greedyFrom: number;
  /** Seed of its sampled tokens. */
  seed: number;
}

/**
 * When a batch in progress stops (checked after every token step): `signal` aborts it (throwing
 * its reason); at `deadline` (ms, `now()`'s clock) it ends early once it holds `minLength` tokens,
 * every sequence cut to the same shorter length; `onStep(t)` reports the tokens each sequence has.
 */
export interface BatchStop {
  signal?: AbortSignal | undefined;
  deadline?: number;
  minLength?: number;
  onStep?: (tokens: number) => void;
}

/**
 * Generates `plans.length` sequences of `length` tokens together with the frozen trunk (KV-cached)
 * and offset 0. A greedy token is the argmax of offset 0's float32 logits (greedyDecode's choice);
 * a sampled one uses the plan's own seeded stream. Returns the ids and, per sequence, its hidden
 * states `[length, D]` (row-major).
 */
export async function generateBatch(model: FrozenModel, plans: readonly SequencePlan[], length: number, clock: { last: number }, stop: BatchStop = {}): Promise<{ ids: number[][]; hidden: Float32Array[] }> {
  const { trunk, head, hiddenSize: D, vocabSize: V } = model;
  const ids = plans.map((p) => [p.opening[0]!]);
  const hidden = plans.map(() => new Float32Array(length * D));
  const random = plans.map((p) => uniformStream(p.seed));
  const { numLayers, numKeyValueHeads, headDim } = trunk.arch;
  // the fused kernels (cpu, wasm): every sequence's keys and values side by side in one static cache, written in place
  const cache = fusedKernelsAvailable() ? new StaticKVCache(numLayers, plans.length * numKeyValueHeads * headDim, length) : new KVCache();
  head.prepare(); // the unembedding pre-transposed (`[D, V]`: wasm's fast matmul path), as in a decode
  try {
    for (let t = 0; t < length; t++) {
      const out = tf.tidy(() => {
        const next = ids.map((q) => q[t]!);
        const h = cache instanceof StaticKVCache ? trunk.stepBatchFused(next, cache) : trunk.stepBatch(tf.tensor1d(next, 'int32'), cache); // [B, D]
        const logits = tf.reshape(head.logits(h, [0]), [plans.length, V]); // [B, V] offset 0, as the decoders verify
        return tf.concat([h, logits], 1); // [B, D + V]
      });
      const values = (await out.data()) as Float32Array; // one readback per token step
      out.dispose();
      plans.forEach((p, i) => {
        const row = values.subarray(i * (D + V), (i + 1) * (D + V));
        hidden[i]!.set(row.subarray(0, D), t * D);
        const next = t + 1;
        const u = random[i]!();
        if (next === length) return;
        const logits = row.subarray(D);
        const { temperature, topP } = p.greedyFrom === Infinity ? SAMPLING : PREFIX; // a sampled sequence, or a greedy one's prefix
        ids[i]!.push(next < p.opening.length ? p.opening[next]! : next >= p.greedyFrom ? argmax(logits) : sampleTopP(logits, temperature, topP, u));
      });
      await maybeYield(clock);
      stop.signal?.throwIfAborted();
      stop.onStep?.(t + 1);
      if (stop.deadline !== undefined && t + 1 >= (stop.minLength ?? length) && t + 1 < length && now() >= stop.deadline) {
        return { ids: ids.map((q) => q.slice(0, t + 1)), hidden: hidden.map((h) => h.subarray(0, (t + 1) * D)) }; // the positions with their states
      }
    }
  } finally {
    head.release();
    cache.clear();
  }
  return { ids, hidden };
}

/** Settings of {@link buildCorpus}. */
export interface CorpusSettings {
  /** Tokens to generate in total (whole batches; fewer when `deadline` comes first, at least one batch). */
  tokens: number;
  /** Tokens per sequence, opening included. */
  sequenceTokens: number;
  /** Share of greedy sequences. */
  greedyShare: number;
  /** Openings (token ids), or null: the model's start token `startToken` (null: a uniformly drawn token). */
  openings: readonly (readonly number[])[] | null;
  startToken: number | null;
  /** The model's stop tokens: a generated one ends its sequence (what follows would be another text, which decoding never reaches). */
  stopTokens: readonly number[];
  seed: number;
  /** `now()` after which no new batch starts (and the one in progress ends early). */
  deadline: number;
}

/**
 * The self-distillation corpus (see the module header): `onBatch(tokens)` after every token step
 * of a batch; an abort of `signal` is seen within one token step (throwing its reason), and at
 * `deadline` the batch in progress ends once its sequences are long enough to train on (see
 * {@link BatchStop}) and no new batch starts.
 */
export async function buildCorpus(model: FrozenModel, s: CorpusSettings, clock: { last: number }, signal: AbortSignal | undefined, onBatch: (tokens: number) => void): Promise<Corpus> {
  const random = uniformStream(s.seed);
  const sequences: CorpusSequence[] = [];
  const states: Float32Array[] = [];
  let total = 0;
  while (total < s.tokens && (sequences.length === 0 || now() < s.deadline)) {
    signal?.throwIfAborted();
    const count = Math.max(1, Math.min(GENERATION_BATCH, Math.ceil((s.tokens - total) / s.sequenceTokens)));
    const plans: Array<SequencePlan & { index?: number; greedy: boolean }> = [];
    for (let i = 0; i < count; i++) {
      const index = s.openings === null ? undefined : Math.floor(random() * s.openings.length);
      const first = s.startToken ?? Math.floor(random() * model.vocabSize);
      const opening = (index === undefined ? [first] : s.openings![index]!).slice(0, s.sequenceTokens);
      const greedy = random() < s.greedyShare;
      const prefix = PREFIX.min + Math.floor(random() * (PREFIX.max - PREFIX.min + 1)); // sampled tokens before the greedy part
      plans.push({ opening, index, greedy, greedyFrom: greedy ? opening.length + prefix : Infinity, seed: Math.floor(random() * 2 ** 32) });
    }
    const done = total;
    const made = await generateBatch(model, plans, s.sequenceTokens, clock, {
      signal,
      deadline: s.deadline,
      minLength: Math.min(s.sequenceTokens, Math.max(2 * model.head.numHeads, 16)),
      onStep: (t) => onBatch(done + count * t),
    });
    plans.forEach((p, i) => {
      const ids = made.ids[i]!;
      const stop = ids.findIndex((t, n) => n >= p.opening.length && s.stopTokens.includes(t)); // the text ends there
      const length = stop < 0 ? ids.length : stop + 1;
      const greedyFrom = p.greedy && p.greedyFrom < length ? { greedyFrom: p.greedyFrom } : {};
      sequences.push({ ids: ids.slice(0, length), ...greedyFrom, ...(p.index !== undefined ? { opening: p.index } : {}) });
      states.push(made.hidden[i]!.subarray(0, length * model.hiddenSize));
    });
    total += count * (made.ids[0]?.length ?? s.sequenceTokens);
    onBatch(total);
  }
  return { sequences, hidden: concatFloats(states) };
}

/** `parts` back to back. */
function concatFloats(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of parts) {
    out.set(x, at);
    at += x.length;
  }
  return out;
}

/** Given text cut into pieces of at most `length` tokens (pieces shorter than `minimum` dropped). */
export function cutSequences(sequences: readonly number[][], length: number, minimum: number): CorpusSequence[] {
  const out: CorpusSequence[] = [];
  for (const ids of sequences) {
    for (let at = 0; at < ids.length; at += length) {
      const piece = ids.slice(at, at + length);
      if (piece.length >= minimum) out.push({ ids: piece });
    }
  }
  return out;
}

/**
 * The frozen trunk's final hidden states of given sequences: full forwards of up to
 * {@link FORWARD_BATCH} sequences of one length, one readback each; `onBatch(tokens)` after each.
 */
export async function hiddenStates(model: FrozenModel, sequences: readonly CorpusSequence[], clock: { last: number }, signal: AbortSignal | undefined, onBatch: (tokens: number) => void): Promise<Float32Array> {
  const d = model.hiddenSize;
  const starts: number[] = [];
  let n = 0;
  for (const q of sequences) {
    starts.push(n);
    n += q.ids.length;
  }
  const out = new Float32Array(n * d);
  const byLength = new Map<number, number[]>();
  sequences.forEach((q, i) => byLength.set(q.ids.length, [...(byLength.get(q.ids.length) ?? []), i]));
  let done = 0;
  for (const [T, members] of byLength) {
    for (let at = 0; at < members.length; at += FORWARD_BATCH) {
      signal?.throwIfAborted();
      const group = members.slice(at, at + FORWARD_BATCH);
      const h = tf.tidy(() => model.trunk.apply(tf.tensor2d(group.flatMap((i) => sequences[i]!.ids), [group.length, T], 'int32')) as tf.Tensor); // [b, T, D]
      let values: Float32Array;
      try {
        values = (await h.data()) as Float32Array;
      } finally {
        h.dispose();
      }
      group.forEach((i, g) => out.set(values.subarray(g * T * d, (g + 1) * T * d), starts[i]! * d));
      done += group.length * T;
      onBatch(done);
      await maybeYield(clock);
    }
  }
  return out;
}
