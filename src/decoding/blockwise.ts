/**
 * Blockwise decoding without verification: every forward emits all `blockSize` offsets'
 * predictions from the last position as committed tokens. Up to k× fewer forwards, but lossy:
 * offset j predicts token t+1+j without seeing tokens t+1…t+j, so the block can disagree with
 * itself ("I like cats because they are all the rats"). Use `speculativeDecode` to keep the
 * speed and lose nothing. Reference: Stern et al. 2018 (the "predict" substep alone).
 */
import * as tf from '@tensorflow/tfjs-core';
import { pickTokens } from './distributions.js';
import type { MultiTokenModel } from './model.js';
import { resolveBlockwiseOptions, type BlockwiseOptions, type TokenChunk } from './options.js';
import { uniforms } from './random.js';
import { decodeSession, drain, type DecodeResult, type Steps } from './session.js';

/** Feeds `tokens` and returns offsets 0…b-1's picks at the last position (one readback of b numbers). */
async function nextBlock(
  model: MultiTokenModel,
  tokens: readonly number[],
  blockSize: number,
  opts: BlockwiseResolved,
  random: () => number,
): Promise<number[]> {
  const offsets = Array.from({ length: blockSize }, (_, j) => j);
  const states = model.forward(tokens); // [n, S]
  let picked: tf.Tensor1D | undefined;
  try {
    picked = tf.tidy(() => {
      const last = tf.slice(states, [states.shape[0] - 1, 0], [1, -1]); // [1, S]
      const logits = tf.reshape(model.headLogits(last, offsets), [blockSize, model.vocabSize]) as tf.Tensor2D; // [b, V]
      const u = opts.sampling.temperature > 0 ? tf.tensor1d(uniforms(random, blockSize)) : null;
      return pickTokens(logits, opts.sampling, u); // [b]
    });
    return Array.from(await picked.data());
  } finally {
    states.dispose();
    picked?.dispose();
  }
}

type BlockwiseResolved = ReturnType<typeof resolveBlockwiseOptions>;

/** The loop: feed the last block, take all offsets' picks at its last position, commit them unchecked. */
function blockwiseSteps(model: MultiTokenModel, opts: BlockwiseResolved): Steps {
  const sources = Array.from({ length: opts.blockSize }, (_, j) => j);
  return async function* (transcript, random) {
    let feed = opts.prompt;
    for (;;) {
      opts.signal?.throwIfAborted();
      const block = await nextBlock(model, feed, opts.blockSize, opts, random);
      transcript.forwards++;
      transcript.recordDrafts(opts.blockSize - 1, opts.blockSize - 1); // unverified: all "kept"
      const done = transcript.commit(block, sources);
      yield transcript.lastChunk;
      if (done || !transcript.fits(model, block.length)) return;
      feed = block;
    }
  };
}

/** Runs {@link blockwiseSteps} in a decode session. */
function blockwise(model: MultiTokenModel, opts: BlockwiseResolved): AsyncGenerator<TokenChunk, DecodeResult> {
  return decodeSession(model, opts, blockwiseSteps(model, opts));
}

/** The streaming form of {@link blockwiseDecode}. */
export async function* blockwiseStream(
  model: MultiTokenModel,
  prompt: readonly number[],
  options: BlockwiseOptions = {},
): AsyncGenerator<TokenChunk, DecodeResult> {
  return yield* blockwise(model, resolveBlockwiseOptions('blockwiseStream', model, prompt, options));
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
export async function blockwiseDecode(
  model: MultiTokenModel,
  prompt: readonly number[],
  options: BlockwiseOptions = {},
): Promise<DecodeResult> {
  return drain(blockwise(model, resolveBlockwiseOptions('blockwiseDecode', model, prompt, options)));
}
