/**
 * Blockwise decoding without verification: every forward emits all `blockSize` offsets'
 * predictions from the last position as committed tokens. Up to k× fewer forwards, but lossy:
 * offset j predicts token t+1+j without seeing tokens t+1…t+j, so the block can disagree with
 * itself ("I like cats because they are all the rats"). Use `speculativeDecode` to keep the
 * speed and lose nothing. Reference: Stern et al. 2018 (the "predict" substep alone).
 */
import * as tf from '@tensorflow/tfjs-core';
import { allFinite, allTokens, pickTokens, type SamplingSettings } from './distributions.js';
import { checkedModel } from './checked.js';
import type { MultiTokenModel } from './model.js';
import { resolveBlockwiseOptions, type BlockwiseOptions, type ResolvedOptions, type TokenIds } from './options.js';
import { uniforms } from './random.js';
import type { DecodeResult, TokenChunk } from './result.js';
import { decodeSession, drain, type Forward, type Loop } from './session.js';

/** Greedy fast path: offsets 0…b-1's argmax at the last position from `headArgmax` (one readback of b ids). */
async function nextGreedyBlock(model: MultiTokenModel & Required<Pick<MultiTokenModel, 'headArgmax'>>, tokens: readonly number[], b: number, fn: string): Promise<Forward> {
  const states = model.forward(tokens); // [n, S]
  let ids: tf.Tensor | undefined;
  try {
    ids = tf.tidy(() => model.headArgmax(states.shape[0] === 1 ? states : tf.slice(states, [states.shape[0] - 1, 0], [1, -1]), b)); // [1, b]
    const picked = await ids.data();
    return { tokens: Array.from(picked), sources: Array.from({ length: b }, (_, j) => j), drafted: b - 1, finite: allTokens(picked, model.vocabSize, fn, 'headArgmax') };
  } finally {
    states.dispose();
    ids?.dispose();
  }
}

/** Feeds `tokens` and picks offsets 0…b-1's tokens at the last position (one readback of b + 1 numbers). */
async function nextBlock(model: MultiTokenModel, tokens: readonly number[], b: number, s: SamplingSettings, random: () => number): Promise<Forward> {
  const offsets = Array.from({ length: b }, (_, j) => j);
  const states = model.forward(tokens); // [n, S]
  let packed: tf.Tensor1D | undefined;
  try {
    packed = tf.tidy(() => {
      const last = tf.slice(states, [states.shape[0] - 1, 0], [1, -1]); // [1, S]
      const logits = tf.reshape(model.headLogits(last, offsets), [b, model.vocabSize]) as tf.Tensor2D; // [b, V]
      const u = s.temperature > 0 ? tf.tensor1d(uniforms(random, b)) : null;
      return tf.concat([pickTokens(logits, s, u), allFinite([logits])]); // [b + 1] tokens, finite
    });
    const ids = await packed.data();
    return { tokens: Array.from(ids.subarray(0, b)), sources: offsets, drafted: b - 1, finite: ids[b] === 1 };
  } finally {
    states.dispose();
    packed?.dispose();
  }
}

/**
 * The loop of `blockSize` tokens per forward: feed the whole previous block, take offsets
 * 0…b-1's picks at its last position, unchecked. With one token it is greedy decoding (offset 0
 * only), which `greedyDecode` runs. Greedy picks take the model's `headArgmax` when it has one.
 */
export function blockLoop(unchecked: MultiTokenModel, opts: ResolvedOptions, blockSize: number): Loop {
  const model = checkedModel(opts.fn, unchecked);
  return async function* (random) {
    let feed = opts.prompt;
    const fast = opts.sampling.temperature === 0 && model.headArgmax !== undefined;
    for (;;) {
      const forward = fast ? await nextGreedyBlock(model as Parameters<typeof nextGreedyBlock>[0], feed, blockSize, opts.fn) : await nextBlock(model, feed, blockSize, opts.sampling, random);
      yield forward;
      feed = forward.tokens;
    }
  };
}

/** The streaming form of {@link blockwiseDecode} (finish it or `return()` it; see `greedyStream`). */
export async function* blockwiseStream(model: MultiTokenModel, prompt: TokenIds, options: BlockwiseOptions = {}): AsyncGenerator<TokenChunk, DecodeResult, void> {
  const opts = resolveBlockwiseOptions('blockwiseStream', model, prompt, options);
  return yield* decodeSession(model, opts, blockLoop(model, opts, opts.blockSize), true);
}

/**
 * Emits `blockSize` (default k) tokens per forward from offsets 0…blockSize-1, unverified.
 * Fast and lossy: the output generally differs from `greedyDecode`'s. `sources[i]` is the
 * offset that produced token i; `stats.acceptanceRates` are all 1 (nothing is checked).
 *
 * @example
 * ```ts
 * const { tokens } = await blockwiseDecode(model, prompt, { maxNewTokens: 32 });
 * ```
 */
export async function blockwiseDecode(model: MultiTokenModel, prompt: TokenIds, options: BlockwiseOptions = {}): Promise<DecodeResult> {
  const opts = resolveBlockwiseOptions('blockwiseDecode', model, prompt, options);
  return drain(decodeSession(model, opts, blockLoop(model, opts, opts.blockSize), false));
}
