/**
 * The draft vocabulary on the heads: validated (every rule fires, the message names the function,
 * the argument, the rule and the value), stored increasing, replaced with `setDraftVocab` between
 * decodes only (effective at the next prepare), restricting the inference members (offsets ≥ 1 of
 * `logits`, `headArgmax`, `headTopK`, `headTree`) but never offset 0 nor `call`/`predict`, saved
 * and loaded with the layer, the same on wasm as on cpu, and no tensor left behind.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, it } from 'vitest';
import { MASKED_LOGIT } from '../../src/internal/draft_vocab.js';
import { multiTokenHead, type MultiTokenHead } from '../../src/layers/index.js';
import type { InferenceHead } from '../../src/layers/inference_head.js';
import { sequentialMtpHead, type SequentialMtpHead } from '../../src/layers/sequential_mtp.js';
import { withSequentialHeads } from '../../src/models/draft_heads.js';
import { createTransformer } from '../../src/models/index.js';
import { useCpu } from '../helpers/backend.js';
import { loadFromMemory, randomizeWeights, saveToMemory, tinyModel } from '../helpers/layers.js';
import { expectNoLeak, expectThrowNoLeak } from '../helpers/leak.js';

const V = 29;
const D = 16;
const K = 4;
const SUBSET = [20, 3, 0, 11, 14];
const SORTED = [0, 3, 11, 14, 20];

type Head = (MultiTokenHead | SequentialMtpHead) & InferenceHead;

function parallel(draftVocab?: readonly number[]): { model: LayersModel; head: Head } {
  const { model, head } = tinyModel({ numHeads: K, vocabSize: V, hidden: D, headKind: 'mlp', headHiddenSize: 12, useBias: true, seed: 4, ...(draftVocab ? { draftVocab } : {}) });
  randomizeWeights(head, 4, 0.5);
  return { model, head: head as Head };
}

function sequential(draftVocab?: readonly number[]): { model: LayersModel; head: Head } {
  const base = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, maxLength: 16, mtpHeads: 1, seed: 2 });
  const model = withSequentialHeads(base, K, 8, draftVocab);
  const head = model.getLayer('mtp_head') as unknown as SequentialMtpHead;
  randomizeWeights({ weights: head.weights }, 6, 0.4);
  randomizeWeights({ weights: [model.getLayer('transformer').weights[0]!] }, 9, 0.5);
  return { model, head: head as Head };
}

const KINDS = [
  ['MultiTokenHead', parallel],
  ['SequentialMtpHead', sequential],
] as const;

/** Reads a tensor back and disposes it. */
function read<T>(t: tf.Tensor): T {
  const v = t.arraySync() as T;
  t.dispose();
  return v;
}

describe('draft vocabulary validation', () => {
  beforeAll(useCpu);
  const sparse = [1, 2, 3];
  delete (sparse as number[])[1];
  const long = Array.from({ length: V + 1 }, (_, i) => i);
  const bad: Array<[string, unknown, string]> = [
    ['not an array', 'abc', 'draftVocab must be an array of token ids, but got "abc".'],
    ['empty', [], 'draftVocab.length must be in [1, 29] (at most the vocabulary), but got 0.'],
    ['too long', long, 'draftVocab.length must be in [1, 29] (at most the vocabulary), but got 30.'],
    ['a hole in a sparse array', sparse, 'draftVocab must not have holes, but draftVocab[1] is empty.'],
    ['a non-integer', [1, 2.5], 'draftVocab[1] must be a token id, an integer in [0, 29), but got 2.5.'],
    ['a string id', [1, '2'], 'draftVocab[1] must be a token id, an integer in [0, 29), but got "2".'],
    ['out of range', [4, 29], 'draftVocab[1] must be a token id, an integer in [0, 29), but got 29.'],
    ['negative', [-1], 'draftVocab[0] must be a token id, an integer in [0, 29), but got -1.'],
    ['a repeated id', [3, 1, 3], 'draftVocab must not repeat a token id, but draftVocab[2] repeats 3.'],
  ];

  it.each(bad)('MultiTokenHead and SequentialMtpHead refuse %s, naming the argument and the value', (_, value, message) => {
    expect(() => multiTokenHead({ numHeads: K, vocabSize: V, draftVocab: value as number[] })).toThrow(`MultiTokenHead: ${message}`);
    expect(() => sequentialMtpHead({ numHeads: K, vocabSize: V, headHiddenSize: 8, tiedTo: 'emb', draftVocab: value as number[] })).toThrow(`SequentialMtpHead: ${message}`);
  });

  it.each(bad)('setDraftVocab refuses %s (ids), and so do createTransformer and withSequentialHeads, with no leak', async (_, value, message) => {
    for (const [name, make] of KINDS) {
      const { model, head } = make();
      await expectThrowNoLeak(() => head.setDraftVocab(value as number[]), `${name}.setDraftVocab: ${message.replaceAll('draftVocab', 'ids')}`);
      expect(head.draftVocab).toBeNull();
      model.dispose();
    }
    await expectThrowNoLeak(() => createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, draftVocab: value as number[] }), `createTransformer: ${message.replaceAll('draftVocab', 'config.draftVocab')}`);
    const base = createTransformer({ vocabSize: V, hiddenSize: D, numLayers: 1, numAttentionHeads: 2, mtpHeads: 1 });
    await expectThrowNoLeak(() => withSequentialHeads(base, K, 8, value as number[]), `withSequentialHeads: ${message}`);
    base.dispose();
  });

  it('accepts any order and typed arrays, stores the ids increasing and frozen', () => {
    for (const [, make] of KINDS) {
      const { model, head } = make(SUBSET);
      const typed: InferenceHead = head as MultiTokenHead | SequentialMtpHead; // checked by tsc: both classes have every member of the interface
      expect(typed.draftVocab).toEqual(SORTED);
      expect(Object.isFrozen(head.draftVocab)).toBe(true);
      head.setDraftVocab(Int32Array.from([5, 1]) as unknown as number[]);
      expect(head.draftVocab).toEqual([1, 5]);
      head.setDraftVocab(null);
      expect(head.draftVocab).toBeNull();
      model.dispose();
    }
  });

  it('setDraftVocab refuses while the head is prepared, naming the method; takes effect after the last release', async () => {
    for (const [name, make] of KINDS) {
      const { model, head } = make();
      const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
      const roots = tf.tensor1d([1, 2, 3], 'int32');
      head.prepare();
      head.prepare();
      const message = `${name}.setDraftVocab: the draft vocabulary must not change while the head is prepared for a decode, but it is prepared; call it before prepare or after the last release.`;
      await expectThrowNoLeak(() => head.setDraftVocab(SUBSET), message);
      head.release();
      await expectThrowNoLeak(() => head.setDraftVocab(null), message);
      head.release();
      head.setDraftVocab(SUBSET);
      head.prepare();
      const ids = read<number[][]>(head.draftArgmax(x, roots, K - 1));
      head.release();
      for (const row of ids) for (const t of row) expect(SORTED).toContain(t);
      tf.dispose([x, roots]);
      model.dispose();
    }
  });

  it('the tip passes check n, k, roots and choose, naming the method, with no leak', async () => {
    for (const [name, make] of KINDS) {
      const { model, head } = make(SUBSET);
      const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
      const roots = tf.tensor1d([1, 2, 3], 'int32');
      const floats = tf.tensor1d([1, 2, 3]);
      const short = tf.tensor1d([1, 2], 'int32');
      await expectThrowNoLeak(() => head.draftArgmax(x, roots, K), `${name}.draftArgmax: n must be a positive integer at most ${K - 1}, but got ${K}.`);
      await expectThrowNoLeak(() => head.draftLogits(x, roots, 0), `${name}.draftLogits: n must be a positive integer at most ${K - 1}, but got 0.`);
      await expectThrowNoLeak(() => head.draftTopK(x, roots, 2, 6), `${name}.draftTopK: k must be an integer in [1, 5] (at most the draft vocabulary's size), but got 6.`);
      await expectThrowNoLeak(() => head.draftTopK(x, roots, 2, 1.5), `${name}.draftTopK: k must be an integer in [1, 5] (at most the draft vocabulary's size), but got 1.5.`);
      await expectThrowNoLeak(() => head.draftArgmax(x, floats as tf.Tensor1D, 2), `${name}.draftArgmax: roots must be an int32 tensor [3] (one token per row of states), but got "float32 [3]".`);
      await expectThrowNoLeak(() => head.draftTopK(x, short as tf.Tensor1D, 2, 2), `${name}.draftTopK: roots must be an int32 tensor [3] (one token per row of states), but got "int32 [2]".`);
      await expectThrowNoLeak(() => head.draftLogits(x, roots, 2, 'argmax' as never), `${name}.draftLogits: choose must be a function or undefined, but got "argmax".`);
      tf.dispose([x, roots, floats, short]);
      model.dispose();
    }
  });

  it('headTopK and headTree rank draft offsets within the draft vocabulary: k above its size is refused', async () => {
    const { model, head } = parallel(SUBSET);
    const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
    await expectThrowNoLeak(() => head.headTopK!(x, 2, 6), "MultiTokenHead.headTopK: k must be an integer in [1, 5] (at most the draft vocabulary's size), but got 6.");
    await expectNoLeak(() => head.headTopK!(x, 1, 6)); // offset 0 alone ranks the whole vocabulary
    model.dispose();
    const s = sequential(SUBSET);
    const roots = tf.tensor1d([1, 2, 3], 'int32');
    await expectThrowNoLeak(() => s.head.headTree!(x, roots, 2, 6), 'SequentialMtpHead.headTree: k must be a positive integer at most 5, but got 6.');
    tf.dispose([x, roots]);
    s.model.dispose();
  });

  it('a choose that returns something other than int32 [m] ids is refused, with no leak', async () => {
    const { model, head } = sequential(SUBSET);
    const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
    const roots = tf.tensor1d([1, 2, 3], 'int32');
    await expectThrowNoLeak(() => head.draftLogits(x, roots, 2, (_, logits) => tf.cast(tf.argMax(logits, 1), 'float32') as tf.Tensor1D), 'SequentialMtpHead.draftLogits: choose must return an int32 tensor [3] of token ids, but got "float32 [3]".');
    tf.dispose([x, roots]);
    model.dispose();
  });
});

describe('what a draft vocabulary restricts', () => {
  beforeAll(useCpu);

  for (const [name, make] of KINDS) {
    it(`${name}: logits, headArgmax and headTopK restrict offsets ≥ 1 only; call (predict) never`, async () => {
      const { model, head } = make(SUBSET);
      const ids = tf.tensor2d([[1, 5, 9, 2, 7, 3]], [1, 6], 'int32');
      const states = tf.randomNormal([6, D], 0, 1, 'float32', 3) as tf.Tensor2D;
      for (const prepared of [false, true]) {
        await expectNoLeak(() => {
          if (prepared) head.prepare();
          const logits = read<number[][][]>(head.logits(states, [2, 0, 1])); // [m, 3, V], any order
          const top = head.headTopK ? head.headTopK(states, K, 3) : null;
          const topIds = top ? read<number[][][]>(top.ids) : null;
          top?.logProbs.dispose();
          const argmax = read<number[][]>(head.headArgmax(states, K));
          if ('computeLogits' in head) expect((read<number[][][]>(head.computeLogits(states, [1, 2])) as number[][][]).flat(2).includes(MASKED_LOGIT)).toBe(false); // the layer path: whole vocabulary
          for (let r = 0; r < states.shape[0]; r++) {
            expect(logits[r]![1]!.includes(MASKED_LOGIT)).toBe(false); // offset 0: the whole vocabulary
            for (const c of [0, 2]) for (let t = 0; t < V; t++) expect(logits[r]![c]![t] === MASKED_LOGIT).toBe(!SORTED.includes(t));
            for (let j = 1; j < K; j++) expect(SORTED).toContain(argmax[r]![j]);
            if (topIds) for (let j = 1; j < K; j++) for (const t of topIds[r]![j]!) expect(SORTED).toContain(t);
          }
          if (prepared) head.release();
        });
      }
      // predict: every offset over the whole vocabulary, the same as without a draft vocabulary
      const restricted = model.predict(ids) as tf.Tensor;
      head.setDraftVocab(null);
      const whole = model.predict(ids) as tf.Tensor;
      expect(await restricted.data()).toEqual(await whole.data());
      expect((await restricted.data()).includes(MASKED_LOGIT)).toBe(false);
      tf.dispose([ids, states, restricted, whole]);
      model.dispose();
    });
  }

  it('SequentialMtpHead.headTree grows candidates inside the draft vocabulary, scores renormalised over it', async () => {
    const { model, head } = sequential(SUBSET);
    const x = tf.randomNormal([2, D], 0, 1, 'float32', 1) as tf.Tensor2D;
    const roots = tf.tensor1d([4, 9], 'int32');
    const tree = head.headTree!(x, roots, 2, 2);
    const ids = read<number[][]>(tree.ids);
    const scores = read<number[][]>(tree.scores);
    tree.parents.dispose();
    for (const row of ids) for (const t of row) expect(SORTED).toContain(t);
    // level 1: module 1's log-softmax over the subset, rank 0 = draftTopK's
    const top = head.draftTopK(x, roots, 1, 2);
    expect(read<number[][][]>(top.ids).map((r) => r[0])).toEqual(ids.map((r) => r.slice(0, 2)));
    const lp = read<number[][][]>(top.logProbs);
    scores.forEach((r, i) => r.slice(0, 2).forEach((v, c) => expect(v).toBeCloseTo(lp[i]![0]![c]!, 5)));
    tf.dispose([x, roots]);
    model.dispose();
  });
});

describe('serialization', () => {
  beforeAll(useCpu);

  it('getConfig carries the draft vocabulary; a save/load round trip keeps it and the drafts', async () => {
    const { model, head } = parallel(SUBSET);
    expect(head.getConfig()['draftVocab']).toEqual(SORTED);
    const loaded = await loadFromMemory(await saveToMemory(model));
    const back = loaded.getLayer('mtp_head') as unknown as Head;
    expect(back.draftVocab).toEqual(SORTED);
    const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
    const roots = tf.tensor1d([1, 2, 3], 'int32');
    expect(read(back.draftArgmax(x, roots, K - 1))).toEqual(read(head.draftArgmax(x, roots, K - 1)));
    const none = parallel();
    expect('draftVocab' in none.head.getConfig()).toBe(false);
    tf.dispose([x, roots]);
    loaded.dispose();
    none.model.dispose();
    model.dispose();
  });

  it('a transformer with sequential modules and a draft vocabulary round-trips', async () => {
    const { model, head } = sequential(SUBSET);
    expect(head.getConfig()['draftVocab']).toEqual(SORTED);
    const loaded = await loadFromMemory(await saveToMemory(model));
    expect((loaded.getLayer('mtp_head') as unknown as Head).draftVocab).toEqual(SORTED);
    loaded.dispose();
    model.dispose();
  });
});

describe('wasm (XNNPACK matMul, its own gather and argMax)', () => {
  it('the tip passes give the same tokens and (to float tolerance) logits as on cpu', async () => {
    const results: Record<string, unknown[]> = {};
    for (const backend of ['cpu', 'wasm'] as const) {
      if (backend === 'cpu') await useCpu();
      else {
        await import('@tensorflow/tfjs-backend-wasm');
        await tf.setBackend('wasm');
        await tf.ready();
        expect(tf.getBackend()).toBe('wasm');
      }
      results[backend] = [];
      for (const [, make] of KINDS) {
        const { model, head } = make(SUBSET);
        const x = tf.randomNormal([3, D], 0, 1, 'float32', 1) as tf.Tensor2D;
        const roots = tf.tensor1d([1, 2, 3], 'int32');
        for (const prepared of [false, true]) {
          await expectNoLeak(() => {
            if (prepared) head.prepare();
            const top = head.draftTopK(x, roots, K - 1, 3);
            results[backend]!.push(read(head.draftArgmax(x, roots, K - 1)), read(top.ids), read(head.draftLogits(x, roots, K - 1)));
            top.logProbs.dispose();
            if (prepared) head.release();
          });
        }
        tf.dispose([x, roots]);
        model.dispose();
      }
    }
    const [cpu, wasm] = [results['cpu']!, results['wasm']!];
    cpu.forEach((c, i) => {
      if (i % 3 !== 2) expect(wasm[i]).toEqual(c);
      else {
        const a = (c as number[][][]).flat(2);
        const b = (wasm[i] as number[][][]).flat(2);
        a.forEach((v, j) => (v === MASKED_LOGIT ? expect(b[j]).toBe(MASKED_LOGIT) : expect(Math.abs(b[j]! - v)).toBeLessThan(1e-4)));
      }
    });
    await useCpu();
  });
});
