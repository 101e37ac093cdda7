/**
 * The internal topk2d (src/internal/topk.ts): its device path (k argMax passes, forced with
 * `onDevice`) equals tf.topk exactly — values and indices, random and tied rows, k = 1…8 — on the
 * cpu and wasm backends, whose tf.topk and tf.argMax both break ties by lower index; it leaves no
 * tensor behind; the hand-off test is false off WebGL; a bad k is refused.
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topk2d, topkHandsOffToCpu } from '../../src/internal/topk.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

/** Both paths on `rows`, read back, with no tensor left behind. */
async function both(rows: number[][], k: number) {
  const x = tf.tensor2d(rows); // [n, V]
  try {
    return await expectNoLeak(async () => {
      const device = topk2d(x, k, true);
      const plain = tf.topk(x, k);
      const out = {
        device: { values: await device.values.array(), indices: await device.indices.array(), dtype: device.indices.dtype, shape: device.indices.shape },
        plain: { values: await plain.values.array(), indices: await plain.indices.array(), dtype: plain.indices.dtype, shape: plain.indices.shape },
      };
      tf.dispose([device.values, device.indices, plain.values, plain.indices]);
      return out;
    });
  } finally {
    x.dispose();
  }
}

describe.each(['cpu', 'wasm'])('topk2d on %s', (backend) => {
  it('selects the backend', async () => {
    await tf.setBackend(backend);
    await tf.ready();
    expect(tf.getBackend()).toBe(backend);
    expect(topkHandsOffToCpu(50, 4)).toBe(false); // only webgl hands TopK to the CPU
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('device path equals tf.topk on random rows, k = %i', async (k) => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 8, max: 40 }), fc.integer({ min: 0, max: 2 ** 31 - 1 }), async (n, V, seed) => {
        const rows = (await tf.tidy(() => tf.randomNormal([n, V], 0, 3, 'float32', seed)).array()) as number[][];
        const { device, plain } = await both(rows, k);
        expect(device.shape).toEqual([n, k]);
        expect(device.dtype).toBe('int32');
        expect(device.indices).toEqual(plain.indices);
        expect(device.values).toEqual(plain.values);
      }),
      { numRuns: 8 },
    );
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('device path equals tf.topk on tied rows (lower index first), k = %i', async (k) => {
    await fc.assert(
      // few distinct values, so most ranks are ties; a constant row included
      fc.asyncProperty(fc.array(fc.array(fc.integer({ min: -2, max: 2 }), { minLength: 9, maxLength: 9 }), { minLength: 1, maxLength: 4 }), async (ints) => {
        const rows = [...ints.map((r) => r.map((v) => v / 2)), Array<number>(9).fill(0.5)];
        const { device, plain } = await both(rows, k);
        expect(device.indices).toEqual(plain.indices);
        expect(device.values).toEqual(plain.values);
        const argMax = tf.argMax(tf.tensor2d(rows), 1);
        const best = await argMax.array();
        tf.dispose(argMax);
        expect(device.indices.map((r) => r[0])).toEqual(best); // rank 0 is argMax's id
      }),
      { numRuns: 10 },
    );
  });

  it('a row holding ±Infinity or NaN still yields k ids in range', async () => {
    const rows = [
      [-Infinity, 1, -Infinity, 0, 2],
      [NaN, 1, 2, NaN, 0],
      [Infinity, 3, Infinity, 1, 0],
    ];
    const { device } = await both(rows, 4);
    for (const r of device.indices) for (const i of r) expect(i >= 0 && i < 5).toBe(true);
    expect(device.indices[0]!.slice(0, 2)).toEqual([4, 1]); // the finite part still ranks first
  });

  it('refuses k outside [1, V]', async () => {
    const x = tf.zeros([2, 5]) as tf.Tensor2D;
    await expectThrowNoLeak(() => topk2d(x, 6, true), 'topk2d: k must be a positive integer at most 5, but got 6.');
    await expectThrowNoLeak(() => topk2d(x, 0), 'topk2d: k must be a positive integer at most 5, but got 0.');
    x.dispose();
  });
});
