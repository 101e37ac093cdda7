/**
 * Honest numerics at the edges: vanishing temperatures and nucleus masses behave like greedy
 * decoding (never "token 0 every step"), non-finite logits are an error naming the step (never a
 * silent token), and a uniform that rounds to 1 in float32 still samples a token of positive
 * probability.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sampleRows } from '../../src/decoding/distributions.js';
import {
  blockwiseDecode,
  blockwiseStream,
  greedyDecode,
  speculativeDecode,
  type DecodeOptions,
  type DecodeResult,
  type MultiTokenModel,
} from '../../src/decoding/index.js';
import { toFloat32Unit, uniforms } from '../../src/decoding/random.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { ToyAttentionModel } from '../helpers/toy_models.js';

beforeAll(useCpu);

let model: ToyAttentionModel;
beforeAll(() => {
  model = new ToyAttentionModel({ vocabSize: 31, hidden: 16, numHeads: 3, seed: 8, headNoise: 0.2 });
});
afterAll(() => model.dispose());

type Decode = (m: MultiTokenModel, p: number[], o: DecodeOptions) => Promise<DecodeResult>;
/** Every path that samples, each asked to sample with `o` (temperature and top-p). */
const samplers: [string, Decode][] = [
  ['greedyDecode (sampling)', (m, p, o) => greedyDecode(m, p, o)],
  ['speculativeDecode (sampling)', (m, p, o) => speculativeDecode(m, p, { ...o, acceptance: 'sampling' })],
  ['speculativeDecode (typical)', (m, p, o) => speculativeDecode(m, p, { ...o, acceptance: 'typical' })],
];

describe.each(samplers)('%s', (_, decode) => {
  let greedy: number[][];
  const prompts = [[1], [4, 9, 2], [30, 0, 7, 7]];
  beforeAll(async () => {
    greedy = [];
    for (const p of prompts) greedy.push((await greedyDecode(model, p, { maxNewTokens: 16 })).tokens);
  });

  it.each([
    ['temperature 1e-40', { temperature: 1e-40 }],
    ['temperature Number.MIN_VALUE', { temperature: Number.MIN_VALUE }],
    ['temperature 1e-5 (above the greedy floor: sampled, but every other token has weight ~0)', { temperature: 1e-5 }],
    ['topP Number.MIN_VALUE at temperature 1', { temperature: 1, topP: Number.MIN_VALUE }],
    ['topP 1e-9 at temperature 1', { temperature: 1, topP: 1e-9 }],
  ])('%s equals greedy decoding', async (_, extreme) => {
    for (const [i, p] of prompts.entries()) {
      for (const seed of [0, 1, 2 ** 32 - 1]) {
        const r = await expectNoLeak(() => decode(model, p, { maxNewTokens: 16, seed, ...extreme }));
        expect(r.tokens).toEqual(greedy[i]);
      }
    }
  });
});

it('blockwise decoding with a vanishing temperature equals its greedy form', async () => {
  const greedy = await blockwiseDecode(model, [3, 1], { maxNewTokens: 15 });
  const tiny = await blockwiseDecode(model, [3, 1], { maxNewTokens: 15, temperature: Number.MIN_VALUE, seed: 5 });
  expect(tiny.tokens).toEqual(greedy.tokens);
});

/** The toy model, with every logit of offset `offset` replaced by `value` from forward `from` on. */
function poisoned(value: number, from: number, offset = 0): MultiTokenModel {
  let forwards = 0;
  return {
    numHeads: model.numHeads,
    vocabSize: model.vocabSize,
    maxLength: model.maxLength,
    get length() {
      return model.length;
    },
    forward(ids) {
      forwards++;
      return model.forward(ids);
    },
    headLogits(states, offsets) {
      const logits = model.headLogits(states, offsets);
      if (forwards <= from) return logits;
      return tf.tidy(() => {
        const hit = tf.reshape(tf.tensor1d(offsets.map((o) => (o === offset ? 1 : 0)), 'bool'), [1, offsets.length, 1]); // [1, o, 1]
        return tf.where(tf.broadcastTo(hit, logits.shape), tf.fill(logits.shape, value), logits) as tf.Tensor3D;
      });
    },
    truncate: (length) => model.truncate(length),
  };
}

describe('non-finite logits are an error naming the step, never a silent token', () => {
  const all: [string, Decode][] = [
    ['greedyDecode', (m, p, o) => greedyDecode(m, p, o)],
    ['blockwiseDecode', (m, p, o) => blockwiseDecode(m, p, o)],
    ['speculativeDecode', (m, p, o) => speculativeDecode(m, p, o)],
    ...samplers.map(([name, d]): [string, Decode] => [name, (m, p, o) => d(m, p, { ...o, temperature: 1, seed: 3 })]),
  ];
  it.each(all.flatMap(([name, d]) => [NaN, Infinity, -Infinity].map((v): [string, number, Decode] => [name, v, d])))(
    '%s, logits %d from step 2',
    async (name, value, decode) => {
      const fn = name.split(' ')[0];
      await expectNoLeak(async () => {
        await expect(decode(poisoned(value, 2), [1, 2], { maxNewTokens: 20 })).rejects.toThrow(
          `${fn}: the model's logits at step 2 contain NaN or ±Infinity, so no token can be chosen; nothing from that step was committed.`,
        );
      });
      expect(model.length).toBe(0);
    },
  );

  it('NaN only in a draft head (offset 1) is caught too', async () => {
    await expect(speculativeDecode(poisoned(NaN, 0, 1), [1, 2], { acceptance: 'sampling', maxNewTokens: 20, seed: 1 })).rejects.toThrow(
      "speculativeDecode: the model's logits at step 0 contain NaN or ±Infinity",
    );
  });

  it('chunks before the bad step were committed and streamed', async () => {
    const seen: number[] = [];
    const stream = blockwiseStream(poisoned(NaN, 2), [1], { maxNewTokens: 30 });
    await expect(
      (async () => {
        for await (const chunk of stream) seen.push(...chunk.tokens);
      })(),
    ).rejects.toThrow("blockwiseStream: the model's logits at step 2 contain NaN");
    expect(seen).toHaveLength(2 * model.numHeads);
  });
});

describe('uniforms stay below 1 after the float32 upload', () => {
  it('a 32-bit fraction that rounds to 1.0 in float32 is rounded down to 1 − 2⁻²⁴', () => {
    const u = 1 - 2 ** -33; // what SplitMix32 yields for 0xffffffff (well, 1 − 2⁻³²); fround gives 1
    expect(Math.fround(u)).toBe(1);
    expect(toFloat32Unit(u)).toBe(1 - 2 ** -24);
    expect(uniforms(() => u, 3)).toEqual(new Float32Array([1 - 2 ** -24, 1 - 2 ** -24, 1 - 2 ** -24]));
    expect(toFloat32Unit(0.25)).toBe(0.25);
  });

  it('sampleRows never returns a zero-probability token, even for u = 1 (or u·total rounding up)', async () => {
    const picked = await expectNoLeak(async () => {
      const t = tf.tidy(() => sampleRows(tf.tensor2d([[0.5, 0.5, 0, 0], [0.1, 0, 0.3, 0], [0.2, 0.2, 0.2, 0.4]]), tf.tensor1d([1, 1, 1])));
      const out = Array.from(await t.data());
      t.dispose();
      return out;
    });
    expect(picked).toEqual([1, 2, 3]); // the last token with mass, not V − 1
  });
});
