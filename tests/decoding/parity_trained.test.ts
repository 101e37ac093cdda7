/**
 * Parity on the trained checkpoint (fixtures/tslib-k4): on held-out TypeScript declarations,
 * where the heads' drafts are often right and rollback happens at every step, speculative
 * decoding (greedy acceptance) through the KV cache and through the uncached adapter returns
 * greedy decoding's bytes exactly, for every draft length. Runs on the wasm backend.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { fromLayersModel, greedyDecode, speculativeDecode } from '../../src/index.js';
import { CachedTransformer } from '../../src/models/index.js';
import { encodeBytes } from '../../src/models/tokenizer.js';
import { loadCheckpoint } from '../../tools/checkpoint.js';
import { readLibFile } from '../../tools/corpus.js';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import { expectNoLeak } from '../helpers/leak.js';

const fixture = new URL('../../fixtures/tslib-k4/', import.meta.url).pathname;
const heldOut = (JSON.parse(readFileSync(join(fixture, 'training.json'), 'utf8')) as { corpus: { heldOutFiles: string[] } }).corpus.heldOutFiles;

/** Three prompts of 48 bytes from each of the first three held-out files. */
const prompts = heldOut.slice(0, 3).flatMap((file) => {
  const text = readLibFile(file);
  return [0.25, 0.5, 0.75].map((at) => encodeBytes(text.slice(Math.floor(at * text.length), Math.floor(at * text.length) + 48)));
});

let layers: LayersModel;
beforeAll(async () => {
  // wasm: ~25× the cpu backend's matMul here, and a second backend for the parity claim.
  await tf.setBackend('wasm');
  expect(tf.getBackend()).toBe('wasm');
  layers = await loadCheckpoint(fixture);
});
afterAll(() => layers.dispose());

it('speculative decoding equals greedy decoding on 9 held-out prompts (cached: draft lengths 1–3; adapter: 3, on one prompt per file)', async () => {
  const cached = new CachedTransformer(layers);
  const uncached = fromLayersModel(layers);
  let accepted = 0;
  let drafted = 0;
  let adapterChecked = 0;
  await expectNoLeak(async () => {
    for (const prompt of prompts) {
      const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 32 });
      for (const draftLength of [1, 2, 3]) {
        const spec = await speculativeDecode(cached, prompt, { maxNewTokens: 32, draftLength });
        expect(spec.tokens).toEqual(greedy.tokens);
        accepted += spec.stats.accepted;
        drafted += spec.stats.drafted;
      }
      // the adapter recomputes the whole sequence every forward (~5× the cached decodes' time): one prompt per file
      if (prompts.indexOf(prompt) % 3 === 1) {
        const viaAdapter = await speculativeDecode(uncached, prompt, { maxNewTokens: 32 });
        expect(viaAdapter.tokens).toEqual(greedy.tokens);
        adapterChecked++;
      }
    }
  });
  // Trained heads: many drafts kept and many rolled back — both paths of the loop ran.
  expect(accepted / drafted).toBeGreaterThan(0.2);
  expect(accepted).toBeLessThan(drafted);
  expect(adapterChecked).toBe(3);
  cached.dispose();
});
