/**
 * Autoregressive decoding, one token per forward: the baseline every other decoder is measured
 * against, and the reference `speculativeDecode` (greedy acceptance) must equal token for token.
 * Greedy by default; with `temperature > 0` it samples (ordinary sampling from offset 0).
 */
import * as tf from '@tensorflow/tfjs-core';
import { allFinite, pickTokens, type SamplingSettings } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import { resolveOptions, type DecodeOptions, type ResolvedOptions, type TokenIds } from './options.js';
import { uniforms } from './random.js';
import type { DecodeResult, TokenChunk } from './result.js';
import { decodeSession, drain, type Forward, type Loop } from './session.js';

/** Feeds `tokens`, then picks the next token from offset 0 at the last position (one readback of two numbers). */
async function nextToken(model: MultiTokenModel, tokens: readonly number[], s: SamplingSettings, random: () => number): Promise<Forward> {
  const states = model.forward(tokens); // [n, S]
  let packed: tf.Tensor1D | undefined;
  try {
    packed = tf.tidy(() => {
      const last = tf.slice(states, [states.shape[0] - 1, 0], [1, -1]); // [1, S]
      const logits = tf.reshape(model.headLogits(last, [0]), [1, model.vocabSize]) as tf.Tensor2D; // [1, V]
      const u = s.temperature > 0 ? tf.tensor1d(uniforms(random, 1)) : null;
      return tf.concat([pickTokens(logits, s, u), allFinite([logits])]); // [2] token, finite
    });
    const [token, finite] = await packed.data();
    return { tokens: [token], sources: [0], drafted: 0, finite: finite === 1 };
  } finally {
    states.dispose();
    packed?.dispose();
  }
}

/** The loop: feed the last token, pick the next. */
function greedyLoop(model: MultiTokenModel, opts: ResolvedOptions): Loop {
  return async function* (random) {
    let feed = opts.prompt;
    for (;;) {
      const forward = await nextToken(model, feed, opts.sampling, random);
      yield forward;
      feed = forward.tokens;
    }
  };
}

/**
 * The streaming form of {@link greedyDecode}: yields each committed token as a
 * {@link TokenChunk} and returns the {@link DecodeResult}. Finish it, or call `return()` (a
 * `for await` loop's `break` does): a stream left paused is taken over by the next decode on
 * the same model.
 */
export async function* greedyStream(model: MultiTokenModel, prompt: TokenIds, options: DecodeOptions = {}): AsyncGenerator<TokenChunk, DecodeResult, void> {
  const opts = resolveOptions('greedyStream', model, prompt, options);
  return yield* decodeSession(model, opts, greedyLoop(model, opts), true);
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
export async function greedyDecode(model: MultiTokenModel, prompt: TokenIds, options: DecodeOptions = {}): Promise<DecodeResult> {
  const opts = resolveOptions('greedyDecode', model, prompt, options);
  return drain(decodeSession(model, opts, greedyLoop(model, opts), false));
}
