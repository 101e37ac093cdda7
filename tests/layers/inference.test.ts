/**
 * The fused inference pass of MultiTokenHead (issue #10 §1): prepared, `headArgmax` equals the
 * argmax of the layer path's logits for every head kind (tied and untied, with and without bias,
 * mixed kinds), `logits` equals `computeLogits`, and prepare/release leave no tensor behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import type { MultiTokenHeadArgs, OffsetHeadKind } from '../../src/layers/index.js';
import { type InferenceHead, isInferenceHead } from '../../src/layers/inference_head.js';
import { useCpu } from '../helpers/backend.js';
import { randomizeWeights, tinyModel } from '../helpers/layers.js';
import { expectNoLeak } from '../helpers/leak.js';

/** The cpu backend, or wasm (different matMul and argMax kernels; NaN handling of argMax differs by backend). */
async function use(backend: 'cpu' | 'wasm'): Promise<void> {
  if (backend === 'cpu') return useCpu();
  await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend('wasm');
  await tf.ready();
  expect(tf.getBackend()).toBe('wasm');
}

const KINDS: [string, Partial<MultiTokenHeadArgs>][] = [
  ...(['identity', 'linear', 'residual', 'lowRank', 'mlp'] as OffsetHeadKind[]).map((kind): [string, Partial<MultiTokenHeadArgs>] => [kind, { headKind: kind, rank: 3, headHiddenSize: 12 }]),
  ['mixed kinds, linear offset 0', { numHeads: 5, offset0Kind: 'linear', headKind: ['mlp', 'mlp', 'lowRank', 'residual'], rank: 3, headHiddenSize: 12 }],
  ['relu activation', { numHeads: 4, headKind: 'mlp', headHiddenSize: 12, activation: 'relu' }],
];

/** A built head with random weights, and random rows `[m, D]`. */
function setup(args: Partial<MultiTokenHeadArgs>, tied: boolean, useBias: boolean, seed: number) {
  const { model, head } = tinyModel({ numHeads: 4, vocabSize: 29, hidden: 16, ...args, tied, useBias, seed });
  randomizeWeights(head, seed, 0.5);
  if (tied) randomizeWeights(model.getLayer('tok_emb'), seed + 50, 0.5);
  const rows = tf.randomNormal([7, 16], 0, 1, 'float32', seed + 99) as tf.Tensor2D; // [m, D]
  return { model, head, rows };
}

describe.each([
  ['cpu', 'tied', true],
  ['cpu', 'untied', false],
  ['wasm', 'tied', true],
  ['wasm', 'untied', false],
] as const)('prepared headArgmax == argmax(computeLogits) (%s, %s)', (backend, _name, tied) => {
  beforeAll(() => use(backend));
  for (const [title, args] of KINDS) {
    for (const useBias of [false, true]) {
      it(`${title}${useBias ? ', with bias' : ''}: every offset at random rows`, async () => {
        const { model, head, rows } = setup(args, tied, useBias, 3 + title.length);
        const k = head.numHeads;
        const all = Array.from({ length: k }, (_, j) => j);
        const want = tf.tidy(() => tf.argMax(head.computeLogits(rows, all), 2)); // [m, k] the layer path, unprepared
        const wantLogits = head.computeLogits(rows, [2, 0, 2]) as tf.Tensor3D;
        const unprepared = head.headArgmax(rows, k);
        expect(await unprepared.array()).toEqual(await want.array());
        await expectNoLeak(async () => {
          head.prepare();
          try {
            for (const n of [1, 2, k]) {
              const got = head.headArgmax(rows, n); // [m, n]
              expect(got.dtype).toBe('int32');
              expect(got.shape).toEqual([7, n]);
              expect(await got.array()).toEqual(((await want.array()) as number[][]).map((r) => r.slice(0, n)));
              got.dispose();
            }
            const logits = head.logits(rows, [2, 0, 2]); // offsets in any order, repeats allowed
            const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(logits, wantLogits))).dataSync()[0]!);
            expect(diff).toBeLessThan(1e-5);
            logits.dispose();
          } finally {
            head.release();
          }
        });
        tf.dispose([want, wantLogits, unprepared, rows]);
        model.dispose();
      });
    }
  }
});

describe.each(['cpu', 'wasm'] as const)('prepare / release (%s)', (backend) => {
  beforeAll(() => use(backend));
  it('MultiTokenHead is an InferenceHead', () => {
    const { model, head, rows } = setup({}, true, false, 1);
    const typed: InferenceHead = head; // checked by tsc: the class has every member of the interface
    expect(isInferenceHead(typed)).toBe(true);
    expect(isInferenceHead({ headArgmax: () => null })).toBe(false);
    rows.dispose();
    model.dispose();
  });

  it('is counted: tensors live until the last release, none after; an extra release is a no-op', async () => {
    const { model, head, rows } = setup({ headKind: 'mlp', headHiddenSize: 12 }, false, true, 2);
    const before = tf.memory().numTensors;
    head.prepare();
    head.prepare();
    tf.dispose(head.headArgmax(rows, 4)); // stacks the offsets' kernels
    const prepared = tf.memory().numTensors;
    expect(prepared).toBeGreaterThan(before);
    head.release();
    expect(tf.memory().numTensors).toBe(prepared);
    head.release();
    expect(tf.memory().numTensors).toBe(before);
    head.release();
    expect(tf.memory().numTensors).toBe(before);
    rows.dispose();
    model.dispose();
  });

  it('a second prepare while one is in effect remakes the tensors from the current weights', async () => {
    const { model, head, rows } = setup({ headKind: 'lowRank', rank: 3 }, true, false, 6);
    const before = tf.memory().numTensors;
    /** The ids as arrays, the tensor freed. */
    const read = async (t: tf.Tensor) => {
      const a = await t.array();
      t.dispose();
      return a;
    };
    head.prepare();
    const first = await read(head.headArgmax(rows, 3));
    const w = head.offsetHeads[2]!.weights[1]!; // offset 2's `up`
    const scaled = tf.mul(w.read(), -5);
    w.write(scaled);
    scaled.dispose();
    head.prepare(); // a second decode starts
    const second = await read(head.headArgmax(rows, 3));
    head.release();
    head.release();
    expect(tf.memory().numTensors).toBe(before);
    const want = await read(tf.tidy(() => tf.argMax(head.computeLogits(rows, [0, 1, 2]), 2))); // the layer path, unprepared
    expect(second).toEqual(want);
    expect(second).not.toEqual(first);
    rows.dispose();
    model.dispose();
  });

  it('a prepare sees the weights of its time: a weight written after release is used by the next prepare', async () => {
    const { model, head, rows } = setup({ headKind: 'linear' }, false, false, 4);
    head.prepare();
    const first = await head.headArgmax(rows, 2).array();
    head.release();
    const w = head.unembedding.weights[0]!;
    const negated = tf.neg(w.read());
    w.write(negated); // argmax becomes argmin
    negated.dispose();
    head.prepare();
    const second = await head.headArgmax(rows, 2).array();
    head.release();
    const want = await tf.tidy(() => tf.argMax(head.computeLogits(rows, [0, 1]), 2)).array();
    expect(second).toEqual(want);
    expect(second).not.toEqual(first);
    rows.dispose();
    model.dispose();
  });

  it('marks an offset whose logits hold NaN or ±Infinity with −1, prepared or not', async () => {
    for (const value of [NaN, Infinity, -Infinity]) {
      const { model, head, rows } = setup({ headKind: 'residual' }, false, false, 5);
      const kernel = head.offsetHeads[1]!.weights[0]!; // offset 1's kernel [D, D]
      const poisoned = tf.tidy(() => tf.where(tf.equal(tf.reshape(tf.range(0, 16 * 16), [16, 16]), 5), tf.fill([16, 16], value), kernel.read()));
      kernel.write(poisoned);
      poisoned.dispose();
      for (const prepare of [false, true]) {
        if (prepare) head.prepare();
        const ids = (await head.headArgmax(rows, 3).array()) as number[][];
        if (prepare) head.release();
        for (const row of ids) {
          expect(row[0]).toBeGreaterThanOrEqual(0);
          expect(row[1]).toBe(-1);
          expect(row[2]).toBeGreaterThanOrEqual(0);
        }
      }
      rows.dispose();
      model.dispose();
    }
  });

  it('headArgmax checks n', () => {
    const { model, head, rows } = setup({}, true, false, 1);
    expect(() => head.headArgmax(rows, 5)).toThrow('MultiTokenHead.headArgmax: n must be an integer in [1, 4], but got 5.');
    expect(() => head.headArgmax(rows, 0)).toThrow('MultiTokenHead.headArgmax: n must be an integer in [1, 4], but got 0.');
    rows.dispose();
    model.dispose();
  });
});
