/**
 * Parity on real MTP layers: a transformer topped with MultiTokenHead, decoded through its KV
 * cache (CachedTransformer, rollback exercised) and through the uncached LayersModel adapter.
 * Speculative decoding (greedy acceptance) must return greedy decoding's tokens exactly, for
 * every prompt, every head count and every draft length. The trained checkpoint's case is in
 * parity_trained.test.ts.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { fromLayersModel, greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { tinyTransformer } from '../helpers/models.js';
import { seededValues } from '../helpers/toy_models.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';

beforeAll(useCpu);

const prompts = Array.from({ length: 8 }, (_, i) => Array.from(seededValues(2 + (i % 5), 500 + i), (x) => Math.abs(Math.floor(x * 1000)) % 32));

describe.each([2, 3, 4])('transformer with k = %i heads', (k) => {
  it('cached and uncached speculative decoding equal greedy decoding, every draft length', async () => {
    const layers = tinyTransformer({ mtpHeads: k, maxLength: 40, seed: k });
    const cached = new CachedTransformer(layers);
    const uncached = fromLayersModel(layers, { window: 40 });
    let rolledBack = 0;
    await expectNoLeak(async () => {
      for (const prompt of prompts) {
        const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 20 });
        for (let draftLength = 1; draftLength < k; draftLength++) {
          const spec = await speculativeDecode(cached, prompt, { maxNewTokens: 20, draftLength });
          expect(spec.tokens).toEqual(greedy.tokens);
          if (spec.stats.accepted < spec.stats.drafted) rolledBack++;
        }
        const viaAdapter = await speculativeDecode(uncached, prompt, { maxNewTokens: 20 });
        expect(viaAdapter.tokens).toEqual(greedy.tokens);
      }
    });
    expect(rolledBack).toBeGreaterThan(0); // rejected drafts were truncated from the cache
    cached.dispose();
    layers.dispose();
  });
});

it('the adapter slides its window past the context and still equals greedy on the same adapter', async () => {
  const layers = tinyTransformer({ mtpHeads: 3, maxLength: 16, seed: 11 });
  const model = fromLayersModel(layers, { window: 16 });
  const greedy = await greedyDecode(model, [1, 2, 3, 4, 5], { maxNewTokens: 30 });
  const spec = await speculativeDecode(model, [1, 2, 3, 4, 5], { maxNewTokens: 30 });
  expect(greedy.tokens).toHaveLength(30); // 35 tokens > 16-position window
  expect(spec.tokens).toEqual(greedy.tokens);
  layers.dispose();
});
