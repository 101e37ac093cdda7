/**
 * Draft vocabularies in `trainDraftHeads` (`draftVocab: N`): the hard loss leaves out rows whose
 * target is outside the vocabulary (no draft can be right there) and the held-out agreement counts
 * them as misses; on given text the vocabulary is exactly the N most frequent tokens; and
 * `npm run train:heads -- --draftVocab N` (a short real run on stories260K) writes a heads file
 * with N ids whose heads decode exactly as greedy, drafting from those ids only.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { greedyDecode, speculativeDecode } from '../../src/decoding/index.js';
import type { DraftHeadLayer } from '../../src/layers/draft_head.js';
import { CachedTransformer, loadLlama2c, trainDraftHeads } from '../../src/models/index.js';
import { readDraftHeads } from '../../src/models/draft_heads.js';
import { disposeData, frequentTokens, prepareData } from '../../src/models/train_heads/data.js';
import { evaluate } from '../../src/models/train_heads/evaluate.js';
import { batchLoss } from '../../src/models/train_heads/loss.js';
import { useCpu } from '../helpers/backend.js';
import { expectNoLeak } from '../helpers/leak.js';
import { readStories, STORIES_DIR, storiesAvailable, storiesReference } from '../helpers/stories.js';

const run = promisify(execFile);
const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/**
 * A head with one draft offset whose "hidden state" is its own logits: offset 0's `[V]`, then the
 * draft logits `[Vd]`.
 */
function fakeHead(V: number, vd: number): DraftHeadLayer {
  return {
    numHeads: 2,
    vocabSize: V,
    logits: (states: tf.Tensor2D) => tf.expandDims(tf.slice(states, [0, 0], [-1, V]), 1),
    trainingLogits: (states: tf.Tensor2D) => tf.expandDims(tf.slice(states, [0, V], [-1, vd]), 1), // [m, 1, Vd]
  } as unknown as DraftHeadLayer;
}

describe('the loss and the metrics over a draft vocabulary', () => {
  beforeAll(useCpu);

  it('the hard loss averages over the rows whose target is in it; held-out agreement counts the others as misses', async () => {
    const V = 6;
    const vocab = [1, 2, 4];
    // each position's "hidden state" holds offset 0's logits (one-hot at the teacher's choice) and then the draft logits z
    const teacher = [0, 1, 2, 3, 4, 5, 1, 2];
    const z = teacher.map((_, r) => [r * 0.1, 1 - r * 0.2, 0.3]);
    const rowOf = (t: number, r: number) => [...Array.from({ length: V }, (_, i) => (i === t ? 2 : 0)), ...z[r]!];
    const hidden = new Float32Array([...teacher.flatMap(rowOf), ...teacher.flatMap(rowOf)]); // two sequences: trained, held out
    const head = fakeHead(V, vocab.length);
    const sequences = [{ ids: teacher }, { ids: teacher, greedyFrom: 1 }];
    await expectNoLeak(async () => {
      const data = await prepareData(head, sequences, hidden, 2, 0.5, vocab);
      try {
        expect(Array.from(data.target.dataSync())).toEqual([...teacher, ...teacher].map((t) => vocab.indexOf(t)));
        expect(Array.from(data.trainRows)).toEqual([0, 1, 2, 3, 4, 5, 6]);
        // by hand: rows p whose target (the teacher at p + 1) is in the vocabulary
        const terms: number[] = [];
        const hits: boolean[] = [];
        for (let p = 0; p < 7; p++) {
          const c = vocab.indexOf(teacher[p + 1]!);
          hits.push(vocab[z[p]!.indexOf(Math.max(...z[p]!))] === teacher[p + 1]);
          if (c >= 0) terms.push(Math.log(z[p]!.reduce((a, x) => a + Math.exp(x), 0)) - z[p]![c]!);
        }
        expect(terms.length).toBeGreaterThan(0);
        expect(terms.length).toBeLessThan(7);
        const loss = tf.tidy(() => batchLoss(head, data, tf.tensor1d(data.trainRows, 'int32'), { hardWeight: 1 }).loss);
        expect((await loss.data())[0]).toBeCloseTo(terms.reduce((a, b) => a + b, 0) / terms.length, 5);
        loss.dispose();
        const metrics = (await evaluate(head, data, { last: 0 }))!;
        expect(metrics.rows).toBe(7);
        expect(metrics.agreement[0]).toBeCloseTo(hits.filter(Boolean).length / 7, 6);
        expect(metrics.loss[0]).toBeCloseTo(terms.reduce((a, b) => a + b, 0) / terms.length, 4);
      } finally {
        disposeData(data);
      }
    });
  });

  it("HASS's top-K term, precomputed per position: the teacher's K most likely draft tokens and their whole-vocabulary probabilities, by hand", async () => {
    const V = 6;
    const vocab = [1, 2, 4];
    // offset 0's logits at each position, then the draft logits z
    const teacherLogits = [
      [0, 2, 1, 0, 0.5, 0],
      [1, 0, 0, 3, 2, 0],
      [0, 0, 0, 0, 0, 4],
      [0.2, 1, 2, 0, 1.5, 0],
    ];
    const z = teacherLogits.map((_, r) => [r * 0.1, 1 - r * 0.2, 0.3]);
    const hidden = new Float32Array(teacherLogits.flatMap((row, r) => [...row, ...z[r]!]));
    const head = fakeHead(V, vocab.length);
    const softmax = (row: number[]) => row.map((x) => Math.exp(x) / row.reduce((a, y) => a + Math.exp(y), 0));
    const lse = (row: number[]) => Math.log(row.reduce((a, x) => a + Math.exp(x), 0));
    await expectNoLeak(async () => {
      const data = await prepareData(head, [{ ids: [0, 1, 2, 3] }], hidden, 2, 0, vocab, 2);
      try {
        // by hand: the two draft columns of largest teacher probability, descending, and those probabilities (over all V)
        const expected = teacherLogits.map((row) => {
          const p = softmax(row);
          return vocab.map((t, c) => ({ c, p: p[t]! })).sort((a, b) => b.p - a.p || a.c - b.c).slice(0, 2);
        });
        expect(data.topK!.columns.arraySync()).toEqual(expected.map((r) => r.map((e) => e.c)));
        data.topK!.probs.arraySync().flat().forEach((p, i) => expect(p).toBeCloseTo(expected.flat()[i]!.p, 6));
        // the loss: the hard term plus −Σ_top-K q·log softmax(z), each averaged over the rows (p = 0…2, targets at p + 1)
        let hard = 0;
        let hits = 0;
        let ranked = 0;
        for (let p = 0; p < 3; p++) {
          const c = vocab.indexOf(teacherLogits[p + 1]!.indexOf(Math.max(...teacherLogits[p + 1]!)));
          if (c >= 0) {
            hard += lse(z[p]!) - z[p]![c]!;
            hits += 1;
          }
          for (const e of expected[p + 1]!) ranked += e.p * (lse(z[p]!) - z[p]![e.c]!);
        }
        const loss = tf.tidy(() => batchLoss(head, data, tf.tensor1d(data.trainRows, 'int32'), { hardWeight: 1 }).loss);
        expect((await loss.data())[0]).toBeCloseTo(hard / Math.max(1, hits) + ranked / 3, 5);
        loss.dispose();
      } finally {
        disposeData(data);
      }
    });
  });
});

const available = storiesAvailable('training/draft_vocab.test.ts');

describe.skipIf(!available)('draftVocab on stories260K', () => {
  it('trainDraftHeads on given text: the vocabulary is the N most frequent tokens of that text', async () => {
    await useCpu();
    const { model } = await loadLlama2c(readStories('checkpoint'), { mtpHeads: 3, headKind: 'mlp', headHiddenSize: 8 });
    try {
      const prompt = storiesReference().promptIds;
      const sequences = [prompt, [...prompt].reverse(), prompt.slice(2)];
      const heads = await expectNoLeak(() => trainDraftHeads(model, { sequences, draftVocab: 5, steps: 1, heldOut: 0, attach: false }));
      expect(heads.manifest.draftVocab).toEqual(frequentTokens(sequences.map((ids) => ({ ids })), 5, 512).ids);
    } finally {
      model.dispose();
    }
  });

  it('npm run train:heads --help documents the option', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'scripts/train_heads.ts', '--help'], { cwd: ROOT, timeout: 60_000 });
    expect(stdout).toMatch(/--draft-vocab <number>\s+draft vocabulary: the N most frequent corpus tokens/);
    expect(stdout).toMatch(/--steps <number>\s+stop training after this many Adam steps/);
  });

  for (const kind of ['mlp', 'sequential'] as const) {
    it(`npm run train:heads -- --kind ${kind} --draftVocab 48: the heads file drafts from 48 ids and decodes as greedy`, async () => {
      const out = mkdtempSync(join(tmpdir(), 'train-heads-'));
      const N = 48;
      try {
        const args = ['--model', STORIES_DIR, '--out', out, '--kind', kind, '--draftVocab', String(N), '--hidden', '16', '--corpusTokens', '300', '--sequenceTokens', '100', '--steps', '3', '--batch', '64', '--tauTokens', '16']; // the script's default backend (wasm): about half cpu's time
        await run(process.execPath, ['--import', 'tsx', 'scripts/train_heads.ts', ...args], { cwd: ROOT, timeout: 240_000 });
        const heads = new Uint8Array(readFileSync(join(out, 'heads.bin')));
        const { manifest } = readDraftHeads(heads);
        expect(manifest).toMatchObject({ version: 2, kind, numHeads: 4 });
        const vocab = manifest.draftVocab!;
        expect(vocab).toHaveLength(N);
        const facts = JSON.parse(readFileSync(join(out, 'training.json'), 'utf8')) as { draftVocab: { size: number }; tau: { identical: boolean }; steps: number };
        expect(facts.draftVocab.size).toBe(N);
        expect(facts.steps).toBe(3);
        expect(facts.tau.identical).toBe(true);
        // attached by loadLlama2c: drafts come from the vocabulary, decoding equals greedy
        await useCpu();
        const { model } = await loadLlama2c(readStories('checkpoint'), { draftHeads: heads });
        const cached = new CachedTransformer(model);
        try {
          expect(cached.draftVocab).toEqual(vocab);
          const prompt = storiesReference().promptIds;
          const greedy = await greedyDecode(cached, prompt, { maxNewTokens: 30 });
          const fast = await speculativeDecode(cached, prompt, { maxNewTokens: 30 });
          expect(fast.tokens).toEqual(greedy.tokens);
          const ids = tf.tidy(() => {
            const states = cached.forward(prompt);
            return cached.draftArgmax(states, tf.fill([prompt.length], 1, 'int32') as tf.Tensor1D, 3).arraySync() as number[][];
          });
          for (const row of ids) for (const t of row) expect(vocab).toContain(t);
        } finally {
          cached.dispose();
          model.dispose();
        }
      } finally {
        rmSync(out, { recursive: true, force: true });
      }
    });
  }
});
