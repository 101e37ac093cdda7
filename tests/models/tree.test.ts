/**
 * CachedTransformer's tree forward: every node's state equals the state the same path gets fed
 * as a plain chain (tree attention mask, positions prefix + depth), for both families; keepRows
 * keeps exactly a path, so decoding on from it equals decoding on from the chain; the guards fire.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer, type TransformerConfig } from '../../src/models/index.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';
import { expectClose, tinyTransformer, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

const FAMILIES: [string, TransformerConfig][] = [
  ['GPT (learned positions)', {}],
  ['Llama (rotary, GQA)', { norm: 'rmsNorm', positions: 'rotary', mlp: 'swiglu', useBias: false, numAttentionHeads: 4, numKeyValueHeads: 2 }],
  [
    'Hugging Face extras (q/k/v biases, head_dim ≠ D/H, llama3 RoPE scaling)',
    { norm: 'rmsNorm', positions: 'rotary', ropeLayout: 'halfSplit', mlp: 'swiglu', useBias: false, attentionBias: 'qkv', numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 6, ropeScaling: { type: 'llama3', factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxLength: 16 } },
  ],
];
const PREFIX = [3, 17, 4, 4, 29];
// Pending token 9 (index 0), then a tree under it: 1 → {5 → {2, 8}, 7}, 6 → {0}.
const TOKENS = [9, 1, 6, 5, 7, 0, 2, 8];
const PARENTS = [-1, 0, 0, 1, 1, 2, 3, 3];
/** The path (indices) from index 0 to each index. */
const pathTo = (i: number): number[] => (i < 0 ? [] : [...pathTo(PARENTS[i]!), i]);

describe.each(FAMILIES)('%s', (_, config) => {
  it('each node state equals the chain forward over its path', async () => {
    const layers = tinyTransformer(config);
    const tree = new CachedTransformer(layers);
    const chain = new CachedTransformer(layers);
    await expectNoLeak(() => {
      tf.dispose(tree.forward(PREFIX));
      const states = tree.forwardTree(TOKENS, PARENTS); // [8, D]
      expect(tree.length).toBe(PREFIX.length + TOKENS.length);
      TOKENS.forEach((_t, i) => {
        chain.truncate(0);
        const ids = [...PREFIX, ...pathTo(i).map((j) => TOKENS[j]!)];
        const want = chain.forward(ids); // [n, D]
        const got = tf.slice(states, [i, 0], [1, -1]);
        const last = tf.slice(want, [ids.length - 1, 0], [1, -1]);
        expectClose(got, last, 1e-5);
        tf.dispose([want, got, last]);
      });
      states.dispose();
      tree.truncate(0);
      chain.truncate(0);
    });
    tree.dispose();
    chain.dispose();
    layers.dispose();
  });

  it('keepRows keeps exactly one path: the next forward equals the chain that fed that path', async () => {
    const layers = tinyTransformer(config);
    const tree = new CachedTransformer(layers);
    const chain = new CachedTransformer(layers);
    await expectNoLeak(() => {
      tf.dispose(tree.forward(PREFIX));
      tf.dispose(tree.forwardTree(TOKENS, PARENTS));
      const kept = pathTo(6); // 9 → 1 → 5 → 2
      tree.keepRows(kept);
      expect(tree.length).toBe(PREFIX.length + kept.length);
      const next = tree.forward([11, 12]);
      const want = chain.forward([...PREFIX, ...kept.map((j) => TOKENS[j]!), 11, 12]);
      const tail = tf.slice(want, [want.shape[0] - 2, 0], [2, -1]);
      expectClose(next, tail, 1e-5);
      tf.dispose([next, want, tail]);
      tree.truncate(0);
      chain.truncate(0);
    });
    tree.dispose();
    chain.dispose();
    layers.dispose();
  });
});

describe('guards', () => {
  it('forwardTree refuses bad parents and a tree deeper than the context, keepRows bad rows, with nothing allocated', async () => {
    const layers = tinyTransformer({ maxLength: 8 });
    const model = new CachedTransformer(layers);
    await expectThrowNoLeak(() => model.forwardTree([1, 2], [-1]), 'CachedTransformer.forwardTree: parents must be an array of 2 parent indices (one per token), but got [-1].');
    await expectThrowNoLeak(() => model.forwardTree([1, 2], [-1, 1]), 'CachedTransformer.forwardTree: parents[1] must be an integer in [-1, 0] (an earlier token, or -1 for the cached prefix), but got 1.');
    await expectThrowNoLeak(() => model.forwardTree([1, 99], [-1, 0]), 'CachedTransformer.forwardTree: tokenIds[1] must be an integer in [0, vocabSize = 32), but got 99.');
    tf.dispose(model.forward([1, 2, 3, 4, 5]));
    await expectThrowNoLeak(() => model.forwardTree([1, 2, 3, 4], [-1, 0, 1, 2]), 'CachedTransformer.forwardTree: the deepest token (depth 3) must fit the context (length 5 + 4 ≤ maxLength = 8), but it does not.');
    const wide = model.forwardTree([1, 2, 3, 4, 5, 6], [-1, 0, 0, 0, 1, 1]); // 6 rows, depth 2: fits
    wide.dispose();
    await expectThrowNoLeak(() => model.keepRows([0, 0]), 'CachedTransformer.keepRows: rows[1] must be an integer in [1, 5] (increasing, of the last forward\'s 6 tokens), but got 0.');
    model.keepRows([0, 1]);
    expect(model.length).toBe(7);
    await expectThrowNoLeak(() => model.keepRows([0]), 'CachedTransformer.keepRows: rows are kept of the last forward, but nothing was fed since the cache last changed.');
    model.dispose();
    layers.dispose();
  });
});
