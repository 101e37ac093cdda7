/**
 * The corpus and data of `trainDraftHeads` (stories260K, cpu): batched greedy generation equals
 * `greedyDecode` on each sequence whatever shares the batch, and its hidden states equal a full
 * forward's; the corpus is seeded and mixes greedy and sampled text from the model's start token;
 * top-p keeps the smallest nucleus; rows stay inside their sequence and the held-out split keeps
 * openings apart.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { LayersModel } from '@tensorflow/tfjs-layers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode } from '../../src/decoding/index.js';
import { findDraftHead } from '../../src/layers/draft_head.js';
import { CachedTransformer, loadLlama2c } from '../../src/models/index.js';
import type { Llama2cTokenizer } from '../../src/models/llama2c_tokenizer.js';
import { TransformerTrunk } from '../../src/models/trunk.js';
import { buildCorpus, type CorpusSequence, type FrozenModel, generateBatch, hiddenStates, PREFIX, sampleTopP } from '../../src/models/train_heads/corpus.js';
import { disposeData, heldOutMask, prepareData } from '../../src/models/train_heads/data.js';
import { now } from '../../src/decoding/event_loop.js';
import { useCpu } from '../helpers/backend.js';
import { readStories, storiesAvailable } from '../helpers/stories.js';

describe('corpus pieces without a model', () => {
  it('top-p sampling keeps the smallest nucleus reaching p and draws inside it', () => {
    const row = Float32Array.from([0, Math.log(6), Math.log(3), 0]); // probabilities 1, 6, 3, 1 (/11)
    expect(sampleTopP(row, 1, 0.5, 0.99)).toBe(1); // 6/11 ≥ 0.5: the nucleus is {1}
    expect(sampleTopP(row, 1, 0.8, 0)).toBe(1);
    expect(sampleTopP(row, 1, 0.8, 0.99)).toBe(2); // {1, 2}: 9/11 ≥ 0.8
    expect(sampleTopP(row, 1, 1, 0.999)).toBe(3); // everything, ties by index
    expect(sampleTopP(row, 0, 0.9, 0.5)).toBe(1); // temperature 0: the argmax
  });

  it('top-p sampling draws what a walk over every token sorted by probability (ties by id) draws, ties and −∞ included', () => {
    const reference = (row: Float32Array, temperature: number, topP: number, u: number): number => {
      const max = Math.max(...row);
      const p = Array.from(row, (x) => Math.exp((x - max) / temperature));
      const order = p.map((_, i) => i).sort((a, b) => p[b]! - p[a]! || a - b);
      const total = p.reduce((a, b) => a + b, 0);
      let kept = 0;
      let n = 0;
      while (n < order.length && (n === 0 || kept < topP * total)) kept += p[order[n++]!]!;
      let r = u * kept;
      for (let i = 0; i < n; i++) if ((r -= p[order[i]!]!) < 0) return order[i]!;
      return order[n - 1]!;
    };
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (const V of [2, 17, 600]) {
      for (let trial = 0; trial < 40; trial++) {
        const row = Float32Array.from({ length: V }, () => (trial % 2 === 0 ? Math.round(random() * 3) : (random() - 0.5) * 12)); // even trials: many ties
        if (trial % 5 === 0) row[V - 1] = -Infinity;
        for (const [temperature, topP] of [[1, 1], [0.8, 0.9], [1.5, 0.3]] as const) {
          for (const u of [0, random(), 0.999999]) expect(sampleTopP(row, temperature, topP, u), `V ${V}, trial ${trial}, T ${temperature}, p ${topP}, u ${u}`).toBe(reference(row, temperature, topP, u));
        }
      }
    }
  });

  it('sequences that record their opening are held out by opening, others every round(1/share)-th', () => {
    const sequences: CorpusSequence[] = [0, 1, 2, 3, 9, 19, 9, 4].map((opening) => ({ ids: [1, 2, 3], opening }));
    expect(heldOutMask(sequences, 0.1)).toEqual([false, false, false, false, true, true, true, false]);
    expect(heldOutMask(sequences, 0)).toEqual(sequences.map(() => false));
    // a corpus smaller than one period still holds something out: the last sequence (its opening)
    expect(heldOutMask(sequences.slice(0, 3).map((q) => ({ ids: q.ids })), 0.1)).toEqual([false, false, true]);
    expect(heldOutMask(sequences.slice(0, 4), 0.1)).toEqual(sequences.slice(0, 4).map((q) => q.opening === sequences[3]!.opening));
    expect(heldOutMask([sequences[0]!], 0.1)).toEqual([false]);
    const unrecorded = sequences.map(({ ids }) => ({ ids }));
    expect(heldOutMask(unrecorded, 0.25)).toEqual([false, false, false, true, false, false, false, true]);
  });
});

describe.skipIf(!storiesAvailable('training/train_heads_corpus.test.ts'))('the corpus of stories260K (cpu)', () => {
  let model: LayersModel;
  let tokenizer: Llama2cTokenizer;
  let frozen: FrozenModel;
  beforeAll(async () => {
    await useCpu();
    ({ model, tokenizer } = (await loadLlama2c(readStories('checkpoint'), { tokenizer: readStories('tokenizer'), mtpHeads: 2, headKind: 'mlp', headHiddenSize: 8 })) as { model: LayersModel; tokenizer: Llama2cTokenizer });
    frozen = { trunk: model.layers.find((l) => l instanceof TransformerTrunk) as TransformerTrunk, head: findDraftHead('test', model), hiddenSize: 64, vocabSize: 512 };
  });
  afterAll(() => model.dispose());

  it('batched greedy generation equals greedyDecode on each sequence, whatever else shares the batch; its states equal a full forward', async () => {
    const texts = ['Once upon a time', 'Tom and his dog', 'A friendly dragon', 'It was a cold winter morning'];
    const plans = texts.map((t, i) => {
      const opening = tokenizer.encode(t);
      return { opening, greedyFrom: opening.length + (i % 2) * 3, seed: 10 + i }; // two sequences sample 3 tokens first
    });
    const before = tf.memory().numTensors;
    const batched = await generateBatch(frozen, plans, 40, { last: 0 });
    expect(tf.memory().numTensors).toBe(before);
    expect((await generateBatch(frozen, [plans[2]!], 40, { last: 0 })).ids[0]).toEqual(batched.ids[2]);
    const cached = new CachedTransformer(model);
    try {
      for (let i = 0; i < plans.length; i++) {
        const start = batched.ids[i]!.slice(0, plans[i]!.greedyFrom);
        const greedy = await greedyDecode(cached, start, { maxNewTokens: 40 - start.length, stopTokens: [] });
        expect(batched.ids[i]).toEqual([...start, ...greedy.tokens]);
      }
    } finally {
      cached.dispose();
    }
    const full = await hiddenStates(frozen, batched.ids.map((ids) => ({ ids })), { last: 0 }, undefined, () => {});
    let worst = 0;
    batched.hidden.forEach((h, i) => h.forEach((x, n) => (worst = Math.max(worst, Math.abs(x - full[i * 40 * 64 + n]!)))));
    expect(worst).toBeLessThan(1e-4);
  });

  it('is seeded, starts from the model’s start token, mixes greedy and sampled text, and stops early at its deadline', async () => {
    const settings = { tokens: 160, sequenceTokens: 64, greedyShare: 0.5, openings: null, startToken: 1, stopTokens: [] as number[], seed: 3, deadline: Infinity };
    const make = (s: typeof settings) => buildCorpus(frozen, s, { last: 0 }, undefined, () => {});
    const a = (await make(settings)).sequences;
    expect((await make(settings)).sequences).toEqual(a);
    expect((await make({ ...settings, seed: 4 })).sequences).not.toEqual(a);
    expect(a).toHaveLength(3); // whole sequences: ⌈160 / 64⌉
    expect(a.every((q) => q.ids.length === 64 && q.ids[0] === 1)).toBe(true);
    const greedy = a.filter((q) => q.greedyFrom !== undefined);
    expect(greedy.length).toBeGreaterThan(0);
    for (const q of greedy) expect(q.greedyFrom).toBeGreaterThanOrEqual(1 + PREFIX.min);
    expect(new Set(a.map((q) => q.ids.join())).size).toBe(3); // the sampled prefixes set them apart
    const late = await make({ ...settings, tokens: 8 * 300, sequenceTokens: 8, deadline: 0 }); // past its deadline: one batch only (of 128 short sequences), not three
    expect(late.sequences).toHaveLength(128);
    // the model's stop tokens end a sequence: what follows is another text
    const ended = (await make({ ...settings, stopTokens: [1, 2], tokens: 64 * 12, seed: 5 })).sequences;
    for (const q of ended) {
      const stop = q.ids.findIndex((t, n) => n > 0 && (t === 1 || t === 2));
      expect(stop === -1 ? q.ids.length : stop + 1).toBe(q.ids.length);
    }
  });

  it('a batch in progress ends at the deadline once long enough to train on, and sees an abort within a token step', async () => {
    const settings = { tokens: 32 * 200, sequenceTokens: 200, greedyShare: 1, openings: null, startToken: 1, stopTokens: [] as number[], seed: 3 };
    const steps: number[] = [];
    const t0 = now();
    const cut = await buildCorpus(frozen, { ...settings, deadline: now() + 300 }, { last: 0 }, undefined, (n) => steps.push(n));
    const length = cut.sequences[0]!.ids.length;
    expect(cut.sequences).toHaveLength(32); // one batch (of the 32 sequences the tokens ask for), cut short
    expect(length).toBeGreaterThanOrEqual(16);
    expect(length).toBeLessThan(200);
    expect(cut.sequences.every((q) => q.ids.length === length)).toBe(true);
    expect(cut.hidden.length).toBe(32 * length * 64); // every kept position has its state
    expect(steps.length).toBeGreaterThanOrEqual(length); // progress after every token step
    const full = now() - t0;
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('stop now')), 100);
    const started = now();
    await expect(buildCorpus(frozen, { ...settings, deadline: Infinity }, { last: 0 }, controller.signal, () => {})).rejects.toThrow('stop now');
    expect(now() - started).toBeLessThan(100 + Math.max(200, full)); // not the whole 200-token batch
  });

  it('rows stay inside their sequence; held-out sequences walk from their greedy part', async () => {
    const sequences: CorpusSequence[] = [{ ids: [1, 403, 407, 261, 378, 29, 300] }, { ids: [1, 300, 301, 302] }, { ids: [1, 350, 351, 352, 353], greedyFrom: 3 }, { ids: [1, 360, 361, 362, 363, 364] }];
    const hidden = await hiddenStates(frozen, sequences, { last: 0 }, undefined, () => {});
    const data = await prepareData(frozen.head, sequences, hidden, 3, 0.5, null);
    try {
      // sequence starts 0, 7, 11, 16; lengths 7, 4, 5, 6; every 2nd sequence held out
      expect(Array.from(data.trainRows)).toEqual([0, 1, 2, 3, 4, 11, 12, 13]);
      expect(data.heldOut.map((q) => ({ ...q, rows: Array.from(q.rows) }))).toEqual([
        { rows: [7, 8], greedy: false, walkFrom: 0 },
        { rows: [16, 17, 18, 19], greedy: false, walkFrom: 0 },
      ]);
    } finally {
      disposeData(data);
    }
  });
});
