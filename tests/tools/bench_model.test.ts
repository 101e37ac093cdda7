/**
 * tools/bench_model.ts's prompts for draft heads: the held-out openings of the heads' corpus
 * first, then hand-written openings, none of which a training opening of the corpus starts (the
 * corpus never continued them), no duplicates. Draft heads on the byte-level checkpoint:
 * sequential modules attach (offset 0 and greedy output unchanged), parallel ones are refused.
 */
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import { CachedTransformer } from '../../src/models/cached.js';
import { exportDraftHeads, withSequentialHeads } from '../../src/models/draft_heads.js';
import { createTransformer } from '../../src/models/index.js';
import { heldOutStoryPrompts, loadBenchModel } from '../../tools/bench_model.js';
import { loadCheckpoint, REFERENCE_CHECKPOINT } from '../../tools/checkpoint.js';
import { heldOutPrompts } from '../../tools/corpus.js';
import { useCpu } from '../helpers/backend.js';
import { HELD_OUT_OPENINGS, STORY_OPENINGS } from '../../tools/heads/openings.js';

describe('heldOutStoryPrompts', () => {
  it('starts with the corpus held-out openings and adds only openings no training opening starts', () => {
    const prompts = heldOutStoryPrompts();
    const heldOut = STORY_OPENINGS.slice(STORY_OPENINGS.length - HELD_OUT_OPENINGS);
    const training = STORY_OPENINGS.slice(0, STORY_OPENINGS.length - HELD_OUT_OPENINGS);
    expect(prompts.slice(0, HELD_OUT_OPENINGS)).toEqual(heldOut);
    expect(prompts.length).toBeGreaterThan(HELD_OUT_OPENINGS);
    expect(new Set(prompts).size).toBe(prompts.length);
    for (const p of prompts) expect(training.filter((o) => p.startsWith(o))).toEqual([]);
  });
});

describe('loadBenchModel with draft heads on the byte-level checkpoint', () => {
  it('attaches sequential modules to fixtures/tslib-k4: offset 0 bit-identical, speculative output identical to greedy, prompts are the held-out lib prompts', async () => {
    await useCpu();
    const base = await loadCheckpoint(REFERENCE_CHECKPOINT);
    const trained = withSequentialHeads(base, 4, 16); // fresh modules: what a trained file holds, untrained
    const bytes = await exportDraftHeads(trained);
    trained.getLayer('mtp_head').dispose(); // the exported modules
    const before = tf.memory().numTensors;
    const bench = await loadBenchModel(REFERENCE_CHECKPOINT, 4, { name: 'test.bin', bytes });
    try {
      expect(bench.name).toContain('draft heads test.bin');
      expect(bench.headsPrompts.map((t) => bench.tokenizer.encode(t))).toEqual(heldOutPrompts(6, 48).map((p) => p.bytes));
      const ids = tf.tensor2d([bench.tokenizer.encode(bench.headsPrompts[0]!)], undefined, 'int32'); // [1, 48]
      const [own, attached] = tf.tidy(() => [base, bench.model].map((m) => tf.squeeze(tf.slice(m.predict(ids) as tf.Tensor4D, [0, 0, 0, 0], [1, -1, 1, -1])).dataSync())); // offset 0 [48, V]
      ids.dispose();
      expect(Array.from(attached!)).toEqual(Array.from(own!));
      const cached = new CachedTransformer(bench.model);
      try {
        for (const prompt of bench.prompts(2, 48)) {
          const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 24 });
          const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 24 });
          expect(fast.tokens).toEqual(greedy.tokens);
        }
      } finally {
        cached.dispose();
      }
    } finally {
      bench.model.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    base.dispose();
  }, 120_000);

  it('refuses parallel heads for the byte-level checkpoint, naming the kind', async () => {
    await useCpu();
    const model = createTransformer({ vocabSize: 256, maxLength: 16, hiddenSize: 128, numLayers: 1, numAttentionHeads: 2, mtpHeads: 4, headKind: 'mlp', headHiddenSize: 8, seed: 1 });
    const bytes = await exportDraftHeads(model);
    await expect(loadBenchModel(REFERENCE_CHECKPOINT, 4, { name: 'mlp.bin', bytes })).rejects.toThrow(/must be sequential modules .* but mlp\.bin has kind 'mlp'/);
    model.dispose();
  });
});
