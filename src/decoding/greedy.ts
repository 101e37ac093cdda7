/**
 * Autoregressive decoding, one token per forward: the baseline every other decoder is measured
 * against, and the reference `speculativeDecode` (greedy acceptance) must equal token for token.
 * Greedy by default; with `temperature > 0` it samples (ordinary sampling from offset 0). Its
 * loop is blockwise decoding's with a block of one token (offset 0 alone); the speculative loop is
 * a separate implementation, so the parity tests compare two independent paths.
 */
import { blockLoop } from './blockwise.js';
import type { MultiTokenModel } from './model.js';
import { resolveOptions, type DecodeOptions, type TokenIds } from './options.js';
import type { DecodeResult, TokenChunk } from './result.js';
import { decodeSession, drain } from './session.js';

/**
 * The streaming form of {@link greedyDecode}: yields each committed token as a
 * {@link TokenChunk} and returns the {@link DecodeResult}. Finish it, or call `return()` (a
 * `for await` loop's `break` does): a stream left paused is taken over by the next decode on
 * the same model.
 */
export async function* greedyStream(model: MultiTokenModel, prompt: TokenIds, options: DecodeOptions = {}): AsyncGenerator<TokenChunk, DecodeResult, void> {
  const opts = resolveOptions('greedyStream', model, prompt, options);
  return yield* decodeSession(model, opts, blockLoop(model, opts, 1), true);
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
  return drain(decodeSession(model, opts, blockLoop(model, opts, 1), false));
}
