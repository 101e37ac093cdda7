/** KVCache bookkeeping: a rollback moves a cursor, dead rows stay masked until COMPACT_AT of them are compacted away. */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMPACT_AT, KVCache } from '../../src/models/cache.js';
import { attentionMask } from '../../src/models/positions.js';
import { useCpu } from '../helpers/models.js';

beforeAll(useCpu);

/** Appends T rows whose keys/values hold their buffer row numbers (one block, one head, hs = 1). */
function append(cache: KVCache, T: number): void {
  tf.tidy(() => {
    const past = cache.past(0);
    const rows = tf.tensor4d(Array.from({ length: T }, (_, t) => cache.rows + t), [1, 1, T, 1]);
    const keys = past ? tf.concat([past.keys, rows], 2) : rows;
    const values = past ? tf.concat([past.values, rows], 2) : rows;
    cache.commit([{ keys: keys as tf.Tensor4D, values: values as tf.Tensor4D }], T);
  });
}

describe('KVCache', () => {
  it('truncate marks rows dead without touching tensors; compaction gathers the live rows in order', () => {
    const cache = new KVCache();
    append(cache, 5); // rows 0…4 live
    append(cache, 4); // rows 5…8
    const held = cache.past(0)!.keys;
    cache.truncate(6); // rows 6, 7, 8 dead
    expect(cache.past(0)!.keys).toBe(held);
    expect([cache.length, cache.rows]).toEqual([6, 9]);
    expect(cache.visible()).toEqual([true, true, true, true, true, true, false, false, false]);
    const mask = attentionMask(2, cache.visible(), 1)!; // [2, 11]: dead columns and the causal corner masked
    expect(Array.from(mask.dataSync()).map((v) => (v < 0 ? 0 : 1))).toEqual([1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1]);
    mask.dispose();
    let appended = 9;
    while (cache.rows - cache.length < COMPACT_AT) {
      const kept = cache.length + 1;
      append(cache, 3);
      appended += 3;
      cache.truncate(kept); // keep 1 of 3
    }
    const before = tf.memory().numTensors;
    const live = cache.visible().flatMap((v, j) => (v ? [j] : []));
    tf.tidy(() => cache.compact());
    expect(tf.memory().numTensors).toBe(before);
    expect([cache.rows, cache.length]).toEqual([live.length, live.length]);
    expect(Array.from(cache.past(0)!.keys.dataSync())).toEqual(live);
    expect(appended).toBeGreaterThan(cache.rows);
    cache.truncate(0);
    expect(cache.past(0)).toBeNull();
    cache.clear();
  });

  it('does not compact below COMPACT_AT dead rows', () => {
    const cache = new KVCache();
    append(cache, 4);
    cache.truncate(2);
    cache.compact();
    expect([cache.rows, cache.length]).toEqual([4, 2]);
    cache.clear();
    expect(cache.rows).toBe(0);
  });
});
