/**
 * Tree drafting with greedy acceptance returns exactly greedyDecode's tokens — static (Medusa)
 * and dynamic (EAGLE-2) trees, on a tiny transformer of each family (learned and rotary
 * positions, through the fused head and without it) — and a tree keeps more drafts per step than
 * the chain when the heads' second guesses are right.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, type TreeOption } from '../../src/decoding/index.js';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

beforeAll(useCpu);

const FAMILIES: [string, TransformerConfig][] = [
  ['GPT (learned positions)', { mtpHeads: 4 }],
  ['Llama (rotary, GQA)', { norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', useBias: false, numAttentionHeads: 4, numKeyValueHeads: 2, mtpHeads: 4 }],
];
const TREES: [string, TreeOption][] = [
  ['static', [[0], [1], [2], [0, 0], [0, 1], [1, 0], [0, 0, 0], [0, 1, 0], [0, 0, 1]]],
  ['dynamic', { topK: 3, maxNodes: 12 }],
];
const PROMPTS = [[1], [5, 9, 2], [3, 17, 4, 4, 29], [30, 2, 2, 7, 11, 0, 13]];

describe.each(FAMILIES)('%s', (_, config) => {
  it.each(TREES)('%s tree: identical to greedyDecode on 4 prompts, to the context end', async (_t, tree) => {
    const layers = tinyTransformer({ ...config, maxLength: 24 });
    const model = new CachedTransformer(layers);
    let kept = 0;
    await expectNoLeak(async () => {
      for (const prompt of PROMPTS) {
        const greedy = await greedyDecode(model, prompt, { maxNewTokens: 40 });
        const spec = await speculativeDecode(model, prompt, { maxNewTokens: 40, tree });
        expect(spec.tokens).toEqual(greedy.tokens);
        expect(spec.finishReason).toBe(greedy.finishReason);
        kept += spec.stats.accepted;
        expect(spec.stats.draftNodes).toBeGreaterThan(spec.stats.drafted - 1);
      }
    });
    expect(kept).toBeGreaterThan(0); // some steps kept a path below the root
    model.dispose();
    layers.dispose();
  });

  it('without the fused head pass (no headTopK): the device path gives the same tokens', async () => {
    const layers = tinyTransformer({ ...config, maxLength: 24 });
    const model = new CachedTransformer(layers);
    const plain = Object.assign(Object.create(CachedTransformer.prototype) as CachedTransformer, model);
    Object.defineProperty(plain, 'headTopK', { value: undefined });
    Object.defineProperty(plain, 'headArgmax', { value: undefined });
    for (const [, tree] of TREES) {
      const greedy = await greedyDecode(model, [4, 8], { maxNewTokens: 20 });
      const spec = await expectNoLeak(() => speculativeDecode(plain, [4, 8], { maxNewTokens: 20, tree }));
      expect(spec.tokens).toEqual(greedy.tokens);
    }
    model.dispose();
    layers.dispose();
  });
});

it('a wide tree verifies more nodes per step than the chain and keeps at least as many drafts, with the same tokens', async () => {
  // Random offset heads rarely rank the right token first; a tree also tries ranks 1…7 per depth.
  const layers = tinyTransformer({ mtpHeads: 3, maxLength: 24 });
  const model = new CachedTransformer(layers);
  const chain = await speculativeDecode(model, [2, 3], { maxNewTokens: 20 });
  const tree = await speculativeDecode(model, [2, 3], { maxNewTokens: 20, tree: { topK: 8, maxNodes: 24 } });
  expect(tree.tokens).toEqual(chain.tokens);
  expect(tree.stats.accepted).toBeGreaterThanOrEqual(chain.stats.accepted);
  expect(tree.stats.draftNodes! / tree.stats.forwards).toBeGreaterThan(chain.stats.draftNodes! / chain.stats.forwards);
  model.dispose();
  layers.dispose();
});
