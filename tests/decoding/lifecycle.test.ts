/**
 * No tensor left behind — after a normal run, a thrown error and an abort, for every decoder
 * and both model kinds — plus streaming, one-decode-per-model, and the readback budget.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockwiseDecode,
  blockwiseStream,
  greedyDecode,
  greedyStream,
  speculativeDecode,
  speculativeStream,
  type DecodeOptions,
  type DecodeResult,
  type MultiTokenModel,
  type TokenChunk,
} from '../../src/decoding/index.js';
import { TableModel, ToyAttentionModel } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { countReadbacks } from '../helpers/readbacks.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

type Decoder = (model: MultiTokenModel, prompt: number[], options: DecodeOptions) => Promise<DecodeResult>;
const decoders: [string, Decoder][] = [
  ['greedyDecode', greedyDecode],
  ['blockwiseDecode', blockwiseDecode],
  ['speculativeDecode (greedy)', speculativeDecode],
  ['speculativeDecode (sampling)', (m, p, o) => speculativeDecode(m, p, { ...o, acceptance: 'sampling', seed: 3 })],
  ['speculativeDecode (typical)', (m, p, o) => speculativeDecode(m, p, { ...o, acceptance: 'typical', seed: 3 })],
];

let model: ToyAttentionModel;
beforeAll(() => {
  model = new ToyAttentionModel({ vocabSize: 29, hidden: 16, numHeads: 4, seed: 5, headNoise: 0.1 });
});
afterAll(() => model.dispose());

describe.each(decoders)('%s', (_, decode) => {
  it('leaves no tensor behind after a normal run', async () => {
    const r = await expectNoLeak(() => decode(model, [1, 2, 3], { maxNewTokens: 30 }));
    expect(r.tokens).toHaveLength(30);
    expect(model.length).toBe(0); // cache freed
  });

  it('leaves no tensor behind when onToken throws mid-run, and rejects with that error', async () => {
    let calls = 0;
    const onToken = () => {
      if (++calls === 3) throw new Error('boom from onToken');
    };
    await expectNoLeak(async () => {
      await expect(decode(model, [1, 2, 3], { maxNewTokens: 30, onToken })).rejects.toThrow('boom from onToken');
    });
    expect(model.length).toBe(0);
  });

  it('leaves no tensor behind when aborted mid-run, and rejects with the AbortError', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const onToken = (c: { tokens: number[] }) => {
      seen.push(...c.tokens);
      if (seen.length >= 5) controller.abort();
    };
    await expectNoLeak(async () => {
      await expect(decode(model, [4, 5], { maxNewTokens: 50, onToken, signal: controller.signal })).rejects.toMatchObject({ name: 'AbortError' });
    });
    expect(seen.length).toBeGreaterThanOrEqual(5);
    expect(seen.length).toBeLessThan(50);
  });

  it('rejects an already-aborted signal before any forward', async () => {
    const before = model.forwards;
    const signal = AbortSignal.abort();
    await expect(decode(model, [1], { signal })).rejects.toBe(signal.reason); // the signal's own reason, as an abort mid-way
    expect(model.forwards).toBe(before);
  });
});

describe('streaming', () => {
  it.each([
    ['greedyStream', greedyStream, greedyDecode],
    ['blockwiseStream', blockwiseStream, blockwiseDecode],
    ['speculativeStream', speculativeStream, speculativeDecode],
  ] as const)('%s yields the same tokens, chunk by chunk, as its promise form', async (_, stream, decode) => {
    const chunks: number[][] = [];
    await expectNoLeak(async () => {
      for await (const chunk of stream(model, [7, 8], { maxNewTokens: 25 })) chunks.push(chunk.tokens);
    });
    const whole = await decode(model, [7, 8], { maxNewTokens: 25 });
    expect(chunks.flat()).toEqual(whole.tokens);
  });

  it('breaking out of the loop frees everything and releases the model', async () => {
    let n = 0;
    await expectNoLeak(async () => {
      for await (const chunk of speculativeStream(model, [1, 2], { maxNewTokens: 100 })) {
        n += chunk.tokens.length;
        if (n >= 6) break;
      }
    });
    expect(model.length).toBe(0);
    await expect(greedyDecode(model, [1], { maxNewTokens: 2 })).resolves.toBeDefined(); // not locked
  });

  it('onToken sees the chunks in commit order with their sources', async () => {
    const chunks: { tokens: number[]; sources: number[]; step: number }[] = [];
    const r = await speculativeDecode(model, [3], { maxNewTokens: 20, onToken: (c) => void chunks.push(c) });
    expect(chunks.flatMap((c) => c.tokens)).toEqual(r.tokens);
    expect(chunks.flatMap((c) => c.sources)).toEqual(r.sources);
    expect(chunks.map((c) => c.step)).toEqual(chunks.map((_, i) => i));
  });

  it.each([
    ['maxNewTokens inside a step', {}],
    ['a stop token', { stopTokens: [0, 1, 2, 3, 4, 5] }],
  ])('the chunks\' drafted counts add up to the result\'s per-offset statistics (%s)', async (_, extra) => {
    const chunks: TokenChunk[] = [];
    const r = await speculativeDecode(model, [3], { maxNewTokens: 23, ...extra, onToken: (c) => void chunks.push(c) });
    const drafted = r.stats.draftedPerOffset.map((_, j) => chunks.filter((c) => c.drafted > j).length);
    expect(drafted).toEqual(r.stats.draftedPerOffset);
    expect(r.stats.drafted).toBe(chunks.reduce((a, c) => a + c.drafted, 0));
    expect(r.stats.acceptedPerOffset.map((_, j) => r.sources.filter((s) => s === j + 1).length)).toEqual(r.stats.acceptedPerOffset);
  });
});

it('one decode per model at a time: a concurrent call is refused, naming the problem', async () => {
  const first = speculativeDecode(model, [1, 2], { maxNewTokens: 20 });
  await expect(greedyDecode(model, [1], {})).rejects.toThrow('greedyDecode: model is already being decoded by another call');
  await first;
});

it('a model at its context limit stops with finishReason "context"', async () => {
  const small = new ToyAttentionModel({ vocabSize: 11, hidden: 8, numHeads: 3, maxLength: 12, seed: 2 });
  await expectNoLeak(async () => {
    const g = await greedyDecode(small, [1, 2, 3, 4, 5], { maxNewTokens: 50 });
    const s = await speculativeDecode(small, [1, 2, 3, 4, 5], { maxNewTokens: 50 });
    expect(g.finishReason).toBe('context');
    expect(g.tokens).toHaveLength(8); // 5 prompt + 7 fed tokens fill 12 positions, the 8th is predicted
    expect(s.tokens).toEqual(g.tokens);
  });
  small.dispose();
});

it.each([
  ['greedyDecode', (m: MultiTokenModel, p: number[]) => greedyDecode(m, p, { maxNewTokens: 50 })],
  ['blockwiseDecode', (m: MultiTokenModel, p: number[]) => blockwiseDecode(m, p, { maxNewTokens: 50 })],
  ['speculativeDecode', (m: MultiTokenModel, p: number[]) => speculativeDecode(m, p, { maxNewTokens: 50 })],
  ['speculativeDecode (sampling)', (m: MultiTokenModel, p: number[]) => speculativeDecode(m, p, { maxNewTokens: 50, acceptance: 'sampling', seed: 1 })],
])('%s commits as many tokens as greedy at the context limit (prompt 30, maxLength 32 → 3)', async (_, decode) => {
  const small = new ToyAttentionModel({ vocabSize: 11, hidden: 8, numHeads: 4, maxLength: 32, seed: 6 });
  const prompt = Array.from({ length: 30 }, (_, i) => (i * 7) % 11);
  const r = await expectNoLeak(() => decode(small, prompt));
  expect(r.tokens).toHaveLength(3);
  expect(r.finishReason).toBe('context');
  small.dispose();
});

it('reads back once per step with data(), never with dataSync()/arraySync()', async () => {
  const table = new TableModel([
    [[0, 1], [1, 0]],
    [[1, 0], [0, 1]],
    [[0, 1], [0, 1]],
  ]);
  try {
    const { value: [r, g], reads, syncReads } = await countReadbacks(async () => [
      await speculativeDecode(table, [0], { maxNewTokens: 40, acceptance: 'sampling', seed: 1 }),
      await greedyDecode(table, [0], { maxNewTokens: 10 }),
    ]);
    expect(reads).toBe(r.stats.forwards + g.stats.forwards);
    expect(syncReads).toBe(0);
  } finally {
    table.dispose();
  }
});
