/**
 * Prompt-lookup decoding: the no-training drafter a user would otherwise pick (Saxena 2023,
 * "prompt lookup decoding"; the n-gram copy of Hugging Face's `prompt_lookup_num_tokens`), as the
 * baseline of `npm run bench -- --heads` (issue #12 §5).
 *
 * Drafting: find the most recent earlier occurrence of the text's last n tokens (n = `ngram`,
 * falling back to shorter n-grams down to 1) and propose the tokens that followed it, at most
 * `draftLength`. Verification is greedy: one `forward` per step appends the uncommitted token and
 * the drafts, offset 0's argmax at each of those rows is read back once, the drafts are kept while
 * they equal it, and offset 0's token after the last kept draft is committed too. The output is
 * therefore exactly `greedyDecode`'s. Only the public `MultiTokenModel` API is used (`forward`,
 * `headArgmax` or `headLogits` at offset 0, `truncate`, and `beginDecode` / `endDecode` when the
 * model has them); the draft heads are never asked.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { DecodeResult, MultiTokenModel } from '../src/index.js';
import { checkInteger, checkPositiveInteger, fail } from '../src/internal/errors.js';

/** Settings of {@link promptLookupDecode}. */
export interface PromptLookupOptions {
  /** New tokens to generate (a positive integer). */
  maxNewTokens: number;
  /** Longest n-gram matched (tried first; shorter ones down to 1 are tried next). Default {@link PROMPT_LOOKUP_DEFAULTS}.ngram. */
  ngram?: number;
  /** Most drafts per step. Default {@link PROMPT_LOOKUP_DEFAULTS}.draftLength. */
  draftLength?: number;
  /** Token ids that end decoding (the stop token is included in the output). Default: none. */
  stopTokens?: readonly number[];
}

/** Defaults of {@link PromptLookupOptions}: a 3-gram match and up to 3 drafts (one forward over ≤ 4 positions, like k = 4 heads). */
export const PROMPT_LOOKUP_DEFAULTS = { ngram: 3, draftLength: 3 } as const;

/** Bound on `ngram` and `draftLength` (a forward over more positions than this is not a draft). */
const MAX_LOOKUP = 64;

/**
 * The draft for `text`: the tokens after the most recent earlier occurrence of its last n tokens,
 * n from `ngram` down to 1, at most `draftLength` of them; empty when no n-gram recurs.
 */
export function lookupDraft(text: readonly number[], ngram: number, draftLength: number): number[] {
  for (let n = Math.min(ngram, text.length - 1); n >= 1; n--) {
    const tail = text.length - n;
    // latest match first: the most recent context is the likeliest to repeat
    for (let start = tail - 1; start >= 0; start--) {
      let same = true;
      for (let i = 0; i < n && same; i++) same = text[start + i] === text[tail + i];
      if (same) return text.slice(start + n, Math.min(start + n + draftLength, text.length));
    }
  }
  return [];
}

/** Offset 0's greedy token at every row of `states` `[m, D]`, on the device: int32 `[m]`. */
function offsetZeroArgmax(model: MultiTokenModel, states: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => {
    if (model.headArgmax) return tf.reshape(model.headArgmax(states, 1), [-1]) as tf.Tensor1D; // [m]
    const logits = model.headLogits(states, [0]); // [m, 1, V]
    // a row holding NaN or ±Infinity gives −1, like headArgmax
    const finite = tf.all(tf.isFinite(logits), [1, 2]); // [m]
    const best = tf.reshape(tf.argMax(logits, 2), [-1]); // [m]
    return tf.where(finite, best, tf.fill(best.shape, -1, 'int32')) as tf.Tensor1D;
  });
}

/**
 * Greedy decoding with prompt-lookup drafts: the same tokens as `greedyDecode(model, prompt, {
 * maxNewTokens })`, in fewer forwards when the text repeats itself. Resets the model's cache
 * first and at the end. Returns a `DecodeResult` whose `sources` mark a kept draft at position j
 * of its step as j and whose per-offset counts are per draft position.
 */
export async function promptLookupDecode(model: MultiTokenModel, prompt: readonly number[], options: PromptLookupOptions): Promise<DecodeResult> {
  const fn = 'promptLookupDecode';
  const t0 = performance.now();
  if (!Array.isArray(prompt) || prompt.length === 0) fail(RangeError, fn, 'prompt', 'must be a non-empty array of token ids', prompt);
  prompt.forEach((t, i) => checkInteger(fn, `prompt[${i}]`, t, 0, model.vocabSize - 1));
  const maxNewTokens = checkPositiveInteger(fn, 'options.maxNewTokens', options.maxNewTokens);
  const ngram = checkInteger(fn, 'options.ngram', options.ngram ?? PROMPT_LOOKUP_DEFAULTS.ngram, 1, MAX_LOOKUP);
  const draftLength = checkInteger(fn, 'options.draftLength', options.draftLength ?? PROMPT_LOOKUP_DEFAULTS.draftLength, 0, MAX_LOOKUP);
  const stops = new Set(options.stopTokens ?? []);
  if (prompt.length + maxNewTokens > model.maxLength) {
    fail(RangeError, fn, 'options.maxNewTokens', `must fit the model's context with the prompt (${prompt.length} + maxNewTokens ≤ ${model.maxLength})`, maxNewTokens);
  }

  const text = [...prompt];
  const tokens: number[] = [];
  const sources: number[] = [];
  const drafted: number[] = new Array<number>(draftLength).fill(0);
  const accepted: number[] = new Array<number>(draftLength).fill(0);
  let forwards = 0;
  let firstTokenMs = 0;
  let finishReason: DecodeResult['finishReason'] = 'length';
  model.truncate(0);
  model.beginDecode?.();
  try {
    while (tokens.length < maxNewTokens) {
      const cachedLength = model.length; // text[cachedLength…] is not in the model yet (the prompt, then the last committed token)
      const draft = lookupDraft(text, ngram, Math.min(draftLength, maxNewTokens - tokens.length - 1));
      const feed = [...text.slice(cachedLength), ...draft];
      const picks = tf.tidy(() => {
        const states = model.forward(feed); // [feed, D]
        const rows = tf.slice(states, [feed.length - draft.length - 1, 0], [draft.length + 1, -1]); // [m + 1, D]
        return offsetZeroArgmax(model, rows); // [m + 1]: offset 0's token after the text, after draft 1, …
      });
      forwards++;
      let greedy: Int32Array;
      try {
        greedy = (await picks.data()) as Int32Array;
      } finally {
        picks.dispose();
      }
      greedy.forEach((t) => {
        if (!(t >= 0 && t < model.vocabSize)) fail(Error, fn, 'model', 'must give finite offset-0 logits', t);
      });
      let kept = 0;
      while (kept < draft.length && draft[kept] === greedy[kept]) kept++;
      const step = [...draft.slice(0, kept), greedy[kept]!];
      const stepSources = step.map((_, j) => (j < kept ? j + 1 : 0));
      const stopAt = step.findIndex((t) => stops.has(t));
      const commit = stopAt >= 0 ? stopAt + 1 : step.length;
      // a step cut by a stop token counts only the drafts it committed, as drafted and kept (as DecodeStats does)
      const counted = stopAt >= 0 ? Math.min(commit, kept) : draft.length;
      const keptCounted = stopAt >= 0 ? counted : kept;
      for (let j = 0; j < counted; j++) {
        drafted[j]!++;
        if (j < keptCounted) accepted[j]!++;
      }
      model.truncate(cachedLength + (feed.length - draft.length) + kept);
      text.push(...step.slice(0, commit));
      tokens.push(...step.slice(0, commit));
      sources.push(...stepSources.slice(0, commit));
      if (forwards === 1) firstTokenMs = performance.now() - t0;
      if (stopAt >= 0) {
        finishReason = 'stop';
        break;
      }
    }
  } finally {
    model.endDecode?.();
    model.truncate(0);
  }
  const wallTimeMs = performance.now() - t0;
  const draftedTotal = drafted.reduce((a, b) => a + b, 0);
  const acceptedTotal = accepted.reduce((a, b) => a + b, 0);
  return {
    tokens,
    sources,
    finishReason,
    stats: {
      forwards,
      tokens: tokens.length,
      meanAcceptedLength: tokens.length / forwards,
      drafted: draftedTotal,
      accepted: acceptedTotal,
      draftedPerOffset: drafted,
      acceptedPerOffset: accepted,
      acceptanceRates: drafted.map((n, j) => (n === 0 ? NaN : accepted[j]! / n)),
      wallTimeMs,
      timeToFirstTokenMs: firstTokenMs,
      tokensPerSecond: (1000 * tokens.length) / wallTimeMs,
    },
  };
}
