/**
 * Autoregressive decoding, one token per forward: the baseline every other decoder is measured
 * against, and the reference `speculativeDecode` (greedy acceptance) must equal token for token.
 * Greedy by default; with `temperature > 0` it samples (ordinary sampling from offset 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { pickTokens } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import { resolveOptions, type DecodeOptions, type ResolvedOptions, type SamplingSettings, type TokenChunk } from './options.js';
import { decodeSession, drain, type DecodeResult, type Steps } from './session.js';

/** Feeds `tokens`, then picks the next token from offset 0 at the last position (one readback of one number). */
async function nextToken(
  model: MultiTokenModel,
  tokens: readonly number[],
  s: SamplingSettings,
  random: () => number,
): Promise<number> {
  const states = model.forward(tokens); // [n, S]
  let picked: tf.Tensor1D | undefined;
  try {
    picked = tf.tidy(() => {
      const last = tf.slice(states, [states.shape[0] - 1, 0], [1, -1]); // [1, S]
      const logits = tf.reshape(model.headLogits(last, [0]), [1, model.vocabSize]) as tf.Tensor2D; // [1, V]
      const u = s.temperature > 0 ? tf.tensor1d([random()]) : null;
      return pickTokens(logits, s, u); // [1]
    });
    return (await picked.data())[0];
  } finally {
    states.dispose();
    picked?.dispose();
  }
}

/** The loop: feed the last token, pick the next, commit it. */
function greedySteps(model: MultiTokenModel, opts: ResolvedOptions): Steps {
  return async function* (transcript, random) {
    let feed = opts.prompt;
    for (;;) {
      opts.signal?.throwIfAborted();
      const token = await nextToken(model, feed, opts.sampling, random);
      transcript.forwards++;
      const done = transcript.commit([token], [0]);
      yield transcript.lastChunk;
      if (done || !transcript.fits(model, 1)) return;
      feed = [token];
    }
  };
}

/**
 * The streaming form of {@link greedyDecode}: yields each committed token as a
 * {@link TokenChunk} and returns the {@link DecodeResult}.
 */
export async function* greedyStream(
  model: MultiTokenModel,
  prompt: readonly number[],
  options: DecodeOptions = {},
): AsyncGenerator<TokenChunk, DecodeResult> {
  const opts = resolveOptions('greedyStream', model, prompt, options);
  return yield* decodeSession(model, opts, greedySteps(model, opts));
}

/**
 * Decodes one token per model forward from offset 0 — ordinary autoregressive decoding.
 *
 * Greedy (argmax) by default; `temperature > 0` samples from softmax(logits / temperature)
 * after `topK`/`topP`. Resets the model's cache first and frees it at the end, so the same
 * model can serve many calls (one at a time). Never sets or changes the tfjs backend.
 *
 * @example
 * ```ts
 * const { tokens, stats } = await greedyDecode(model, [1, 2, 3], { maxNewTokens: 32 });
 * ```
 */
export async function greedyDecode(
  model: MultiTokenModel,
  prompt: readonly number[],
  options: DecodeOptions = {},
): Promise<DecodeResult> {
  const opts = resolveOptions('greedyDecode', model, prompt, options);
  return drain(decodeSession(model, opts, greedySteps(model, opts)));
}
