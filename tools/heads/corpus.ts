/**
 * The self-distillation corpus of `npm run train:heads`: text the frozen model writes itself,
 * seeded. Draft heads are judged against the model's own greedy choice, so most sequences are
 * greedy continuations (what greedy acceptance sees); the rest are temperature/top-p samples
 * (what sampling acceptance sees). Greedy text from one opening is always the same, so each
 * greedy sequence starts from a varied opening (a hand-written story opening, a word of the
 * vocabulary, or a window of the model's own training text), then 0…`maxPrefix` sampled tokens,
 * then greedy.
 *
 * Generation is batched: `batch` sequences of one length advance together through the trunk's
 * KV-cached forward (`[B]` new ids per step, one readback of `[B, V]` logits per step), every
 * sequence starting from BOS (or its opening's first token) and fed its opening one token per
 * step, so openings of any length share a batch.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3.2 (self-distillation when the training data is
 * unavailable); Li et al., "EAGLE" (2024), §4 (training on the base model's own generations).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { uniformStream } from '../../src/decoding/random.js';
import { KVCache } from '../../src/models/cache.js';
import { TransformerTrunk } from '../../src/models/trunk.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { HELD_OUT_OPENINGS, STORY_OPENINGS } from './openings.js';

export { HELD_OUT_OPENINGS, STORY_OPENINGS };

/** Settings of {@link buildCorpus}. */
export interface CorpusSettings {
  /** Tokens to generate in total (openings included), approximately (whole batches). */
  tokens: number;
  /** Share of sequences that are greedy continuations (the rest are samples). */
  greedyShare: number;
  /** Tokens per sequence, its opening included. */
  sequenceTokens: number;
  /** Temperature and top-p of the sampled sequences and of the sampled prefix of greedy ones. */
  temperature: number;
  topP: number;
  /** Greedy sequences: a uniform 0…maxPrefix sampled tokens after the opening, then greedy. */
  maxPrefix: number;
  /** Sequences generated together. */
  batch: number;
  /** Seed of everything random here. */
  seed: number;
}

/** One generated sequence: ids (BOS or the opening first) and how it was made. */
export interface CorpusSequence {
  ids: number[];
  mode: 'greedy' | 'sampled';
  /** Index of its opening, so the held-out split can keep openings apart. */
  opening?: number;
}

/** How one sequence of a batch is made. */
export interface SequencePlan {
  /** Its first tokens (BOS first for a llama2.c model), fed as they are. */
  opening: readonly number[];
  /** Position from which tokens are the argmax (≥ opening length); `Infinity`: sampled throughout. */
  greedyFrom: number;
  /** Seed of its sampled tokens. */
  seed: number;
}

/** Vocabulary openings: the word pieces of the tokenizer that start with a space and are letters (" girl", " ball", …). */
export function vocabularyOpenings(tokenizer: Llama2cTokenizer): number[][] {
  const out: number[][] = [];
  for (let id = 3; id < tokenizer.vocabSize; id++) {
    const text = tokenizer.decode([id]); // no BOS before it: the piece keeps its leading space
    if (/^ [A-Za-z]{3,}$/.test(text)) out.push([tokenizer.bosId, id]);
  }
  return out;
}

/** The openings of a llama2.c story model: the training story openings (BOS first), then the vocabulary words. */
export function storyOpenings(tokenizer: Llama2cTokenizer): number[][] {
  return [...STORY_OPENINGS.slice(0, STORY_OPENINGS.length - HELD_OUT_OPENINGS).map((t) => tokenizer.encode(t)), ...vocabularyOpenings(tokenizer)];
}

/** The model's `TransformerTrunk` layer. */
function trunkOf(model: LayersModel): TransformerTrunk {
  const trunk = model.layers.find((l) => l instanceof TransformerTrunk);
  if (trunk === undefined) throw new TypeError(`buildCorpus: model must have a TransformerTrunk layer, but '${model.name}' has [${model.layers.map((l) => l.getClassName()).join(', ')}].`);
  return trunk as TransformerTrunk;
}

/** Index of the largest value of `row` (the first on ties, as `tf.argMax`). */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

/** A token from softmax(row / temperature) restricted to its top-p nucleus, drawn with `u` ∈ [0, 1). */
export function sampleTopP(row: Float32Array, temperature: number, topP: number, u: number): number {
  if (temperature <= 0) return argmax(row);
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  const p = Float64Array.from(row, (x) => Math.exp((x - max) / temperature));
  const order = Array.from(p.keys()).sort((a, b) => p[b]! - p[a]! || a - b);
  const total = p.reduce((a, b) => a + b, 0);
  let kept = 0;
  let n = 0;
  while (n < order.length && (n === 0 || kept < topP * total)) kept += p[order[n++]!]!;
  let r = u * kept;
  for (let i = 0; i < n; i++) {
    r -= p[order[i]!]!;
    if (r < 0) return order[i]!;
  }
  return order[n - 1]!;
}

/** What {@link generateBatch} returns: the ids and, per sequence, the final hidden states `[length, D]` (row-major) of its positions. */
export interface GeneratedBatch {
  ids: number[][];
  hidden: Float32Array[];
}

/**
 * Generates `plans.length` sequences of `length` tokens together with the frozen model's trunk
 * (KV-cached) and shared unembedding `unembeddingT` `[D, V]`. A plan's greedy tokens are the
 * argmax of the float32 logits (greedyDecode's choice); its sampled ones use its own seeded
 * stream. The hidden states are the cached forward's (what the decoder's drafts read), so the
 * corpus needs no second pass of the trunk.
 */
export async function generateBatch(model: LayersModel, unembeddingT: tf.Tensor2D, plans: readonly SequencePlan[], length: number, temperature: number, topP: number): Promise<GeneratedBatch> {
  const trunk = trunkOf(model);
  const B = plans.length;
  const [D, V] = unembeddingT.shape;
  const ids = plans.map((p) => [p.opening[0]!]);
  const hidden = plans.map(() => new Float32Array(length * D));
  const random = plans.map((p) => uniformStream(p.seed));
  const cache = new KVCache();
  try {
    for (let t = 0; t < length; t++) {
      const out = tf.tidy(() => {
        const fed = tf.tensor1d(ids.map((q) => q[t]!), 'int32'); // [B]
        // TransformerTrunk.step is batch-1; its forward takes B sequences of one length with a cache
        const h = (trunk as unknown as { forward(i: tf.Tensor1D, b: number, c: KVCache): tf.Tensor2D }).forward(fed, B, cache); // [B, D]
        return tf.concat([h, tf.matMul(h, unembeddingT)], 1); // [B, D + V]
      });
      const values = (await out.data()) as Float32Array; // one readback per step
      out.dispose();
      plans.forEach((p, i) => {
        const row = values.subarray(i * (D + V), (i + 1) * (D + V));
        hidden[i]!.set(row.subarray(0, D), t * D);
        const next = t + 1;
        if (next === length) return;
        const logits = row.subarray(D);
        const u = random[i]!();
        ids[i]!.push(next < p.opening.length ? p.opening[next]! : next >= p.greedyFrom ? argmax(logits) : sampleTopP(logits, temperature, topP, u));
      });
    }
  } finally {
    cache.clear();
  }
  return { ids, hidden };
}

/**
 * Generates the corpus with the frozen model in batches of `s.batch` (see the module header):
 * each sequence draws an opening from `openings` (index kept), greedy with probability
 * `greedyShare`. Returns the sequences and their hidden states `[N, D]` (sequences back to
 * back, as {@link hiddenStates}). `onProgress(tokens)` is called after each batch.
 */
export async function buildCorpus(model: LayersModel, unembeddingT: tf.Tensor2D, openings: readonly (readonly number[])[], s: CorpusSettings, onProgress?: (tokens: number) => void): Promise<{ sequences: CorpusSequence[]; hidden: Float32Array }> {
  const random = uniformStream(s.seed);
  const sequences: CorpusSequence[] = [];
  const states: Float32Array[] = [];
  let total = 0;
  while (total < s.tokens) {
    const count = Math.max(1, Math.min(s.batch, Math.ceil((s.tokens - total) / s.sequenceTokens)));
    const plans: Array<SequencePlan & { index: number; greedy: boolean }> = [];
    for (let i = 0; i < count; i++) {
      const index = Math.floor(random() * openings.length);
      const opening = openings[index]!.slice(0, s.sequenceTokens);
      const greedy = random() < s.greedyShare;
      const prefix = Math.floor(random() * (s.maxPrefix + 1));
      plans.push({ opening, index, greedy, greedyFrom: greedy ? opening.length + prefix : Infinity, seed: Math.floor(random() * 2 ** 32) });
    }
    const made = await generateBatch(model, unembeddingT, plans, s.sequenceTokens, s.temperature, s.topP);
    plans.forEach((p, i) => sequences.push({ ids: made.ids[i]!, mode: p.greedy ? 'greedy' : 'sampled', opening: p.index }));
    states.push(...made.hidden);
    total += count * s.sequenceTokens;
    onProgress?.(total);
  }
  const hidden = new Float32Array(states.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of states) {
    hidden.set(x, at);
    at += x.length;
  }
  return { sequences, hidden };
}

/**
 * Runs the frozen trunk over every sequence (full forwards of up to `batch` sequences of one
 * length): final hidden states `[N, D]` (row-major) of all positions, sequences back to back.
 */
export function hiddenStates(model: LayersModel, sequences: readonly CorpusSequence[], d: number, batch = 32): Float32Array {
  const trunk = trunkOf(model);
  const offsets: number[] = [];
  let n = 0;
  for (const q of sequences) {
    offsets.push(n);
    n += q.ids.length;
  }
  const out = new Float32Array(n * d);
  const byLength = new Map<number, number[]>();
  sequences.forEach((q, i) => byLength.set(q.ids.length, [...(byLength.get(q.ids.length) ?? []), i]));
  for (const [T, members] of byLength) {
    for (let at = 0; at < members.length; at += batch) {
      const group = members.slice(at, at + batch);
      const h = tf.tidy(() => trunk.apply(tf.tensor2d(group.flatMap((i) => sequences[i]!.ids), [group.length, T], 'int32')) as tf.Tensor); // [b, T, D]
      try {
        const values = h.dataSync() as Float32Array; // training setup, not a decode loop
        group.forEach((i, g) => out.set(values.subarray(g * T * d, (g + 1) * T * d), offsets[i]! * d));
      } finally {
        h.dispose();
      }
    }
  }
  return out;
}
