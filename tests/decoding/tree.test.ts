/**
 * Tree drafting's pieces and its contract with the session: the tree option's validation (every
 * guard fires, naming the option), static and dynamic tree construction, (the acceptance rules
 * themselves: acceptance.test.ts), typical acceptance on a tree, non-finite logits (device and fast
 * path), and no tensor left behind after a success, a throw and an abort, nor any growth over a
 * long tree decode (past every growth of the KV cache).
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { speculativeDecode, speculativeStream, TREE_LIMITS } from '../../src/decoding/index.js';
import { growTree, resolveTree } from '../../src/decoding/tree.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak, LONG_TOKENS } from '../helpers/leak.js';
import { ToyAttentionModel } from '../helpers/toy_models.js';
import { tinyTransformer } from '../helpers/models.js';
import { TreeTableModel } from '../helpers/tree_models.js';

beforeAll(useCpu);

describe('the tree option', () => {
  const model = new ToyAttentionModel({ vocabSize: 23, hidden: 8, numHeads: 3 });
  const cases: [unknown, string][] = [
    ['wide', "speculativeDecode: options.tree must be a list of paths of candidate ranks (e.g. [[0], [1], [0, 0]]), { topK, maxNodes } or 'auto', but got \"wide\"."],
    [[], `speculativeDecode: options.tree.length must be in [1, ${TREE_LIMITS.maxNodes}] paths, but got 0.`],
    [[[0], []], 'speculativeDecode: options.tree[1] must be a non-empty array of at most draftLength = 2 ranks, but got [].'],
    [[[0], [0, 0, 0]], 'speculativeDecode: options.tree[1] must be a non-empty array of at most draftLength = 2 ranks, but got [0, 0, 0].'],
    [[[0], [1.5]], 'speculativeDecode: options.tree[1][0] must be a candidate rank, an integer in [0, 22], but got 1.5.'],
    [[[0], [0]], 'speculativeDecode: options.tree[1] must not repeat an earlier path, but got [0].'],
    [[[0], [1, 0]], 'speculativeDecode: options.tree must contain every prefix of its paths, but [1, 0] has no [1].'],
    [{ topK: 0, maxNodes: 4 }, 'speculativeDecode: options.tree.topK must be an integer in [1, 23], but got 0.'],
    [{ topK: 2, maxNodes: TREE_LIMITS.maxNodes + 1 }, `speculativeDecode: options.tree.maxNodes must be an integer in [1, ${TREE_LIMITS.maxNodes}], but got ${TREE_LIMITS.maxNodes + 1}.`],
  ];
  it.each(cases)('refuses %j, naming it', async (tree, message) => {
    await expectThrowNoLeak(() => speculativeDecode(model, [1], { tree: tree as never }), message);
  });

  it('refuses a model without forwardTree and keepRows, naming what it lacks', async () => {
    await expectThrowNoLeak(
      () => speculativeDecode(model, [1], { tree: [[0]] }),
      'speculativeDecode: options.tree needs a model with forwardTree and keepRows (one forward over the tree, then keeping the accepted path\'s positions), but model.forwardTree and model.keepRows are missing.',
    );
    await expectThrowNoLeak(() => speculativeDecode(model, [1], { tree: { topK: 2, maxNodes: 4 }, draftLength: 0 }), 'speculativeDecode: options.draftLength must be at least 1 with options.tree, but got 0.');
  });
});

describe('tree construction', () => {
  it('a static tree is ordered by depth then ranks, parents before children', () => {
    const spec = resolveTree('f', [[1, 0], [0], [1], [0, 1], [0, 0]], 3, 10);
    expect(spec.nodes).toEqual([
      { parent: -1, depth: 1, rank: 0 },
      { parent: -1, depth: 1, rank: 1 },
      { parent: 0, depth: 2, rank: 0 },
      { parent: 0, depth: 2, rank: 1 },
      { parent: 1, depth: 2, rank: 0 },
    ]);
    expect([spec.topK, spec.depth]).toEqual([2, 2]);
    const tree = growTree(spec, { ids: [[7, 8], [4, 5]], logProbs: null }, 5);
    expect(tree.tokens).toEqual([7, 8, 4, 5, 4]);
    // one position of room left: depth 1 only
    expect(growTree(spec, { ids: [[7, 8], [4, 5]], logProbs: null }, 1).tokens).toEqual([7, 8]);
  });

  it('a dynamic tree keeps the nodes of the highest cumulative log-probability (EAGLE-2), prefix-closed', () => {
    const spec = resolveTree('f', { topK: 3, maxNodes: 4 }, 2, 10);
    const lp = [Math.log(0.6), Math.log(0.3), Math.log(0.1)];
    const lp2 = [Math.log(0.9), Math.log(0.05), Math.log(0.05)];
    const tree = growTree(spec, { ids: [[1, 2, 3], [4, 5, 6]], logProbs: [lp, lp2] }, 10);
    // scores: [0] .6, [0,0] .54, [1] .3, [1,0] .27, [2] .1, [0,1] .03 …
    expect(tree.nodes).toEqual([
      { parent: -1, depth: 1, rank: 0 },
      { parent: 0, depth: 2, rank: 0 },
      { parent: -1, depth: 1, rank: 1 },
      { parent: 2, depth: 2, rank: 0 },
    ]);
    expect(tree.tokens).toEqual([1, 4, 2, 4]);
  });
});

it("'typical' on a tree: a permissive threshold keeps a full-depth path every step", async () => {
  const layers = tinyTransformer({ mtpHeads: 3, maxLength: 64 });
  const model = new CachedTransformer(layers);
  const r = await expectNoLeak(() =>
    speculativeDecode(model, [1, 2], { acceptance: 'typical', tree: [[0], [1], [0, 0]], posteriorThreshold: 1e-12, posteriorAlpha: 1e-12, maxNewTokens: 30, seed: 3 }),
  );
  expect(r.sources.slice(1, 13)).toEqual([1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0]);
  model.dispose();
  layers.dispose();
});

describe('no tensor left behind', () => {
  it('after a success, a throw in onToken and an abort, for each acceptance rule', async () => {
    const layers = tinyTransformer({ mtpHeads: 3, maxLength: 64 });
    const model = new CachedTransformer(layers);
    for (const acceptance of ['greedy', 'sampling', 'typical'] as const) {
      const tree = acceptance === 'greedy' ? { topK: 3, maxNodes: 8 } : [[0], [1], [0, 0]];
      await expectNoLeak(() => speculativeDecode(model, [1, 2], { acceptance, tree, maxNewTokens: 20, seed: 1 }));
      await expectThrowNoLeak(() => speculativeDecode(model, [1, 2], { acceptance, tree, maxNewTokens: 20, seed: 1, onToken: (c) => { if (c.step === 2) throw new Error('stop here'); } }), 'stop here');
      const controller = new AbortController();
      await expectThrowNoLeak(async () => {
        for await (const chunk of speculativeStream(model, [1, 2], { acceptance, tree, maxNewTokens: 20, seed: 1, signal: controller.signal })) {
          if (chunk.step === 1) controller.abort(new Error('aborted here'));
        }
      }, 'aborted here');
    }
    model.dispose();
    layers.dispose();
  });

  it(`a ${LONG_TOKENS}-token tree decode: the same number of tensors after every step (exactness is tree_parity's)`, async () => {
    const layers = tinyTransformer({ mtpHeads: 4, maxLength: LONG_TOKENS + 100, vocabSize: 32 });
    const model = new CachedTransformer(layers);
    const counts: number[] = [];
    const r = await expectNoLeak(() =>
      speculativeDecode(model, [1], { tree: { topK: 3, maxNodes: 12 }, maxNewTokens: LONG_TOKENS, onToken: () => void counts.push(tf.memory().numTensors) }),
    );
    expect(r.tokens).toHaveLength(LONG_TOKENS);
    expect(new Set(counts.slice(2)).size).toBe(1);
    expect(r.stats.forwards).toBeLessThan(LONG_TOKENS); // the tree did commit several tokens per forward
    model.dispose();
    layers.dispose();
  }, 120_000);
});

describe('non-finite logits stop a tree decode with the decoders\' error', () => {
  it('device path (a table model without headTopK): NaN logits after token 3', async () => {
    const table = (j: number) => Array.from({ length: 5 }, (_, a) => Array.from({ length: 5 }, (_, b) => (a === 3 ? NaN : b === (a + 1 + j) % 5 ? 2 : 0)));
    const model = new TreeTableModel([table(0), table(1), table(2)]);
    // 0 → 1 → 2 → 3: the step that verifies the rows after token 3 sees NaN
    await expectThrowNoLeak(() => speculativeDecode(model, [0], { tree: [[0], [1], [0, 0]], maxNewTokens: 10 }), /speculativeDecode: the model's logits at step \d contain NaN or ±Infinity/);
    model.dispose();
  });

  it('fast path (CachedTransformer headTopK): a NaN embedding row', async () => {
    const layers = tinyTransformer({ mtpHeads: 3, maxLength: 32 });
    const index = layers.weights.findIndex((w) => w.originalName.endsWith('tok_embeddings.weight'));
    const weights = layers.getWeights();
    const poisoned = tf.tidy(() => tf.where(tf.equal(tf.reshape(tf.range(0, 32, 1, 'int32'), [32, 1]), 5), tf.fill(weights[index]!.shape, NaN), weights[index]!));
    layers.setWeights(weights.map((w, i) => (i === index ? poisoned : w)));
    poisoned.dispose();
    const model = new CachedTransformer(layers);
    await expectThrowNoLeak(() => speculativeDecode(model, [5], { tree: { topK: 2, maxNodes: 4 }, maxNewTokens: 10 }), "speculativeDecode: the model's logits at step 0 contain NaN or ±Infinity");
    model.dispose();
    layers.dispose();
  });
});
