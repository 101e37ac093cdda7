/**
 * `tree: 'auto'` in the decode loop: each step verifies the best-first prefix of the dynamic tree
 * that the tuner picks from step costs measured while decoding (tuner.ts). Output identical to greedyDecode (parallel heads and
 * sequential modules), at most the largest measured budget per step, and no tensor left behind
 * after a success, a throw and an abort.
 */
import { beforeAll, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, speculativeStream, TREE_AUTO_DEFAULTS } from '../../src/decoding/index.js';
import { resolveTree } from '../../src/decoding/tree.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

beforeAll(useCpu);

it("resolves 'auto' to a dynamic tree of TREE_AUTO_DEFAULTS.topK candidates and the largest budget", () => {
  const spec = resolveTree('f', 'auto', 3, 100);
  expect(spec).toEqual({ nodes: null, topK: TREE_AUTO_DEFAULTS.topK, maxNodes: TREE_AUTO_DEFAULTS.budgets[TREE_AUTO_DEFAULTS.budgets.length - 1], depth: 3, auto: true });
  expect(resolveTree('f', 'auto', 3, 5).topK).toBe(5); // never more candidates than the vocabulary
  expect(() => resolveTree('f', 'auto', 0, 5)).toThrow('f: options.draftLength must be at least 1 with options.tree, but got 0.');
});

it.each([
  ['parallel heads', () => tinyTransformer({ mtpHeads: 4, maxLength: 64 })],
  [
    'sequential modules',
    () => {
      const layers = withSequentialHeads(tinyTransformer({ mtpHeads: 1, maxLength: 64 }), 4, 8);
      const head = layers.getLayer('mtp_head');
      randomizeWeights({ weights: head.weights.filter((w) => w.originalName.includes('module')) }, 11, 0.4);
      return layers;
    },
  ],
])("'auto' (%s): identical to greedyDecode, at most the largest budget per step, no leak", async (_, make) => {
  const layers = make();
  const model = new CachedTransformer(layers);
  const forwardTree = model.forwardTree.bind(model);
  const fed: number[] = [];
  Object.defineProperty(model, 'forwardTree', { value: (t: number[], p: number[]) => (fed.push(t.length), forwardTree(t, p)) });
  for (const prompt of [[1, 2], [9], [4, 4, 17]]) {
    const greedy = await greedyDecode(model, prompt, { maxNewTokens: 40 });
    const r = await expectNoLeak(() => speculativeDecode(model, prompt, { maxNewTokens: 40, tree: 'auto' }));
    expect(r.tokens).toEqual(greedy.tokens);
    expect(r.stats.draftNodes! / r.stats.forwards).toBeLessThanOrEqual(TREE_AUTO_DEFAULTS.budgets[TREE_AUTO_DEFAULTS.budgets.length - 1]!);
  }
  expect(Math.max(...fed)).toBeLessThanOrEqual(TREE_AUTO_DEFAULTS.budgets[TREE_AUTO_DEFAULTS.budgets.length - 1]! + 3); // + the pending tokens
  model.dispose();
  layers.dispose();
}, 120_000);

it("'auto': no tensor left behind after a throw, an abort, and an already-aborted signal", async () => {
  const layers = tinyTransformer({ mtpHeads: 3, maxLength: 64 });
  const model = new CachedTransformer(layers);
  await expectThrowNoLeak(() => speculativeDecode(model, [1, 2], { tree: 'auto', maxNewTokens: 20, onToken: (c) => { if (c.step === 2) throw new Error('stop here'); } }), 'stop here');
  const controller = new AbortController();
  await expectThrowNoLeak(async () => {
    for await (const chunk of speculativeStream(model, [1, 2], { tree: 'auto', maxNewTokens: 20, signal: controller.signal })) {
      if (chunk.step === 1) controller.abort(new Error('aborted here'));
    }
  }, 'aborted here');
  const fresh = new CachedTransformer(tinyTransformer({ mtpHeads: 3, maxLength: 64, seed: 9 })); // not measured yet
  await expectThrowNoLeak(() => speculativeDecode(fresh, [1, 2], { tree: 'auto', maxNewTokens: 20, signal: AbortSignal.abort(new Error('early')) }), 'early');
  fresh.dispose();
  fresh.model.dispose();
  model.dispose();
  layers.dispose();
});
