/**
 * src/decoding/tree_auto.ts: the per-backend default trees, `chooseBudget`'s expected-tokens-per-ms
 * rule on hand-computed numbers (and every guard, naming the argument), and `measureTreeCosts` on a
 * real CachedTransformer and on a recording tree model — its dummy trees, its cache per (model,
 * backend, depth, budgets), the model's cache left as it was, and no tensor left behind after a
 * success, a throw and an abort.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  chooseBudget,
  DECODE_DEFAULTS,
  defaultTree,
  greedyDecode,
  measureTreeCosts,
  speculativeDecode,
  TREE_AUTO_DEFAULTS,
  TREE_BACKEND_DEFAULTS,
  TREE_LIMITS,
  type TreeCost,
} from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';
import { TreeTableModel } from '../helpers/tree_models.js';

beforeAll(useCpu);

/** A 4-head table model over 5 tokens (any logits: only the shapes matter to the cost measurement). */
function tableModel(): TreeTableModel {
  const V = 5;
  return new TreeTableModel(Array.from({ length: 4 }, (_, j) => Array.from({ length: V }, (_, a) => Array.from({ length: V }, (_, b) => ((a + 2 * b + j) % V) / 2))));
}

describe('defaultTree', () => {
  it('gives each measured backend its own tree, any other backend the fallback, and the running one by default', () => {
    for (const b of ['cpu', 'wasm', 'webgl', 'webgpu'] as const) expect(defaultTree(b)).toBe(TREE_BACKEND_DEFAULTS[b]);
    expect(defaultTree('tensorflow')).toBe(TREE_BACKEND_DEFAULTS.fallback);
    expect(defaultTree('toString')).toBe(TREE_BACKEND_DEFAULTS.fallback); // not an own entry
    expect(defaultTree()).toBe(TREE_BACKEND_DEFAULTS.cpu); // the tests run on cpu
    expect(DECODE_DEFAULTS.tree).toBe(TREE_BACKEND_DEFAULTS.fallback);
    for (const t of Object.values(TREE_BACKEND_DEFAULTS)) {
      expect(Number.isInteger(t.topK) && t.topK >= 1 && t.topK <= TREE_LIMITS.topK).toBe(true);
      expect(Number.isInteger(t.maxNodes) && t.maxNodes >= 1 && t.maxNodes <= TREE_LIMITS.maxNodes).toBe(true);
      expect(Object.isFrozen(t)).toBe(true);
    }
  });

  it('refuses a backend name that is not a string', () => {
    expect(() => defaultTree(3 as never)).toThrow('defaultTree: backend must be a backend name (a string), but got 3.');
  });

  it('every default is a tree the decoder accepts, and decodes exactly like greedy', async () => {
    const layers = tinyTransformer({ mtpHeads: 4 });
    const model = new CachedTransformer(layers);
    const greedy = await greedyDecode(model, [1, 2, 3], { maxNewTokens: 12 });
    for (const tree of Object.values(TREE_BACKEND_DEFAULTS)) {
      const r = await expectNoLeak(() => speculativeDecode(model, [1, 2, 3], { maxNewTokens: 12, tree }));
      expect(r.tokens).toEqual(greedy.tokens);
    }
    model.dispose();
    layers.dispose();
  });
});

describe('chooseBudget', () => {
  const log = (ps: number[]) => ps.map(Math.log);
  // cost(1) = 1, cost(4) = 2, linear between: cost(2) = 4/3, cost(3) = 5/3
  const steep: TreeCost[] = [{ nodes: 1, ms: 1 }, { nodes: 4, ms: 2 }];
  // cost(1) = 1, cost(4) = 1.3: cost(2) = 1.1, cost(3) = 1.2
  const flat: TreeCost[] = [{ nodes: 1, ms: 1 }, { nodes: 4, ms: 1.3 }];
  const paths = log([0.9, 0.5, 0.3, 0.01]);

  it('picks the node count of the most expected tokens per ms', () => {
    // steep: 1.9/1 = 1.9, 2.4/1.333 = 1.8, 2.7/1.667 = 1.62, 2.71/2 = 1.355 → 1
    expect(chooseBudget(paths, steep)).toBe(1);
    // flat: 1.9, 2.4/1.1 = 2.18, 2.7/1.2 = 2.25, 2.71/1.3 = 2.08 → 3
    expect(chooseBudget(paths, flat)).toBe(3);
    // free nodes: all of them are worth it
    expect(chooseBudget(paths, [{ nodes: 1, ms: 1 }, { nodes: 8, ms: 1 }])).toBe(4);
  });

  it('never takes more nodes than the largest budget measured, nor than there are', () => {
    expect(chooseBudget(log([0.9, 0.9, 0.9, 0.9]), [{ nodes: 2, ms: 1 }, { nodes: 3, ms: 1 }])).toBe(3);
    expect(chooseBudget(log([0.9, 0.9]), [{ nodes: 2, ms: 1 }, { nodes: 16, ms: 1 }])).toBe(2);
    expect(chooseBudget([], flat)).toBe(0);
  });

  it('below the smallest budget costs as the smallest; ties go to the smaller tree; a node of probability 0 adds nothing', () => {
    // cost(1) = cost(2) = 1 (below the first measured budget, 3 nodes): 1.5 vs 1.5 + 0 → 1
    expect(chooseBudget([Math.log(0.5), -Infinity], [{ nodes: 3, ms: 1 }])).toBe(1);
    expect(chooseBudget(log([0.5, 0.5, 0.5]), [{ nodes: 3, ms: 1 }])).toBe(3);
    // a Float32Array of scores works as well as an array
    expect(chooseBudget(Float32Array.from(paths), flat)).toBe(3);
  });

  const cases: [unknown, unknown, string][] = [
    ['x', flat, 'chooseBudget: scores must be an array of log-probabilities, but got "x".'],
    [paths, [], 'chooseBudget: costs must be a non-empty cost table (measureTreeCosts), but got [].'],
    [paths, [{ nodes: 0, ms: 1 }], 'chooseBudget: costs[0].nodes must be an integer ≥ 1 (node counts increasing), but got 0.'],
    [paths, [{ nodes: 4, ms: 1 }, { nodes: 4, ms: 2 }], 'chooseBudget: costs[1].nodes must be an integer ≥ 5 (node counts increasing), but got 4.'],
    [paths, [{ nodes: 4, ms: 0 }], 'chooseBudget: costs[0].ms must be a finite number > 0, but got 0.'],
    [paths, [{ nodes: 4, ms: NaN }], 'chooseBudget: costs[0].ms must be a finite number > 0, but got NaN.'],
    [[-1, -0.5], flat, 'chooseBudget: scores must be non-increasing log-probabilities ≤ 0, but scores[1] is -0.5 after -1.'],
    [[0.1], flat, 'chooseBudget: scores must be non-increasing log-probabilities ≤ 0, but scores[0] is 0.1.'],
    [[-1, NaN], flat, 'chooseBudget: scores must be non-increasing log-probabilities ≤ 0, but scores[1] is NaN after -1.'],
  ];
  it.each(cases)('refuses scores %j with costs %j, naming the argument', (scores, costs, message) => {
    expect(() => chooseBudget(scores as never, costs as never)).toThrow(message);
  });
});

describe('measureTreeCosts', () => {
  it('times every budget on a CachedTransformer and leaves its cache as it was', async () => {
    const layers = tinyTransformer({ mtpHeads: 4 });
    const model = new CachedTransformer(layers);
    const prompt = [3, 1, 4, 1, 5];
    const before = await greedyDecode(model, prompt, { maxNewTokens: 6 });
    tf.dispose(model.forward(prompt)); // a prefix in the cache, as mid-decode
    const table = await expectNoLeak(() => measureTreeCosts(model, [1, 4, 9], 3, { repeats: 2, warmup: 1 }));
    expect(model.length).toBe(prompt.length);
    expect(table.map((c) => c.nodes)).toEqual([1, 4, 9]);
    for (const c of table) expect(c.ms).toBeGreaterThan(0);
    // the cache still holds the prefix exactly: the next forward's logits equal a fresh model's
    const next = tf.tidy(() => model.headLogits(model.forward([9]), [0])); // [1, 1, V]
    const fresh = new CachedTransformer(layers);
    const expected = tf.tidy(() => model.headLogits(tf.slice(fresh.forward([...prompt, 9]), [prompt.length, 0], [1, -1]), [0])); // [1, 1, V]
    const [got, want] = [await next.data(), await expected.data()];
    want.forEach((x, i) => expect(got[i]).toBeCloseTo(x, 4));
    tf.dispose([next, expected]);
    model.truncate(0);
    expect((await greedyDecode(model, prompt, { maxNewTokens: 6 })).tokens).toEqual(before.tokens);
    [model, fresh].forEach((m) => m.dispose());
    layers.dispose();
  });

  it('feeds one root and chains of at most depth nodes, warm-up + repeats forwards per budget, and measures once per model, backend, depth and budgets', async () => {
    const model = tableModel();
    tf.dispose(model.forward([2, 3]));
    const table = await measureTreeCosts(model, [2, 5], 2, { repeats: 3, warmup: 1 });
    expect(model.trees).toHaveLength(2 * (1 + 3));
    // round-robin: budget 2, budget 5, budget 2, …
    expect(model.trees[0]).toEqual([[0, 1, 2], [-1, 0, 1]]);
    expect(model.trees[1]).toEqual([[0, 1, 2, 3, 4, 0], [-1, 0, 1, 0, 3, 0]]);
    expect(model.trees.map((t) => t[0].length)).toEqual([3, 6, 3, 6, 3, 6, 3, 6]);
    expect(model.length).toBe(2);
    expect(await measureTreeCosts(model, [2, 5], 2, { repeats: 3, warmup: 1 })).toBe(table); // cached: no forward
    expect(model.trees).toHaveLength(8);
    await measureTreeCosts(model, [2, 5], 1, { repeats: 1, warmup: 0 }); // another depth: measured
    expect(model.trees).toHaveLength(10);
    expect(model.trees[8]).toEqual([[0, 1, 2], [-1, 0, 0]]);
    expect(model.trees[9]).toEqual([[0, 1, 2, 3, 4, 0], [-1, 0, 0, 0, 0, 0]]);
    expect(Object.isFrozen(table)).toBe(true);
    model.dispose();
  });

  it('defaults to TREE_AUTO_DEFAULTS.budgets and depth numHeads − 1', async () => {
    const model = tableModel();
    const table = await expectNoLeak(() => measureTreeCosts(model, undefined, undefined, { repeats: 1, warmup: 0 }));
    expect(table.map((c) => c.nodes)).toEqual(TREE_AUTO_DEFAULTS.budgets);
    expect(Math.max(...model.trees.at(-1)![1].map((_, i, ps) => depthOf(ps, i)))).toBe(3);
    model.dispose();
  });

  it('after a throw in the model: rejects with it, the cache restored, no tensor left behind', async () => {
    const model = tableModel();
    tf.dispose(model.forward([1]));
    let calls = 0;
    const forwardTree = model.forwardTree.bind(model);
    model.forwardTree = (tokens, parents) => {
      if (++calls === 3) throw new Error('device lost');
      return forwardTree(tokens, parents);
    };
    await expectThrowNoLeak(() => measureTreeCosts(model, [1, 2], 2, { repeats: 2, warmup: 0 }), 'device lost');
    expect(model.length).toBe(1);
    // a throw after the rows were appended (in the head pass) is rolled back too
    const headLogits = model.headLogits.bind(model);
    model.forwardTree = forwardTree;
    model.headLogits = () => {
      throw new Error('head failed');
    };
    await expectThrowNoLeak(() => measureTreeCosts(model, [3], 2), 'head failed');
    expect(model.length).toBe(1);
    model.headLogits = headLogits;
    // nothing failed was cached: the same measurement now succeeds
    expect((await measureTreeCosts(model, [1, 2], 2, { repeats: 2, warmup: 0 })).map((c) => c.nodes)).toEqual([1, 2]);
    model.dispose();
  });

  it('after an abort: rejects with the reason, between forwards, the cache restored, no tensor left behind', async () => {
    const model = tableModel();
    const controller = new AbortController();
    const forwardTree = model.forwardTree.bind(model);
    model.forwardTree = (tokens, parents) => {
      if (model.trees.length === 2) controller.abort(new Error('stop measuring'));
      return forwardTree(tokens, parents);
    };
    await expectThrowNoLeak(() => measureTreeCosts(model, [1, 2, 3], 2, { repeats: 2, warmup: 0, signal: controller.signal }), 'stop measuring');
    expect(model.trees).toHaveLength(3);
    expect(model.length).toBe(0);
    await expectThrowNoLeak(() => measureTreeCosts(model, [1], 2, { signal: controller.signal }), 'stop measuring');
    expect(model.trees).toHaveLength(3);
    model.dispose();
  });

  it('refuses bad arguments before any forward, naming them', async () => {
    const model = tableModel();
    const plain = Object.assign(tableModel(), { forwardTree: undefined, keepRows: undefined });
    const small = Object.assign(tableModel(), { maxLength: 3 });
    tf.dispose(small.forward([1]));
    const cases: [() => unknown, string][] = [
      [() => measureTreeCosts(plain, [1], 1), 'measureTreeCosts: model must have forwardTree and keepRows (a tree forward, then dropping its rows), but model.forwardTree and model.keepRows are missing.'],
      [() => measureTreeCosts(model, [], 1), 'measureTreeCosts: budgets must be an array of 1 to 32 node counts, but got [].'],
      [() => measureTreeCosts(model, [4, 4], 1), 'measureTreeCosts: budgets[1] must be an integer in [5, 256], but got 4.'],
      [() => measureTreeCosts(model, [0], 1), 'measureTreeCosts: budgets[0] must be a positive integer at most 256, but got 0.'],
      [() => measureTreeCosts(model, [TREE_LIMITS.maxNodes + 1], 1), `measureTreeCosts: budgets[0] must be a positive integer at most 256, but got ${TREE_LIMITS.maxNodes + 1}.`],
      [() => measureTreeCosts(model, [2], 4), 'measureTreeCosts: depth must be a positive integer at most 3, but got 4.'],
      [() => measureTreeCosts(model, [2], 2, { repeats: 0 }), 'measureTreeCosts: options.repeats must be a positive integer at most 64, but got 0.'],
      [() => measureTreeCosts(model, [2], 2, { warmup: -1 }), 'measureTreeCosts: options.warmup must be an integer in [0, 16], but got -1.'],
      [() => measureTreeCosts(model, [2], 2, { signal: {} as never }), 'measureTreeCosts: options.signal must be an AbortSignal, but got an object (Object).'],
      [() => measureTreeCosts(small, [2], 2), 'measureTreeCosts: a tree 2 deep must fit the context (length 1 + 3 ≤ maxLength = 3), but it does not.'],
    ];
    for (const [call, message] of cases) await expectThrowNoLeak(call, message);
    expect([model, plain, small].map((m) => m.trees.length)).toEqual([0, 0, 0]);
    [model, plain, small].forEach((m) => m.dispose());
  });
});

/** Depth of fed token i (the root is 0). */
function depthOf(parents: number[], i: number): number {
  return parents[i]! < 0 ? 0 : 1 + depthOf(parents, parents[i]!);
}
