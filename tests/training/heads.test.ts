/**
 * The self-distillation pieces of `npm run train:heads` (cpu, small): the corpus is seeded (same
 * seed, same text) and starts from varied openings; the cached rows respect sequence boundaries
 * and the held-out split; the teacher is the frozen model's argmax; the held-out metrics give
 * agreement 1 and τ = k for an oracle drafter and count a chain break correctly.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MultiTokenHead } from '../../src/layers/index.js';
import { loadLlama2c } from '../../src/models/llama2c.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { greedyDecode } from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/cached.js';
import { buildCorpus, type CorpusSequence, generateBatch, hiddenStates, sampleTopP, storyOpenings, vocabularyOpenings } from '../../tools/heads/corpus.js';
import { type DraftParams, evaluate, heldOutMask, prepareData } from '../../tools/heads/train.js';
import { textOpenings } from '../../tools/heads/base.js';
import { perPositionAcceptance, stepAcceptance, walkSteps } from '../../tools/heads/simulate.js';
import { useCpu } from '../helpers/backend.js';
import { readStories, storiesAvailable } from '../helpers/stories.js';

const available = storiesAvailable('training/heads.test.ts');

describe.skipIf(!available)('train:heads pieces on stories260K', () => {
  let model: LayersModel;
  let tokenizer: Llama2cTokenizer;
  beforeAll(async () => {
    await useCpu();
    ({ model, tokenizer } = (await loadLlama2c(readStories('checkpoint'), { tokenizer: readStories('tokenizer'), mtpHeads: 1 })) as { model: LayersModel; tokenizer: Llama2cTokenizer });
  });
  afterAll(() => model.dispose());

  it('vocabulary openings are BOS + one word piece with a leading space', () => {
    const openings = vocabularyOpenings(tokenizer);
    expect(openings.length).toBeGreaterThan(20);
    for (const [bos, id] of openings) {
      expect(bos).toBe(tokenizer.bosId);
      expect(tokenizer.decode([id!])).toMatch(/^ [A-Za-z]{3,}$/);
    }
  });

  it('the corpus is the same for the same seed, mixes greedy and sampled text, and greedy text is the model’s own greedy choice', async () => {
    const unembeddingT = tf.transpose((model.getLayer('mtp_head') as unknown as MultiTokenHead).unembedding.matrix()) as tf.Tensor2D; // [D, V]
    const openings = storyOpenings(tokenizer);
    const settings = { tokens: 80, greedyShare: 0.5, sequenceTokens: 16, temperature: 0.8, topP: 0.9, maxPrefix: 3, batch: 3, seed: 3 };
    const made = await buildCorpus(model, unembeddingT, openings, settings);
    const a = made.sequences;
    const b = (await buildCorpus(model, unembeddingT, openings, settings)).sequences;
    expect(a).toEqual(b);
    expect(a.reduce((n, q) => n + q.ids.length, 0)).toBeGreaterThanOrEqual(80);
    expect(a.every((q) => q.ids.length === 16)).toBe(true);
    expect(new Set(a.map((q) => q.mode))).toEqual(new Set(['greedy', 'sampled']));
    const c = (await buildCorpus(model, unembeddingT, openings, { ...settings, seed: 4 })).sequences;
    expect(c).not.toEqual(a);
    for (const q of a) expect(q.ids.slice(0, openings[q.opening!]!.length)).toEqual(openings[q.opening!]!.slice(0, 16));
    // the tail of a greedy sequence follows the frozen model's argmax
    const greedy = a.find((q) => q.mode === 'greedy')!;
    const head = model.getLayer('mtp_head') as unknown as MultiTokenHead;
    const hidden = hiddenStates(model, [greedy], 64);
    // the cached forward's states that came with the corpus equal a full forward's, up to float rounding
    const full = hiddenStates(model, a, 64);
    expect(made.hidden.length).toBe(full.length);
    let worst = 0;
    full.forEach((x, i) => (worst = Math.max(worst, Math.abs(x - made.hidden[i]!))));
    expect(worst).toBeLessThan(1e-4);
    const argmax = tf.tidy(() => tf.argMax(tf.matMul(tf.tensor2d(hidden, [greedy.ids.length, 64]), head.unembedding.matrix(), false, true), -1).arraySync() as number[]);
    const n = greedy.ids.length;
    expect(greedy.ids.slice(n - 4)).toEqual(argmax.slice(n - 5, n - 1));
    unembeddingT.dispose();
  });

  it('batched greedy generation equals greedyDecode on each sequence, whatever else shares the batch', async () => {
    const unembeddingT = tf.transpose((model.getLayer('mtp_head') as unknown as MultiTokenHead).unembedding.matrix()) as tf.Tensor2D; // [D, V]
    const texts = ['Once upon a time', 'Tom and his dog', 'A friendly dragon', 'It was a cold winter morning'];
    const plans = texts.map((t, i) => {
      const opening = tokenizer.encode(t);
      return { opening, greedyFrom: opening.length + (i % 2) * 3, seed: 10 + i }; // two sequences sample 3 tokens first
    });
    const before = tf.memory().numTensors;
    const batched = (await generateBatch(model, unembeddingT, plans, 48, 0.8, 0.9)).ids;
    expect(tf.memory().numTensors).toBe(before);
    const alone = (await generateBatch(model, unembeddingT, [plans[2]!], 48, 0.8, 0.9)).ids;
    expect(alone[0]).toEqual(batched[2]);
    const cached = new CachedTransformer(model);
    try {
      for (let i = 0; i < plans.length; i++) {
        const start = batched[i]!.slice(0, plans[i]!.greedyFrom);
        const greedy = await greedyDecode(cached, start, { maxNewTokens: 48 - start.length });
        expect(batched[i]).toEqual([...start, ...greedy.tokens]);
      }
    } finally {
      cached.dispose();
      unembeddingT.dispose();
    }
  });

  it('top-p sampling keeps the smallest nucleus reaching p and draws inside it', () => {
    const row = Float32Array.from([0, Math.log(6), Math.log(3), 0]); // probabilities 1, 6, 3, 1 (/11)
    expect(sampleTopP(row, 1, 0.5, 0.99)).toBe(1); // 6/11 ≥ 0.5: the nucleus is {1}
    expect(sampleTopP(row, 1, 0.8, 0)).toBe(1);
    expect(sampleTopP(row, 1, 0.8, 0.99)).toBe(2); // {1, 2}: 9/11 ≥ 0.8
    expect(sampleTopP(row, 1, 1, 0.999)).toBe(3); // everything, ties by index
    expect(sampleTopP(row, 0, 0.9, 0.5)).toBe(1); // temperature 0: the argmax
  });

  it('sequences that record their opening are held out by opening, never split across train and held out', () => {
    const sequences: CorpusSequence[] = [0, 1, 2, 3, 9, 19, 9, 4].map((opening) => ({ ids: [1, 2, 3], mode: 'greedy', opening }));
    expect(heldOutMask(sequences, 0.1)).toEqual([false, false, false, false, true, true, true, false]);
    expect(heldOutMask(sequences, 0)).toEqual(sequences.map(() => false));
    const unrecorded = sequences.map(({ ids, mode }) => ({ ids, mode }));
    expect(heldOutMask(unrecorded, 0.25)).toEqual([false, false, false, false, false, false, true, true]);
  });

    it('rows stay inside their sequence, the held-out split is by sequence, and an oracle drafter scores agreement 1 and τ = k', async () => {
    const k = 3;
    const sequences: CorpusSequence[] = [
      { ids: [1, 403, 407, 261, 378, 29, 300], mode: 'greedy' },
      { ids: [1, 300, 301, 302], mode: 'sampled' },
      { ids: [1, 350, 351, 352, 353], mode: 'greedy' },
      { ids: [1, 360, 361, 362, 363, 364], mode: 'greedy' },
    ];
    const head = model.getLayer('mtp_head') as unknown as MultiTokenHead;
    const unembeddingT = tf.transpose(head.unembedding.matrix()) as tf.Tensor2D;
    const data = prepareData(sequences, hiddenStates(model, sequences, 64), 64, unembeddingT, k, 0.5);
    // sequence starts 0, 7, 11, 16; lengths 7, 4, 5, 6
    expect(Array.from(data.trainRows)).toEqual([0, 1, 2, 3, 4, 7, 8]);
    expect(Array.from(data.heldRows)).toEqual([11, 12, 13, 16, 17, 18, 19]);
    const oracle: DraftParams = {
      variables: new Map(),
      logits: (d, rows) => Array.from({ length: k - 1 }, (_, i) => tf.matMul(tf.gather(d.hidden, tf.add(rows, tf.scalar(i + 1, 'int32'))) as tf.Tensor2D, unembeddingT) as tf.Tensor2D),
    };
    const perfect = await evaluate(oracle, data, unembeddingT, 100);
    expect(perfect.agreement).toEqual([1, 1]);
    expect(perfect.chain).toEqual([1, 1]);
    expect(perfect.tauEstimate).toBe(k);
    // the oracle's drafts all agree; walking the held-out greedy rows as the decoder steps (11…13: one step of 2;
    // 16…19: a step of 2, then the last row, where no token is left to accept): 3 steps, 2 of them whole
    expect(perfect.steps.acceptancePerOffset).toEqual([2 / 3, 2 / 3]);
    expect(perfect.steps.count).toBe(3);
    expect(perfect.softKl.every((x) => Math.abs(x) < 1e-4)).toBe(true);
    // offset 1 always wrong (it predicts the token at p instead of p + 1): the chain breaks at once
    const wrong: DraftParams = { variables: new Map(), logits: (d, rows) => [tf.matMul(tf.gather(d.hidden, rows) as tf.Tensor2D, unembeddingT) as tf.Tensor2D, ...oracle.logits(d, rows).slice(1)] };
    const broken = await evaluate(wrong, data, unembeddingT, 100);
    expect(broken.agreement[1]).toBe(1);
    expect(broken.chain).toEqual([broken.agreement[0], broken.agreement[0]]);
    tf.dispose([unembeddingT, data.hidden, data.tokens, data.teacher]);
  });
});

describe('acceptance along the decoder steps (tools/heads/simulate.ts)', () => {
  it('a step accepts the leading agreeing drafts and the next step starts after them', () => {
    // leading agreement per position: the walk visits 0 (accepts 3, makes 4), 4 (accepts 0), 5 (accepts 2), 8 (accepts 1)
    const leading = [3, 9, 9, 9, 0, 2, 9, 9, 1, 0];
    expect(walkSteps(leading, 10)).toEqual([3, 0, 2, 1]);
    expect(stepAcceptance([3, 0, 2, 1], 3)).toEqual({ acceptancePerOffset: [0.75, 0.5, 0.25], tau: 2.5, count: 4 });
    // the last step accepts no more than the tokens left
    expect(walkSteps([3, 3, 3], 3)).toEqual([2]);
    expect(walkSteps([], 2)).toEqual([0, 0]);
    // the per-position average counts every position, also those inside accepted runs
    expect(perPositionAcceptance([3, 0], 3)).toEqual({ acceptancePerOffset: [0.5, 0.5, 0.5], tau: 2.5, count: 2 });
  });
});

describe('byte-level openings (tools/heads/base.ts)', () => {
  it('are seeded windows of 16…longest bytes starting at line starts', () => {
    const text = new TextEncoder().encode(Array.from({ length: 40 }, (_, i) => `interface Line${i} { readonly value: number; }`).join('\n'));
    const a = textOpenings(text, 50, 30, 7);
    expect(textOpenings(text, 50, 30, 7)).toEqual(a);
    expect(textOpenings(text, 50, 30, 8)).not.toEqual(a);
    const decoded = a.map((o) => new TextDecoder().decode(Uint8Array.from(o)));
    for (const [i, o] of a.entries()) {
      expect(o.length).toBeGreaterThanOrEqual(16);
      expect(o.length).toBeLessThanOrEqual(30);
      expect(decoded[i]).toMatch(/^interface Line\d+/);
    }
  });
});

