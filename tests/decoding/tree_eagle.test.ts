/**
 * EAGLE-2 tree growth with sequential MTP modules (`SequentialMtpHead.headTree`, through
 * `CachedTransformer.headTree`): every candidate's children come from the next module fed that
 * candidate's OWN token and its parent's module state (checked against a step-by-step reference
 * built from `moduleState`, and against the top-1-chain ranking it replaces); the expanded parents
 * are the best-scoring of their level; re-ranking keeps a tree. Decoding with it returns exactly
 * greedyDecode's tokens on toy sequential models of both families (fast and device paths); no
 * tensor is left behind after a success, a throw and an abort, nor any growth over a long decode (past every growth of the KV cache).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode, speculativeStream } from '../../src/decoding/index.js';
import { growTree, resolveTree } from '../../src/decoding/tree.js';
import type { SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights } from '../helpers/layers.js';
import { expectNoLeak, expectThrowNoLeak, LONG_TOKENS } from '../helpers/leak.js';
import { tinyTransformer } from '../helpers/models.js';

beforeAll(useCpu);

const FAMILIES: [string, TransformerConfig][] = [
  ['GPT (learned positions)', {}],
  [
    'Llama (rotary, GQA)',
    {
      norm: 'rmsNorm',
      positions: 'rotary',
      mlp: 'swiglu',
      useBias: false,
      numAttentionHeads: 4,
      numKeyValueHeads: 2,
    },
  ],
];

/** A tiny transformer with k = 4 sequential modules of random (trained-looking) weights. */
function sequentialModel(config: TransformerConfig = {}, maxLength = 32): { base: LayersModel; layers: LayersModel; head: SequentialMtpHead } {
  // base shares its trunk with layers: disposing layers frees both
  const base = tinyTransformer({ ...config, mtpHeads: 1, maxLength });
  const layers = withSequentialHeads(base, 4, 8);
  const head = layers.getLayer('mtp_head') as unknown as SequentialMtpHead;
  const modules = head.weights.filter((w) => w.originalName.includes('module'));
  randomizeWeights({ weights: modules }, 11, 0.4);
  return { base, layers, head };
}

/** Trunk states `[n, D]` of `ids` (no cache). */
function trunkStates(layers: LayersModel, ids: number[]): tf.Tensor2D {
  return tf.tidy(() => tf.squeeze(layers.getLayer('transformer').apply(tf.tensor2d([ids], [1, ids.length], 'int32')) as tf.Tensor, [0]) as tf.Tensor2D);
}

describe('SequentialMtpHead.headTree', () => {
  it("each candidate's children are the next module's top-k fed its own token and its parent's state; the expanded parents are their level's best", () => {
    const { layers, head } = sequentialModel();
    const [D, K] = [3, 3];
    const G = K + (D - 1) * K * K;
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      const h = trunkStates(layers, [3, 9, 14]);
      const roots = tf.tensor1d([5, 0, 17], 'int32');
      const grown = head.headTree(h, roots, D, K);
      expect(grown.ids.shape).toEqual([3, G]);
      const [ids, parents, scores] = [grown.ids.arraySync(), grown.parents.arraySync(), grown.scores.arraySync()];
      const e = head.unembedding.matrix();
      const emb = (t: number) => tf.gather(e, tf.tensor1d([t], 'int32')) as tf.Tensor2D; // [1, D]
      /** Log-softmax of the logits a module state gives, as numbers. */
      const logSoftmax = (s: tf.Tensor2D) => tf.tidy(() => tf.logSoftmax(tf.matMul(s, e, false, true)).arraySync() as number[][])[0]!;
      for (let r = 0; r < 3; r++) {
        const state: tf.Tensor2D[] = []; // the module state whose logits rank candidate g
        const rootState = tf.slice(h, [r, 0], [1, -1]) as tf.Tensor2D;
        const rootToken = [5, 0, 17][r]!;
        for (let g = 0; g < G; g++) {
          const p = parents[r]![g]!;
          const depth = g < K ? 1 : 2 + Math.floor((g - K) / (K * K));
          const rank = g < K ? g : (g - K) % K;
          // children are conditioned on the parent's own token, through the parent's module state
          const s = tf.keep(p < 0 ? head.moduleState(1, rootState, emb(rootToken)) : head.moduleState(depth, state[p]!, emb(ids[r]![p]!)));
          state.push(s);
          const lp = logSoftmax(s);
          const order = lp.map((v, t) => [v, t] as const).sort((a, b) => b[0] - a[0]);
          expect(ids[r]![g]).toBe(order[rank]![1]);
          expect(scores[r]![g]).toBeCloseTo((p < 0 ? 0 : scores[r]![p]!) + lp[ids[r]![g]!]!, 4);
        }
        // level d's parents: the K best-scoring candidates of level d − 1, best first
        for (let d = 2; d <= D; d++) {
          const start = d === 2 ? 0 : K + (d - 3) * K * K;
          const level = scores[r]!.slice(start, d === 2 ? K : start + K * K)
            .map((v, i) => [v, start + i] as const)
            .sort((a, b) => b[0] - a[0]);
          const expanded = Array.from({ length: K }, (_, i) => parents[r]![K + (d - 2) * K * K + i * K]!);
          expect(expanded).toEqual(level.slice(0, K).map(([, i]) => i));
        }
        // the point of it: a rank-1 candidate's children differ from the rank-0 candidate's (the top-1 chain would give both the same)
        expect(ids[r]!.slice(K + K, K + 2 * K)).not.toEqual(ids[r]!.slice(K, 2 * K));
        tf.dispose(state);
        rootState.dispose();
      }
    });
    expect(tf.memory().numTensors).toBe(before);
    layers.dispose();
  });

  it('checks its arguments, naming them', async () => {
    const { layers, head } = sequentialModel();
    const h = tf.zeros([2, 16]) as tf.Tensor2D;
    const roots = tf.tensor1d([1, 2], 'int32');
    await expectThrowNoLeak(() => head.headTree(h, roots, 4, 2), 'SequentialMtpHead.headTree: depth must be a positive integer at most 3, but got 4.');
    await expectThrowNoLeak(() => head.headTree(h, roots, 2, 0), 'SequentialMtpHead.headTree: k must be a positive integer at most 32, but got 0.');
    const one = tf.tensor1d([1], 'int32');
    await expectThrowNoLeak(() => head.headTree(h, one, 2, 2), 'SequentialMtpHead.headTree: roots must be a 1-D tensor of 2 tokens (one per row), but got [1].');
    tf.dispose([h, roots, one]);
    layers.dispose();
  });

  it('CachedTransformer has headTree with sequential modules only', () => {
    const { base, layers } = sequentialModel();
    expect(new CachedTransformer(layers).headTree).toBeTypeOf('function');
    expect(new CachedTransformer(base).headTree).toBeUndefined();
    layers.dispose();
  });
});

describe('growTree on a grown forest', () => {
  it('keeps the maxNodes best candidates by path score, every parent before its children, siblings by rank', () => {
    const spec = resolveTree('f', { topK: 2, maxNodes: 4 }, 2, 10);
    // depth 1: tokens 7 (−0.1), 8 (−2.5); depth 2 under 7: 4 (−0.3), 5 (−3); under 8: 1 (−2.6), 2 (−4)
    const forest = {
      tokens: [7, 8, 4, 5, 1, 2],
      parents: [-1, -1, 0, 0, 1, 1],
      ranks: [0, 1, 0, 1, 0, 1],
      scores: [-0.1, -2.5, -0.3, -3, -2.6, -4],
    };
    const tree = growTree(spec, { forest }, 5);
    expect(tree.tokens).toEqual([7, 4, 8, 1]);
    expect(tree.nodes).toEqual([
      { parent: -1, depth: 1, rank: 0 },
      { parent: 0, depth: 2, rank: 0 },
      { parent: -1, depth: 1, rank: 1 },
      { parent: 2, depth: 2, rank: 0 },
    ]);
    expect(growTree(spec, { forest }, 1).tokens).toEqual([7, 8]); // the context holds one more position: depth 1 only
    expect(
      growTree(
        spec,
        {
          forest: {
            ...forest,
            scores: [-0.1, -Infinity, -0.3, -3, -Infinity, -Infinity],
          },
        },
        5
      ).tokens
    ).toEqual([7, 4, 5]);
  });
});

describe.each(FAMILIES)('%s with sequential modules', (_, config) => {
  const PROMPTS = [[1], [5, 9, 2], [3, 17, 4, 4, 29], [30, 2, 2, 7, 11, 0, 13]];

  it('dynamic trees grown the EAGLE-2 way equal greedyDecode on 4 prompts, to the context end (fast path)', async () => {
    const { layers } = sequentialModel(config, 40);
    const model = new CachedTransformer(layers);
    const grow = model.headTree!;
    let calls = 0;
    Object.defineProperty(model, 'headTree', {
      value: (...a: Parameters<typeof grow>) => (calls++, grow(...a)),
    });
    await expectNoLeak(async () => {
      for (const prompt of PROMPTS) {
        const greedy = await greedyDecode(model, prompt, { maxNewTokens: 40 });
        for (const tree of [
          { topK: 2, maxNodes: 4 },
          { topK: 3, maxNodes: 12 },
          { topK: 4, maxNodes: 32 },
        ]) {
          const spec = await speculativeDecode(model, prompt, {
            maxNewTokens: 40,
            tree,
          });
          expect(spec.tokens).toEqual(greedy.tokens);
          expect(spec.finishReason).toBe(greedy.finishReason);
        }
      }
    });
    expect(calls).toBeGreaterThan(0);
    model.dispose();
    layers.dispose();
  });

  it('device path (no headArgmax): greedy, and sampling / typical run and stay in the vocabulary', async () => {
    const { layers } = sequentialModel(config, 40);
    const model = new CachedTransformer(layers);
    const plain = Object.assign(Object.create(CachedTransformer.prototype) as CachedTransformer, model);
    Object.defineProperty(plain, 'headArgmax', { value: undefined });
    Object.defineProperty(plain, 'headTopK', { value: undefined });
    const greedy = await greedyDecode(model, [4, 8], { maxNewTokens: 30 });
    const spec = await expectNoLeak(() =>
      speculativeDecode(plain, [4, 8], {
        maxNewTokens: 30,
        tree: { topK: 3, maxNodes: 10 },
      })
    );
    expect(spec.tokens).toEqual(greedy.tokens);
    for (const acceptance of ['sampling', 'typical'] as const) {
      const r = await expectNoLeak(() =>
        speculativeDecode(plain, [4, 8], {
          acceptance,
          temperature: 0.8,
          maxNewTokens: 30,
          seed: 2,
          tree: { topK: 3, maxNodes: 10 },
        })
      );
      expect(r.tokens).toHaveLength(30);
      expect(r.tokens.every((t) => Number.isInteger(t) && t >= 0 && t < 32)).toBe(true);
    }
    model.dispose();
    layers.dispose();
  });
});

it('the grown tree keeps more drafts than the top-1-chain ranking on the same sequential model, same tokens', async () => {
  const { layers } = sequentialModel({}, 64);
  const model = new CachedTransformer(layers);
  const old = Object.assign(Object.create(CachedTransformer.prototype) as CachedTransformer, model);
  Object.defineProperty(old, 'headTree', { value: undefined });
  let [grown, ranked] = [0, 0];
  for (const prompt of [[1, 2], [7], [19, 3, 3]]) {
    const a = await speculativeDecode(model, prompt, {
      maxNewTokens: 50,
      tree: { topK: 4, maxNodes: 16 },
    });
    const b = await speculativeDecode(old, prompt, {
      maxNewTokens: 50,
      tree: { topK: 4, maxNodes: 16 },
    });
    expect(a.tokens).toEqual(b.tokens);
    [grown, ranked] = [grown + a.stats.accepted, ranked + b.stats.accepted];
  }
  expect(grown).toBeGreaterThan(ranked); // 59 vs 41 at these seeds
  model.dispose();
  layers.dispose();
});

describe('no tensor left behind (grown trees)', () => {
  it('after a success, a throw in onToken and an abort, for each acceptance rule', async () => {
    const { layers } = sequentialModel({}, 64);
    const model = new CachedTransformer(layers);
    const tree = { topK: 3, maxNodes: 8 };
    for (const acceptance of ['greedy', 'sampling', 'typical'] as const) {
      await expectNoLeak(() =>
        speculativeDecode(model, [1, 2], {
          acceptance,
          tree,
          maxNewTokens: 20,
          seed: 1,
        })
      );
      await expectThrowNoLeak(
        () =>
          speculativeDecode(model, [1, 2], {
            acceptance,
            tree,
            maxNewTokens: 20,
            seed: 1,
            onToken: (c) => {
              if (c.step === 2) throw new Error('stop here');
            },
          }),
        'stop here'
      );
      const controller = new AbortController();
      await expectThrowNoLeak(async () => {
        for await (const chunk of speculativeStream(model, [1, 2], {
          acceptance,
          tree,
          maxNewTokens: 20,
          seed: 1,
          signal: controller.signal,
        })) {
          if (chunk.step === 1) controller.abort(new Error('aborted here'));
        }
      }, 'aborted here');
    }
    model.dispose();
    layers.dispose();
  });

  it(`a ${LONG_TOKENS}-token grown-tree decode: the same number of tensors after every step, identical to greedy`, async () => {
    const { layers } = sequentialModel({ vocabSize: 32 }, LONG_TOKENS + 100);
    const model = new CachedTransformer(layers);
    const counts: number[] = [];
    const r = await expectNoLeak(() =>
      speculativeDecode(model, [1], {
        tree: { topK: 3, maxNodes: 12 },
        maxNewTokens: LONG_TOKENS,
        onToken: () => void counts.push(tf.memory().numTensors),
      })
    );
    expect(r.tokens).toHaveLength(LONG_TOKENS);
    expect(new Set(counts.slice(2)).size).toBe(1);
    expect(r.stats.forwards).toBeLessThan(LONG_TOKENS);
    const greedy = await greedyDecode(model, [1], { maxNewTokens: LONG_TOKENS });
    expect(r.tokens).toEqual(greedy.tokens);
    model.dispose();
    layers.dispose();
  }, 180_000);
});

it("a module whose output is NaN stops a grown-tree decode with the decoders' non-finite error (fast and device paths)", async () => {
  const { layers, head } = sequentialModel({}, 32);
  const b2 = head.moduleWeights(2)['b2']!;
  const poisoned = tf.fill(b2.shape as number[], NaN);
  b2.write(poisoned);
  poisoned.dispose();
  const model = new CachedTransformer(layers);
  const plain = Object.assign(Object.create(CachedTransformer.prototype) as CachedTransformer, model);
  Object.defineProperty(plain, 'headArgmax', { value: undefined });
  for (const m of [model, plain]) {
    await expectThrowNoLeak(
      () => speculativeDecode(m, [5], { tree: { topK: 2, maxNodes: 4 }, maxNewTokens: 10 }),
      "speculativeDecode: the model's logits at step 0 contain NaN or ±Infinity"
    );
  }
  model.dispose();
  layers.dispose();
});
