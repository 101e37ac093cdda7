/**
 * The self-distillation corpus of `npm run train:heads`: text the frozen model writes itself,
 * seeded. Draft heads are judged against the model's own greedy choice, so most sequences are
 * greedy continuations (what greedy acceptance sees); the rest are temperature/top-p samples
 * (what sampling acceptance sees). Greedy text from one opening is always the same, so each
 * greedy sequence starts from a varied opening: a hand-written story opening or a word of the
 * vocabulary, then a few sampled tokens, then greedy.
 *
 * Reference: Cai et al., "Medusa" (2024), §2.3.2 (self-distillation when the training data is
 * unavailable); Li et al., "EAGLE" (2024), §4 (training on the base model's own generations).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { greedyDecode } from '../../src/decoding/index.js';
import { uniformStream } from '../../src/decoding/random.js';
import { CachedTransformer } from '../../src/models/cached.js';
import { LAYER_NAMES } from '../../src/models/transformer.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';

/** Hand-written story openings. The last {@link HELD_OUT_OPENINGS} are never used for training: they are the held-out prompts. */
export const STORY_OPENINGS: readonly string[] = [
  'Once upon a time',
  'One day, a little boy',
  'Tom and his dog',
  'There was a big tree',
  'The sun was shining and',
  'Mom said to Sue',
  'A small cat lived',
  'In a little house by the sea',
  'Ben wanted to fly',
  'The princess looked at',
  'It was a cold winter morning',
  'Lily found a shiny stone',
  'The old man had a garden',
  'A bird sat on the fence',
  'Sam and Mia went to the park',
  'The little train was sad',
  'Max liked to eat apples',
  'Every night, the moon',
  'Anna had a red hat',
  'The bunny hopped into the forest',
  'A friendly dragon',
  'Dad made a big cake',
  'The boat was very small',
  'Jack saw a frog',
  // held out (the last HELD_OUT_OPENINGS):
  'Once there was a happy dog named Spot',
  'Sara went to the beach with her mom',
  'The little fish swam',
  'A boy named Tim had a toy car',
  'One sunny day, a girl',
  'The king was very angry',
  'Lucy and her brother',
  'The big bear was hungry',
];

/** How many of the last {@link STORY_OPENINGS} are held out. */
export const HELD_OUT_OPENINGS = 8;

/** Settings of {@link buildCorpus}. */
export interface CorpusSettings {
  /** Tokens to generate in total (prompts included), approximately. */
  tokens: number;
  /** Share of sequences that are greedy continuations (the rest are samples). */
  greedyShare: number;
  /** New tokens per sequence. */
  sequenceTokens: number;
  /** Temperature and top-p of the sampled sequences (and of the short sampled prefix of greedy ones). */
  temperature: number;
  topP: number;
  /** Seed of everything random here. */
  seed: number;
}

/** One generated sequence: ids (BOS first) and how it was made. */
export interface CorpusSequence {
  ids: number[];
  mode: 'greedy' | 'sampled';
  /** Index of its opening (story openings first, then vocabulary words), so the held-out split can keep openings apart. */
  opening?: number;
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

/**
 * Generates the corpus with the frozen model (CachedTransformer + greedyDecode on the current
 * backend). `onProgress(tokens)` is called after each sequence.
 */
export async function buildCorpus(model: LayersModel, tokenizer: Llama2cTokenizer, s: CorpusSettings, onProgress?: (tokens: number) => void): Promise<CorpusSequence[]> {
  const random = uniformStream(s.seed);
  const openings = [...STORY_OPENINGS.slice(0, STORY_OPENINGS.length - HELD_OUT_OPENINGS).map((t) => tokenizer.encode(t)), ...vocabularyOpenings(tokenizer)];
  const cached = new CachedTransformer(model);
  const sequences: CorpusSequence[] = [];
  let total = 0;
  try {
    while (total < s.tokens) {
      const openingIndex = Math.floor(random() * openings.length);
      const opening = openings[openingIndex]!;
      const seed = Math.floor(random() * 2 ** 32);
      const greedy = random() < s.greedyShare;
      let ids: number[];
      if (greedy) {
        const prefixLength = 1 + Math.floor(random() * 6); // a few sampled tokens, so greedy text from one opening varies
        const prefix = await greedyDecode(cached, opening, { maxNewTokens: prefixLength, temperature: 1, seed });
        const start = [...opening, ...prefix.tokens];
        const rest = await greedyDecode(cached, start, { maxNewTokens: s.sequenceTokens - prefixLength, temperature: 0 });
        ids = [...start, ...rest.tokens];
      } else {
        const result = await greedyDecode(cached, opening, { maxNewTokens: s.sequenceTokens, temperature: s.temperature, topP: s.topP, seed });
        ids = [...opening, ...result.tokens];
      }
      sequences.push({ ids, mode: greedy ? 'greedy' : 'sampled', opening: openingIndex });
      total += ids.length;
      onProgress?.(total);
    }
  } finally {
    cached.dispose();
  }
  return sequences;
}

/** Runs the frozen trunk once over every sequence: final hidden states `[N, D]` (row-major) of all positions, sequences back to back. */
export function hiddenStates(model: LayersModel, sequences: readonly CorpusSequence[], d: number): Float32Array {
  const trunk = model.getLayer(LAYER_NAMES.trunk);
  const n = sequences.reduce((sum, q) => sum + q.ids.length, 0);
  const out = new Float32Array(n * d);
  let at = 0;
  for (const q of sequences) {
    const h = tf.tidy(() => trunk.apply(tf.tensor2d(q.ids, [1, q.ids.length], 'int32')) as tf.Tensor); // [1, T, D]
    try {
      out.set(h.dataSync() as Float32Array, at); // training setup, not a decode loop
    } finally {
      h.dispose();
    }
    at += q.ids.length * d;
  }
  return out;
}
