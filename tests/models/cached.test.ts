/** The KV-cached transformer computes what the layers graph computes, and rolls back exactly. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer } from '../../src/models/index.js';
import { expectClose, tinyTransformer, uncachedLogits, useCpu } from './helpers.js';

beforeAll(useCpu);

const IDS = [3, 17, 4, 4, 29, 0, 12, 8, 31, 5, 5, 9, 22, 1];

/** Feeds `ids` in chunks of `sizes` (cycled) and returns every position's logits `[n, k, V]`. */
function cachedLogits(cached: CachedTransformer, ids: number[], chunk: number): tf.Tensor3D {
  const offsets = Array.from({ length: cached.numHeads }, (_, j) => j);
  const parts: tf.Tensor3D[] = [];
  for (let i = 0; i < ids.length; i += chunk) {
    const states = cached.forward(ids.slice(i, i + chunk)); // [n, D]
    parts.push(cached.headLogits(states, offsets)); // [n, k, V]
    states.dispose();
  }
  const all = tf.concat(parts, 0);
  tf.dispose(parts);
  return all;
}

describe('CachedTransformer', () => {
  for (const chunk of [1, 3, IDS.length]) {
    it(`matches the uncached model at every position, feeding ${chunk} token(s) at a time`, () => {
      const model = tinyTransformer();
      const cached = new CachedTransformer(model);
      const got = cachedLogits(cached, IDS, chunk);
      const want = uncachedLogits(model, IDS);
      expectClose(got, want);
      expect(cached.length).toBe(IDS.length);
      tf.dispose([got, want]);
      cached.dispose();
      model.dispose();
    });
  }

  it('after a partial acceptance, truncate leaves the cache equal to one built from the accepted tokens', () => {
    const model = tinyTransformer();
    const prompt = IDS.slice(0, 6);
    const drafts = [7, 7, 2, 30]; // a verify step over 4 drafted positions…
    const accepted = 2; // …of which 2 were kept
    const next = [19, 6, 11];

    const rolled = new CachedTransformer(model);
    tf.dispose([rolled.forward(prompt), rolled.forward(drafts)]);
    rolled.truncate(prompt.length + accepted);
    expect(rolled.length).toBe(prompt.length + accepted);
    const got = cachedLogits(rolled, next, 2);

    const fresh = new CachedTransformer(model);
    tf.dispose(fresh.forward([...prompt, ...drafts.slice(0, accepted)]));
    const want = cachedLogits(fresh, next, 1);
    expectClose(got, want, 1e-5);

    rolled.truncate(0);
    expect(rolled.length).toBe(0);
    tf.dispose([got, want]);
    rolled.dispose();
    fresh.dispose();
    model.dispose();
  });

  it('headLogits evaluates a subset of offsets in the order asked', () => {
    const model = tinyTransformer();
    const cached = new CachedTransformer(model);
    const states = cached.forward(IDS.slice(0, 4));
    const all = cached.headLogits(states, [0, 1, 2]); // [4, 3, V]
    const some = cached.headLogits(tf.slice(states, [3, 0], [1, -1]), [2, 0]); // [1, 2, V]
    const want = tf.tidy(() => tf.gather(tf.slice(all, [3, 0, 0], [1, -1, -1]), tf.tensor1d([2, 0], 'int32'), 1)); // [1, 2, V]
    expectClose(some, want);
    want.dispose();
    tf.dispose([states, all, some]);
    cached.dispose();
    model.dispose();
  });

  it('reports the model shape: numHeads, vocabSize, maxLength, length', () => {
    const model = tinyTransformer();
    const cached = new CachedTransformer(model);
    expect([cached.numHeads, cached.vocabSize, cached.maxLength, cached.length]).toEqual([3, 32, 24, 0]);
    cached.dispose();
    model.dispose();
  });
});
