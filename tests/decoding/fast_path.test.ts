/**
 * The greedy fast path (issue #10 §1) on a real KV-cached transformer: with `headArgmax` the
 * decoders read back only token ids and accept in JS, and must decode exactly what the device
 * path (the same model without the optional members) decodes; the prepared head is made at the
 * start of a decode and freed at its end — after success, a throw, an abort, a takeover — and a
 * decode after a weight change uses the new weights.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, greedyStream, speculativeDecode, speculativeStream, blockwiseDecode } from '../../src/decoding/index.js';
import type { MultiTokenModel } from '../../src/decoding/model.js';
import { CachedTransformer } from '../../src/models/index.js';
import { countReadbacks } from '../helpers/readbacks.js';
import { expectNoLeak } from '../helpers/leak.js';
import { tinyTransformer, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

/** `model` without the optional fast-path members: the decoders take headLogits + argmax on the device. */
function devicePath(model: MultiTokenModel): MultiTokenModel {
  return {
    numHeads: model.numHeads,
    vocabSize: model.vocabSize,
    maxLength: model.maxLength,
    get length() {
      return model.length;
    },
    forward: (ids) => model.forward(ids),
    headLogits: (s, o) => model.headLogits(s, o),
    truncate: (n) => model.truncate(n),
  };
}

/** The head's unembedding kernel (untied models) as a variable. */
function unembeddingKernel(model: LayersModel) {
  return model.getLayer('mtp_head').weights.find((w) => w.name.includes('unembedding/kernel'))!;
}

const PROMPT = [3, 17, 4, 9];

describe('the fast path decodes what the device path decodes', () => {
  let layers: LayersModel;
  let fast: CachedTransformer;
  beforeAll(() => {
    layers = tinyTransformer({ mtpHeads: 4, maxLength: 64, tiedEmbeddings: false, headKind: 'mlp', headHiddenSize: 8 });
    fast = new CachedTransformer(layers);
  });

  it('greedy, blockwise and speculative (every draft length) equal their device-path runs', async () => {
    const slow = devicePath(fast);
    const greedy = await expectNoLeak(() => greedyDecode(fast, PROMPT, { maxNewTokens: 30 }));
    expect(greedy.tokens).toEqual((await greedyDecode(slow, PROMPT, { maxNewTokens: 30 })).tokens);
    const block = await expectNoLeak(() => blockwiseDecode(fast, PROMPT, { maxNewTokens: 30 }));
    expect(block.tokens).toEqual((await blockwiseDecode(slow, PROMPT, { maxNewTokens: 30 })).tokens);
    for (const draftLength of [1, 2, 3]) {
      const spec = await expectNoLeak(() => speculativeDecode(fast, PROMPT, { maxNewTokens: 30, draftLength }));
      const ref = await speculativeDecode(slow, PROMPT, { maxNewTokens: 30, draftLength });
      expect(spec.tokens).toEqual(greedy.tokens);
      expect(spec.tokens).toEqual(ref.tokens);
      expect(spec.sources).toEqual(ref.sources);
      expect(spec.stats.acceptedPerOffset).toEqual(ref.stats.acceptedPerOffset);
    }
  });

  it('reads back once per step with data(), never synchronously', async () => {
    const { value: [s, g], reads, syncReads } = await countReadbacks(async () => [
      await speculativeDecode(fast, PROMPT, { maxNewTokens: 25 }),
      await greedyDecode(fast, PROMPT, { maxNewTokens: 10 }),
    ]);
    expect(reads).toBe(s.stats.forwards + g.stats.forwards);
    expect(syncReads).toBe(0);
  });

  it('prepares at the start and frees at the end after a throw, an abort and a takeover', async () => {
    await expectNoLeak(async () => {
      await expect(
        speculativeDecode(fast, PROMPT, {
          maxNewTokens: 30,
          onToken: (c) => {
            if (c.step === 2) throw new Error('consumer failed');
          },
        }),
      ).rejects.toThrow('consumer failed');
    });
    await expectNoLeak(async () => {
      const controller = new AbortController();
      const onToken = (c: { step: number }) => {
        if (c.step === 1) controller.abort();
      };
      await expect(greedyDecode(fast, PROMPT, { maxNewTokens: 30, onToken, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    });
    await expectNoLeak(async () => {
      const paused = speculativeStream(fast, PROMPT, { maxNewTokens: 30 });
      await paused.next(); // left paused at its first chunk, prepared
      const r = await greedyDecode(fast, PROMPT, { maxNewTokens: 5 }); // takes the model over
      expect(r.tokens).toHaveLength(5);
      await expect(paused.next()).rejects.toThrow('took its model over');
    });
    await expectNoLeak(async () => {
      const stream = greedyStream(fast, PROMPT, { maxNewTokens: 30 });
      for await (const chunk of stream) if (chunk.step === 3) break; // return() mid-decode
    });
  });

  it('a decode after a weight change uses the new weights', async () => {
    const before = await greedyDecode(fast, PROMPT, { maxNewTokens: 12 });
    const kernel = unembeddingKernel(layers);
    const old = tf.clone(kernel.read());
    try {
      const flipped = tf.neg(old);
      kernel.write(flipped);
      flipped.dispose();
      const after = await greedyDecode(fast, PROMPT, { maxNewTokens: 12 });
      const spec = await speculativeDecode(fast, PROMPT, { maxNewTokens: 12 });
      expect(after.tokens).not.toEqual(before.tokens);
      expect(after.tokens).toEqual((await greedyDecode(devicePath(fast), PROMPT, { maxNewTokens: 12 })).tokens);
      expect(spec.tokens).toEqual(after.tokens);
    } finally {
      kernel.write(old);
      old.dispose();
    }
  });

  describe('non-finite logits are the decoders\' error on the fast path too', () => {
    /** Writes `value` into one entry of `variable` for the duration of `fn`. */
    async function poisoned(variable: ReturnType<typeof unembeddingKernel>, value: number, fn: () => Promise<void>): Promise<void> {
      const old = tf.clone(variable.read());
      try {
        const bad = tf.tidy(() => {
          const flat = tf.reshape(old, [-1]);
          const hit = tf.equal(tf.range(0, flat.shape[0], 1, 'int32'), 0);
          return tf.reshape(tf.where(hit, tf.fill(flat.shape, value), flat), old.shape);
        });
        variable.write(bad);
        bad.dispose();
        await fn();
      } finally {
        variable.write(old);
        old.dispose();
      }
    }

    for (const value of [NaN, Infinity, -Infinity]) {
      it(`${value} in the unembedding: greedy and speculative stop at step 0, nothing leaks`, async () => {
        await poisoned(unembeddingKernel(layers), value, async () => {
          for (const [fn, decode] of [
            ['greedyDecode', () => greedyDecode(fast, PROMPT, { maxNewTokens: 10 })],
            ['speculativeDecode', () => speculativeDecode(fast, PROMPT, { maxNewTokens: 10 })],
          ] as const) {
            await expectNoLeak(async () => {
              await expect(decode()).rejects.toThrow(`${fn}: the model's logits at step 0 contain NaN or ±Infinity, so no token can be chosen; nothing from that step was committed.`);
            });
          }
        });
      });
    }

    it('NaN only in a draft head (offset 1) is caught by the speculative decoder', async () => {
      const w1 = layers.getLayer('mtp_head').weights.find((w) => w.name.includes('offset1/w1'))!;
      await poisoned(w1, NaN, async () => {
        expect((await greedyDecode(fast, PROMPT, { maxNewTokens: 5 })).tokens).toHaveLength(5); // offset 0 is fine
        await expect(speculativeDecode(fast, PROMPT, { maxNewTokens: 10, draftLength: 2 })).rejects.toThrow("speculativeDecode: the model's logits at step 0 contain NaN or ±Infinity");
      });
    });
  });
});

describe('beginDecode / endDecode around every decode', () => {
  it('are called once each, also when the decode throws', async () => {
    const layers = tinyTransformer({ mtpHeads: 3 });
    const model = new CachedTransformer(layers);
    const calls: string[] = [];
    const spy: MultiTokenModel = Object.assign(devicePath(model), {
      headArgmax: (s: tf.Tensor2D, n: number) => model.headArgmax(s, n),
      beginDecode: () => {
        calls.push('begin');
        model.beginDecode();
      },
      endDecode: () => {
        calls.push('end');
        model.endDecode();
      },
    });
    await greedyDecode(spy, [1, 2], { maxNewTokens: 3 });
    expect(calls).toEqual(['begin', 'end']);
    await expect(speculativeDecode(spy, [1, 2], { maxNewTokens: 9, onToken: () => Promise.reject(new Error('stop')) })).rejects.toThrow('stop');
    expect(calls).toEqual(['begin', 'end', 'begin', 'end']);
    model.dispose();
    layers.dispose();
  });
});
