/**
 * EAGLE-2 tree growth on a real model: stories260K with its trained sequential MTP modules
 * (fixtures/stories260k-heads/sequential-k4.bin, wasm). On held-out story openings, grown dynamic
 * trees return greedy decoding's tokens exactly, keep more per step than the top-1-chain ranking
 * of the same budget (the same model with `headTree` hidden) and than the chain, and leave no
 * tensor behind.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import { heldOutPrompts } from '../../tools/heads/measure.js';
import { expectNoLeak } from '../helpers/leak.js';
import { readStories, storiesAvailable } from '../helpers/stories.js';

const available = storiesAvailable('tree_eagle_stories.test.ts');

describe.skipIf(!available)('stories260K + sequential-k4: EAGLE-grown trees', () => {
  let layers: LayersModel;
  let prompts: number[][];
  beforeAll(async () => {
    await tf.setBackend('wasm');
    expect(tf.getBackend()).toBe('wasm');
    const heads = new Uint8Array(readFileSync(fileURLToPath(new URL('../../fixtures/stories260k-heads/sequential-k4.bin', import.meta.url))));
    const loaded = await loadLlama2c(readStories('checkpoint'), { tokenizer: readStories('tokenizer'), draftHeads: heads });
    layers = loaded.model;
    prompts = heldOutPrompts().slice(0, 4).map((t) => loaded.tokenizer!.encode(t, { bos: true }));
  });
  afterAll(() => layers?.dispose());

  it('equal greedyDecode on 4 held-out prompts at 6, 12 and 32 nodes, with a higher τ than the top-1-chain tree and the chain', async () => {
    const model = new CachedTransformer(layers);
    expect(model.headTree).toBeTypeOf('function');
    const ranked = Object.assign(Object.create(CachedTransformer.prototype) as CachedTransformer, model);
    Object.defineProperty(ranked, 'headTree', { value: undefined });
    const trees = [{ topK: 4, maxNodes: 6 }, { topK: 4, maxNodes: 12 }, { topK: 8, maxNodes: 32 }];
    const tau = { chain: 0, grown: [0, 0, 0], ranked: [0, 0, 0] };
    await expectNoLeak(async () => {
      for (const prompt of prompts) {
        const greedy = await greedyDecode(model, prompt, { maxNewTokens: 100 });
        tau.chain += (await speculativeDecode(model, prompt, { maxNewTokens: 100 })).stats.meanAcceptedLength;
        for (const [i, tree] of trees.entries()) {
          const r = await speculativeDecode(model, prompt, { maxNewTokens: 100, tree });
          expect(r.tokens).toEqual(greedy.tokens);
          tau.grown[i] += r.stats.meanAcceptedLength;
          tau.ranked[i] += (await speculativeDecode(ranked, prompt, { maxNewTokens: 100, tree })).stats.meanAcceptedLength;
        }
      }
    });
    for (let i = 0; i < trees.length; i++) {
      expect(tau.grown[i]).toBeGreaterThan(tau.ranked[i]!);
      expect(tau.grown[i]).toBeGreaterThan(tau.chain);
    }
    model.dispose();
  }, 180_000);
});
