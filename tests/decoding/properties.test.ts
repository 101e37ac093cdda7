/**
 * Properties over random small models (fast-check): on transformers with random sizes, head
 * kinds and weights, random prompts and draft lengths, speculative decoding with greedy
 * acceptance returns greedy decoding's tokens exactly, and no decode leaves a tensor behind —
 * whether it succeeds, throws from `onToken` or is aborted. The generator's seed is fixed so the
 * suite is deterministic (a failure prints the case; change the seed to explore further).
 */
import * as fc from 'fast-check';
import { beforeAll, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, type DecodeResult } from '../../src/decoding/index.js';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { tinyTransformer } from '../helpers/models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const HEAD_KINDS: NonNullable<TransformerConfig['headKind']>[] = ['identity', 'linear', 'residual', 'lowRank', 'mlp'];

/** A random small model and a random decode on it. */
const cases = fc
  .record({
    vocabSize: fc.integer({ min: 2, max: 40 }),
    k: fc.integer({ min: 1, max: 5 }),
    headKind: fc.constantFrom(...HEAD_KINDS),
    seed: fc.integer({ min: 1, max: 10_000 }),
    maxNewTokens: fc.integer({ min: 1, max: 14 }),
    draftFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    promptSeed: fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
    failAt: fc.integer({ min: 0, max: 6 }),
  })
  .map((c) => ({
    ...c,
    prompt: c.promptSeed.map((x) => x % c.vocabSize),
    draftLength: Math.min(c.k - 1, Math.floor(c.draftFraction * c.k)),
  }));

/** Runs `decode` and asserts that the number of live tensors is unchanged, whatever happens; returns its result or error. */
const noLeak = <T>(decode: () => Promise<T>): Promise<T | Error> => expectNoLeak(() => decode().catch((e: unknown) => e as Error));

it('speculative (greedy) equals greedy and leaks nothing after success, a throw and an abort', async () => {
  await fc.assert(
    fc.asyncProperty(cases, async (c) => {
      const layers = tinyTransformer({ vocabSize: c.vocabSize, mtpHeads: c.k, headKind: c.headKind, rank: c.headKind === 'lowRank' ? 4 : undefined, headHiddenSize: c.headKind === 'mlp' ? 24 : undefined, maxLength: 32, seed: c.seed });
      const model = new CachedTransformer(layers);
      try {
        const options = { maxNewTokens: c.maxNewTokens };
        const greedy = (await noLeak(() => greedyDecode(model, c.prompt, options))) as DecodeResult;
        const spec = (await noLeak(() => speculativeDecode(model, c.prompt, { ...options, draftLength: c.draftLength }))) as DecodeResult;
        expect(spec.tokens).toEqual(greedy.tokens);

        const onToken = (chunk: { step: number }) => {
          if (chunk.step === c.failAt) throw new Error('property boom');
        };
        const thrown = await noLeak(() => speculativeDecode(model, c.prompt, { ...options, draftLength: c.draftLength, onToken }));
        if (thrown instanceof Error) expect(thrown.message).toBe('property boom');
        else expect(thrown.stats.forwards).toBeLessThanOrEqual(c.failAt); // finished before step failAt

        const controller = new AbortController();
        const aborted = await noLeak(() =>
          speculativeDecode(model, c.prompt, {
            acceptance: 'sampling',
            seed: c.seed,
            ...options,
            draftLength: c.draftLength,
            signal: controller.signal,
            onToken: (chunk) => (chunk.step === c.failAt ? controller.abort() : undefined),
          }),
        );
        if (aborted instanceof Error) expect(aborted.name).toBe('AbortError');
        expect(model.length).toBe(0);
      } finally {
        model.dispose();
        layers.dispose();
      }
    }),
    { seed: 20261128, numRuns: 40 },
  );
}, 120_000);
