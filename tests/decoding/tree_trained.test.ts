/**
 * Tree drafting on the trained checkpoint (fixtures/tslib-k4, wasm): on held-out TypeScript
 * declarations, a static and a dynamic tree return greedy decoding's bytes exactly, and — the
 * heads' second guesses being often right — keep more drafts per step than the chain.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { greedyDecode, speculativeDecode, type TreeOption } from '../../src/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { encodeBytes } from '../../src/models/tokenizer.js';
import { loadCheckpoint } from '../../tools/checkpoint.js';
import { readLibFile } from '../../tools/corpus.js';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { expectNoLeak } from '../helpers/leak.js';

const fixture = new URL('../../fixtures/tslib-k4/', import.meta.url).pathname;
const heldOut = (JSON.parse(readFileSync(join(fixture, 'training.json'), 'utf8')) as { corpus: { heldOutFiles: string[] } }).corpus.heldOutFiles;
const prompts = heldOut.slice(0, 3).flatMap((file) => {
  const text = readLibFile(file);
  return [0.3, 0.7].map((at) => encodeBytes(text.slice(Math.floor(at * text.length), Math.floor(at * text.length) + 48)));
});

let layers: LayersModel;
beforeAll(async () => {
  await tf.setBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
  layers = await loadCheckpoint(fixture);
});
afterAll(() => layers.dispose());

it('static and dynamic trees equal greedy decoding on 6 held-out prompts, with a higher τ than the chain', async () => {
  const model = new CachedTransformer(layers);
  const trees: TreeOption[] = [[[0], [1], [0, 0], [1, 0], [0, 1], [0, 0, 0]], { topK: 4, maxNodes: 16 }];
  const tau = { chain: 0, static: 0, dynamic: 0 };
  await expectNoLeak(async () => {
    for (const prompt of prompts) {
      const greedy = await greedyDecode(model, prompt, { maxNewTokens: 48 });
      const chain = await speculativeDecode(model, prompt, { maxNewTokens: 48 });
      tau.chain += chain.stats.meanAcceptedLength;
      for (const [i, tree] of trees.entries()) {
        const r = await speculativeDecode(model, prompt, { maxNewTokens: 48, tree });
        expect(r.tokens).toEqual(greedy.tokens);
        tau[i === 0 ? 'static' : 'dynamic'] += r.stats.meanAcceptedLength;
      }
    }
  });
  expect(tau.static).toBeGreaterThan(tau.chain);
  expect(tau.dynamic).toBeGreaterThan(tau.chain);
  model.dispose();
});
