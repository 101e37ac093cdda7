/** The KV-cached transformer computes what the layers graph computes, and rolls back exactly. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { CachedTransformer } from '../../src/models/index.js';
import { COMPACT_AT } from '../../src/models/cache.js';
import { cachedLogits, expectClose, tinyTransformer, uncachedLogits, useCpu } from '../helpers/models.js';

beforeAll(useCpu);

const IDS = [3, 17, 4, 4, 29, 0, 12, 8, 31, 5, 5, 9, 22, 1];

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

  it('rollback moves a cursor: no tensor is created or freed, rejected rows stay until compacted', () => {
    const model = tinyTransformer();
    const cached = new CachedTransformer(model);
    tf.dispose([cached.forward(IDS.slice(0, 5)), cached.forward([7, 7, 2, 30])]);
    const before = tf.memory().numTensors;
    const engine = tf.engine() as unknown as { state: { numTensors: number; numDataBuffers: number } };
    const buffers = engine.state.numDataBuffers;
    cached.truncate(6);
    expect(tf.memory().numTensors).toBe(before);
    expect(engine.state.numDataBuffers).toBe(buffers); // nothing sliced, nothing freed
    expect(cached.length).toBe(6);
    cached.dispose();
    model.dispose();
  });

  it(`many rollbacks (past ${COMPACT_AT} dead rows, so compaction runs) equal a cache rebuilt from the accepted tokens`, () => {
    const model = tinyTransformer({ maxLength: 200, numAttentionHeads: 4, numKeyValueHeads: 2, positions: 'rotary', norm: 'rmsNorm', mlp: 'swiglu', useBias: false });
    const rolled = new CachedTransformer(model);
    const accepted: number[] = [1, 2, 3];
    tf.dispose(rolled.forward(accepted));
    for (let step = 0; step < 12; step++) {
      const drafts = [(step * 5) % 32, (step * 11 + 3) % 32, (step * 7 + 1) % 32, step % 32];
      tf.dispose(rolled.forward(drafts));
      const keep = step % 4; // 0…3 of 4 kept, 1…4 rejected per step
      rolled.truncate(accepted.length + keep);
      accepted.push(...drafts.slice(0, keep));
    }
    expect(rolled.length).toBe(accepted.length);
    const next = [19, 6, 11, 4];
    const got = cachedLogits(rolled, next, 2);
    const fresh = new CachedTransformer(model);
    tf.dispose(fresh.forward(accepted));
    const want = cachedLogits(fresh, next, 1);
    expectClose(got, want, 1e-5);
    const whole = uncachedLogits(model, [...accepted, ...next]);
    const tail = tf.slice(whole, [accepted.length, 0, 0], [next.length, -1, -1]);
    expectClose(got, tail, 1e-4);
    tf.dispose([got, want, whole, tail]);
    rolled.dispose();
    fresh.dispose();
    model.dispose();
  });

  it('accepts typed arrays of token ids like the decoders do', () => {
    const model = tinyTransformer();
    const [a, b] = [new CachedTransformer(model), new CachedTransformer(model)];
    const [x, y] = [a.forward([3, 17, 4]), b.forward(Int32Array.from([3, 17, 4]))];
    expectClose(x, y, 1e-9);
    tf.dispose([x, y]);
    a.dispose();
    b.dispose();
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
